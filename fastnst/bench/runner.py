"""Inference benchmark: latency and images/s per backend × precision × size, against a plain reference.

The reference is what a user of pytorch/examples ``fast_neural_style`` runs: the same transform network in fp32,
eager PyTorch, NCHW, ``torch.no_grad()``, default thread settings. It runs in the same process, on the same input,
interleaved with the candidates (each repeat times the reference and then every candidate once), so a machine
shared with other jobs slows all of them alike; medians and minima are both reported. Every candidate's output is
compared with the reference's (PSNR), so a fast but wrong configuration shows up in the same table.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from fastnst._version import __version__
from fastnst.utils.device import native_bf16
from fastnst.utils.errors import FastNSTError, first_line

log = logging.getLogger(__name__)

SIZES: dict[str, tuple[int, int]] = {"256": (256, 256), "512": (512, 512), "1080p": (1080, 1920),
                                     "4k": (2160, 3840)}
"""Benchmark sizes as (height, width)."""


@dataclass
class Case:
    """One configuration to time."""

    backend: str  # "reference", "torch", "onnxruntime"
    precision: str
    provider: str = ""  # ONNX Runtime provider to force, "" for torch
    compiled: bool = False  # torch: the network runs through torch.compile
    runner: Any = None
    device_call: Callable[[torch.Tensor], Callable[[], None]] | None = None  # GPU: data stays on the device

    @property
    def runtime(self) -> str:
        """The backend as results name it: "torch+compile" for a compiled torch case."""
        return self.backend + ("+compile" if self.compiled else "")

    @property
    def label(self) -> str:
        where = self.provider.replace("ExecutionProvider", "") if self.provider else ""
        return f"{self.runtime}{'/' + where if where else ''} {self.precision}"


@dataclass
class Result:
    size: str
    height: int
    width: int
    backend: str
    device: str
    precision: str
    latency_ms_median: float
    latency_ms_min: float
    images_per_s: float
    speedup_vs_reference: float  # reference median / this median
    psnr_db_vs_reference: float | None
    latencies_ms: list[float] = field(default_factory=list)
    device_latency_ms_median: float | None = None  # GPU, input and output resident on the device
    device_images_per_s: float | None = None


def run_benchmark(*, model: str = "starry_night", backends: list[str] | None = None,
                  precisions: list[str] | None = None, sizes: list[str] | None = None, device: str = "auto",
                  warmup: int = 2, repeats: int = 5, max_seconds: float = 30.0, threads: int | None = None,
                  clock: str = "wall", progress: Callable[[str], None] | None = None,
                  compile: bool = False) -> dict[str, Any]:
    """Time every case at every size; returns the report (machine, settings, results, skipped).

    ``threads`` sets PyTorch's and ONNX Runtime's thread counts for every case, the reference included (None:
    their defaults). ``clock="cpu"`` times with the process's CPU time instead of the wall clock: on a machine
    shared with other jobs that measures the work itself, unaffected by waiting for a core. It needs
    ``threads=1`` (with more threads, CPU time also counts threads spinning while they wait for each other).
    ``compile`` adds each torch case again through torch.compile (its compilation falls in the warm-up runs).
    """
    if clock not in ("wall", "cpu"):
        raise FastNSTError(f"unknown clock {clock!r}; choose wall or cpu")
    if clock == "cpu" and threads != 1:
        raise FastNSTError("the cpu clock needs --threads 1 (CPU time of several threads counts their spinning)")
    if threads is not None:
        if threads < 1:
            raise FastNSTError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    timer = time.process_time if clock == "cpu" else time.perf_counter
    from fastnst.model.files import find_model, load_styled_model
    from fastnst.utils.device import resolve_device

    say = progress or (lambda _msg: None)
    unknown = [s for s in sizes or () if s not in SIZES]
    if unknown:
        raise FastNSTError(f"unknown size {unknown[0]!r}; choose from {', '.join(SIZES)}")
    target = resolve_device(device)
    gpu = target.type == "cuda"
    weights = find_model(model)
    reference_net, info = load_styled_model(weights, device=target)  # a multi-style model's first style
    skipped: list[dict[str, str]] = []
    requested_sizes = sizes or list(SIZES)
    if not gpu and sizes is None:
        requested_sizes = [s for s in requested_sizes if s != "4k"]
        skipped.append({"size": "4k", "case": "all", "reason": "4K is not run on CPUs by default (the reference "
                        "needs ≈8 GB and tens of seconds per image); name it in --sizes to run it"})
    cases = _cases(weights, backends or ["torch", "onnxruntime"], precisions, target, skipped, say, threads, compile)
    reference = Case("reference", "fp32", runner=reference_net)
    start_load = os.getloadavg() if hasattr(os, "getloadavg") else None
    results: list[Result] = []
    for size in requested_sizes:
        height, width = SIZES[size]
        image = _test_image(height, width)
        say(f"{size}: {width}×{height}")
        active = [reference] + cases
        outputs: dict[int, torch.Tensor] = {}
        calls: dict[int, Callable[[], torch.Tensor]] = {}
        for index, case in enumerate(active):
            call = _call(case, image)
            try:
                outputs[index] = call()  # may include one-time work: TensorRT engine build, cuDNN search
                began = time.perf_counter()
                call()
                one_run = time.perf_counter() - began
                for _ in range(max(0, warmup - 2)):
                    call()
            except Exception as exc:  # noqa: BLE001 - one failing case (out of memory at 4K, a provider
                # error, which ONNX Runtime raises as plain Exception subclasses) must not end the benchmark
                skipped.append({"size": size, "case": case.label, "reason": first_line(exc)})
                say(f"  skip {case.label}: {first_line(exc)[:120]}")
                continue
            if one_run > max_seconds and index > 0:
                skipped.append({"size": size, "case": case.label,
                                "reason": f"one run took {one_run:.0f} s > --max-seconds {max_seconds:g}"})
                say(f"  skip {case.label}: {one_run:.0f} s per run")
                continue
            calls[index] = call
        if 0 not in calls:
            continue
        times: dict[int, list[float]] = {i: [] for i in calls}
        for _ in range(repeats):
            for index, call in calls.items():  # interleaved: contention hits all cases alike
                began = timer()
                call()
                times[index].append(timer() - began)
        ref_median = statistics.median(times[0])
        for index in calls:
            case = active[index]
            median = statistics.median(times[index])
            result = Result(size=size, height=height, width=width, backend=case.runtime,
                            device=_device_of(case, target), precision=_precision_of(case),
                            latency_ms_median=median * 1e3, latency_ms_min=min(times[index]) * 1e3,
                            images_per_s=1.0 / median, speedup_vs_reference=ref_median / median,
                            psnr_db_vs_reference=None if index == 0 else _psnr(outputs[0], outputs[index]),
                            latencies_ms=[round(t * 1e3, 2) for t in times[index]])
            if gpu and case.device_call is not None:
                try:
                    device_median = _time_device(case, image, warmup, repeats)
                except Exception as exc:  # noqa: BLE001 - the end-to-end result above still stands
                    skipped.append({"size": size, "case": f"{case.label} (device-resident)",
                                    "reason": first_line(exc)})
                else:
                    result.device_latency_ms_median = device_median * 1e3
                    result.device_images_per_s = 1.0 / device_median
            results.append(result)
            say(f"  {case.label:32s} {median * 1e3:9.1f} ms  ×{ref_median / median:5.2f}")
    return {
        "fastnst_version": __version__,
        "model": info.name,
        "machine": _machine(target),
        "settings": {"warmup": warmup, "repeats": repeats, "batch": 1, "torch_threads": torch.get_num_threads(),
                     "onnxruntime_threads": threads or os.cpu_count(), "clock": clock,
                     "input": "a real photo (samples/) resized to each size",
                     "timing": f"{'process CPU time' if clock == 'cpu' else 'wall clock'} per call, CPU tensor in → "
                               "CPU tensor out; reference and cases interleaved in every repeat"},
        "reference": "TransformerNet fp32, eager PyTorch, NCHW, torch.no_grad(), default settings"
                     + (f" except {threads} thread(s)" if threads else "")
                     + " (the pytorch/examples fast_neural_style way)",
        "load_average": {"start": start_load, "end": os.getloadavg() if hasattr(os, "getloadavg") else None},
        "results": [asdict(r) for r in results],
        "skipped": skipped,
    }


def _cases(weights: Path, backends: list[str], precisions: list[str] | None, target: torch.device,
           skipped: list[dict[str, str]], say: Callable[[str], None], threads: int | None,
           compile: bool = False) -> list[Case]:
    """Every (backend, provider, precision) to time that this machine can run."""
    from fastnst.export.onnx import ONNX_FILES
    from fastnst.model.files import load_styled_model
    from fastnst.runtime.onnx_backend import CPU, CUDA, TENSORRT, OnnxBackend
    from fastnst.runtime.select import have_onnxruntime, onnx_file
    from fastnst.runtime.torch_backend import TorchBackend

    gpu = target.type == "cuda"
    wanted = precisions or (["fp32", "fp16", "bf16"] if gpu else ["fp32", "bf16", "int8"])
    cases: list[Case] = []
    if "torch" in backends:
        for precision in [p for p in wanted if p != "int8"]:
            if precision == "bf16" and not native_bf16(target):
                skipped.append({"size": "all", "case": "torch bf16", "reason": "no native bf16 on this device"})
                continue
            if precision == "fp16" and not gpu:
                continue
            for compiled in (False, True) if compile else (False,):
                net, _ = load_styled_model(weights, device=target)
                cases.append(Case("torch", precision, compiled=compiled,
                                  runner=TorchBackend(net, device=str(target), precision=precision,
                                                      compile=compiled)))
    if "onnxruntime" in backends:
        if not have_onnxruntime():
            skipped.append({"size": "all", "case": "onnxruntime", "reason": "onnxruntime is not installed"})
        providers = [TENSORRT, CUDA] if gpu else [CPU]
        for provider in providers:
            for precision in [p for p in wanted if p != "bf16" and have_onnxruntime()]:
                if precision == "fp16" and not gpu:
                    continue  # ONNX Runtime's CPU provider computes fp16 graphs in fp32: nothing to measure
                if precision == "int8" and gpu:
                    continue
                source = onnx_file(weights.parent, precision)  # fp16: model.fp16.onnx, else converted fp32
                if source is None:
                    skipped.append({"size": "all", "case": f"onnxruntime {precision}",
                                    "reason": f"no {ONNX_FILES[precision]} in {weights.parent} (fastnst export)"})
                    continue
                try:
                    runner = OnnxBackend(source, precision=precision, provider=provider,
                                         device="cuda" if gpu else "cpu", threads=threads)
                except FastNSTError as exc:
                    skipped.append({"size": "all", "case": f"onnxruntime/{provider} {precision}", "reason": str(exc)})
                    say(f"skip onnxruntime/{provider} {precision}: {exc}")
                    continue
                cases.append(Case("onnxruntime", precision, provider=provider, runner=runner))
    if gpu:
        for case in cases:
            case.device_call = _device_call_factory(case)
    return cases


def _call(case: Case, image: torch.Tensor) -> Callable[[], torch.Tensor]:
    if case.backend == "reference":
        net = case.runner
        dev = next(net.parameters()).device

        def reference() -> torch.Tensor:
            with torch.no_grad():  # pytorch/examples: eval under no_grad, output moved to the CPU
                return net(image.to(dev)).clamp(0, 1).cpu()
        return reference
    return lambda: case.runner.stylize(image)


def _device_call_factory(case: Case) -> Callable[[torch.Tensor], Callable[[], None]]:
    """For GPUs: a call whose input and output stay on the device (the network's own speed)."""
    def make(image: torch.Tensor) -> Callable[[], None]:
        runner = case.runner
        if case.backend == "torch":
            x = image.to(runner.device)
            if runner.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)

            def torch_call() -> None:
                with torch.inference_mode(), runner._autocast():
                    runner.network(x)
                torch.cuda.synchronize()
            return torch_call
        import onnxruntime as ort

        binding = runner.session.io_binding()
        value = ort.OrtValue.ortvalue_from_numpy(image.numpy(), "cuda", 0)
        binding.bind_ortvalue_input("image", value)
        binding.bind_output("stylized", "cuda", 0)
        return lambda: runner.session.run_with_iobinding(binding)
    return make


def _time_device(case: Case, image: torch.Tensor, warmup: int, repeats: int) -> float:
    call = case.device_call(image)  # type: ignore[misc]
    for _ in range(max(1, warmup)):
        call()
    times = []
    for _ in range(max(repeats, 10)):  # device runs are short: take more of them
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def _device_of(case: Case, target: torch.device) -> str:
    if case.backend == "onnxruntime":
        return case.runner.device
    return str(target)


def _precision_of(case: Case) -> str:
    return case.precision


def _psnr(expected: torch.Tensor, got: torch.Tensor) -> float:
    from fastnst.export.quantize import psnr

    return round(psnr(expected.numpy(), got.numpy()), 2)


def _test_image(height: int, width: int) -> torch.Tensor:
    """A real photo resized to the size (statistics like real use), or seeded noise without samples/."""
    from PIL import Image

    from fastnst.utils.images import image_to_tensor, load_rgb

    sample = Path("samples") / "castle.jpg"
    if sample.is_file():
        photo = load_rgb(sample).resize((width, height), Image.Resampling.BICUBIC)
        return image_to_tensor(photo)
    return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))


def _machine(target: torch.device) -> dict[str, Any]:
    from fastnst.utils.machine import cpu_model

    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
        flags = " ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
                         if f in line.split())
    except OSError:
        pass
    versions: dict[str, str | None] = {"python": platform.python_version(), "torch": torch.__version__}
    for name in ("onnxruntime", "onnx"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    gpu = None
    if target.type == "cuda":
        gpu = {"name": torch.cuda.get_device_name(target), "cuda": torch.version.cuda,
               "cudnn": torch.backends.cudnn.version()}
        try:
            import onnxruntime as ort

            versions["onnxruntime_providers"] = ", ".join(ort.get_available_providers())
        except ImportError:
            pass
    return {"host": socket.gethostname(), "cpu": cpu_model(), "cpu_flags": flags, "cpu_count": os.cpu_count(),
            "platform": platform.platform(), "gpu": gpu, "versions": versions,
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def format_table(report: dict[str, Any]) -> str:
    """The results as a Markdown table (the form docs/benchmarks.md uses)."""
    machine = report["machine"]
    where = machine["gpu"]["name"] if machine.get("gpu") else f"{machine['cpu']} ({machine['cpu_count']} cores)"
    settings = report["settings"]
    title = (f"{report['model']} on {where}; {settings['clock']} clock, threads: torch {settings['torch_threads']}, "
             f"onnxruntime {settings['onnxruntime_threads']}; load average {report['load_average']['start']}; "
             f"reference: {report['reference']}")
    lines = [title, "",
             "| size | backend | device | precision | median ms | min ms | images/s | × reference | PSNR dB |"
             + (" device ms | device fps |" if machine.get("gpu") else ""),
             "|---|---|---|---|---|---|---|---|---|" + ("---|---|" if machine.get("gpu") else "")]
    for r in report["results"]:
        psnr = "—" if r["psnr_db_vs_reference"] is None else f"{r['psnr_db_vs_reference']:.1f}"
        row = (f"| {r['size']} | {r['backend']} | {r['device']} | {r['precision']} | {r['latency_ms_median']:.1f} | "
               f"{r['latency_ms_min']:.1f} | {r['images_per_s']:.2f} | {r['speedup_vs_reference']:.2f} | {psnr} |")
        if machine.get("gpu"):
            dev = r.get("device_latency_ms_median")
            row += f" {dev:.2f} | {r['device_images_per_s']:.0f} |" if dev else " — | — |"
        lines.append(row)
    for s in report["skipped"]:
        lines.append(f"- skipped {s['case']} at {s['size']}: {s['reason']}")
    return "\n".join(lines)
