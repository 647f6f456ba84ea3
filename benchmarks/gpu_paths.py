#!/usr/bin/env python3
"""Issue #17's GPU measurements, one subcommand per part; benchmarks/gpu_issue17.sh runs them in one device call.

    train    fastnst's training step against the pytorch/examples recipe (runs of benchmarks/train_throughput.py,
             each with its own interleaved reference), then the best variant at larger batches
    infer    one frame at a time with the frame already on the device: eager, torch.compile modes, ONNX Runtime
             through fastnst's backend (host copies) and with IO binding (device tensors), TensorRT; each with its
             PSNR against the fp32 network and fastnst's gate, and the fastest path that passes it
    video    end-to-end ``fastnst stylize`` of a short generated video with ``--backend auto``
    server   benchmarks/server_load.py, batched against unbatched
    summary  the tables of every part, and one JSON holding all of them
    prepare  run here before a device call: the wheels and the style image the device lacks, and a size check

Every part has a time budget and writes its JSON as soon as it has a result, so a part stopped at its limit still
leaves what it measured; a case this machine cannot run is recorded as skipped with its reason.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

REPO = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = REPO / "benchmarks" / "train_throughput.py"
SERVER_SCRIPT = REPO / "benchmarks" / "server_load.py"
PART_FILES = {"train": "train.json", "infer": "infer.json", "video": "video.json", "server": "server.json"}
# Wheels the device image lacks (KINDS.md's package list): the server's stack and PyAV for videos. Checked to
# import on their own next to the image's anyio, h11, click, idna and annotated-doc.
DEVICE_WHEELS = ("av==18.1.0", "fastapi==0.165.0", "fastapi_offline==1.7.7", "uvicorn==0.55.0",
                 "python-multipart==0.0.34", "starlette==1.10.0", "pydantic==2.14.4", "pydantic_core==2.50.5",
                 "typing-inspection==0.4.5", "annotated-types==0.8.0", "opentelemetry-api==1.45.2",
                 "typing_extensions==4.16.0")
CARRY_LIMIT_BYTES = 64 * 1024 * 1024


class Budget:
    """Seconds left of a part's time budget."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically, so a part killed while writing leaves its previous results."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(partial, path)


def run_child(command: list[str], timeout: float, env: dict[str, str] | None = None) -> tuple[int, str, float]:
    """Run a command in its own process group; at the timeout the whole group (compile workers too) is killed.

    Returns (exit code, output, seconds); exit code 124 means it was stopped at the timeout.
    """
    began = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True, env=env, cwd=REPO)
    try:
        output, _ = process.communicate(timeout=max(1.0, timeout))
        code = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        code = 124
    return code, output or "", time.monotonic() - began


def quiet(output: str) -> str:
    """A child's output without Python warnings (the reference recipe's broadcasting warning, compile notes)."""
    keep, after_warning = [], False
    for line in output.splitlines():
        if "Warning" in line or (after_warning and line[:1].isspace()):
            after_warning = True  # the warning's source line follows it, indented
            continue
        after_warning = False
        keep.append(line)
    return "\n".join(keep)


def cuda_ready(device: str) -> bool:
    import torch

    return device == "cuda" and torch.cuda.is_available()


# ------------------------------------------------------------------------------------------------------- train


def train_run(args: argparse.Namespace, variants: list[str], batch: int, work: Path, label: str,
              timeout: float) -> dict[str, Any]:
    """One benchmarks/train_throughput.py run (the reference interleaved with ``variants``)."""
    out = work / f"train_{label}.json"
    command = [sys.executable, str(TRAIN_SCRIPT), "--device", args.device, "--size", str(args.size),
               "--batch-size", str(batch), "--rounds", str(args.rounds), "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--variants", ",".join(variants), "--data-dir", args.data_dir,
               "--style", args.style, "--json", str(out)]
    print(f"[train] batch {batch}: reference + {', '.join(variants)} (limit {timeout:.0f} s)", flush=True)
    code, output, seconds = run_child(command, timeout)
    print(quiet(output)[-3000:], flush=True)
    run: dict[str, Any] = {"batch_size": batch, "variants": variants, "exit_code": code,
                           "seconds": round(seconds, 1), "command": " ".join(command[1:])}
    if code == 124:
        run["error"] = f"stopped at its {timeout:.0f} s limit (compiling or running)"
    elif code != 0 or not out.is_file():
        run["error"] = f"exit code {code}: {quiet(output).strip().splitlines()[-1:] or ['no output']}"
    if out.is_file():
        report = json.loads(out.read_text())
        run.update(hardware=report.get("hardware"), torch=report.get("torch"), results=report["results"],
                   failed=report.get("failed", {}))
    return run


def cmd_train(args: argparse.Namespace) -> int:
    budget = Budget(args.budget_s)
    work = Path(args.work)
    cuda = cuda_ready(args.device)
    report: dict[str, Any] = {"part": "train", "device": args.device, "size": args.size,
                              "batch_size": args.batch_size, "rounds": args.rounds, "steps": args.steps,
                              "warmup": args.warmup, "data_dir": args.data_dir, "style": args.style,
                              "vgg_weights": os.environ.get("FASTNST_VGG_WEIGHTS", ""),
                              "vgg_note": args.vgg_note, "runs": [], "skipped": []}
    path = work / PART_FILES["train"]
    for index, group in enumerate(args.group):
        variants = []
        for name in group.split(","):
            if name.endswith("-graphs") and not cuda:
                report["skipped"].append({"case": name, "batch_size": args.batch_size,
                                          "reason": "skipped: no CUDA (CUDA graphs)"})
            else:
                variants.append(name)
        if not variants:
            continue
        if budget.left() < args.min_run_s:
            report["skipped"].append({"case": ",".join(variants), "batch_size": args.batch_size,
                                      "reason": f"skipped: time budget ({budget.left():.0f} s left)"})
            continue
        report["runs"].append(train_run(args, variants, args.batch_size, work, f"b{args.batch_size}_{index}",
                                        min(args.run_cap_s, budget.left())))
        write_json(path, report)
    best = best_training_variant(report["runs"], args.batch_size)
    report["best_at_batch"] = best
    for batch in args.more_batches:
        if best is None:
            report["skipped"].append({"case": "best variant", "batch_size": batch,
                                      "reason": "no fastnst variant ran at the first batch size"})
            continue
        needed = max(args.min_run_s, best_run_seconds(report["runs"], best, args.batch_size))
        if budget.left() < needed:  # a larger batch compiles again: about as long as the first run took
            report["skipped"].append({"case": best, "batch_size": batch, "reason": f"skipped: time budget "
                                      f"({budget.left():.0f} s left, its first run took {needed:.0f} s)"})
            continue
        report["runs"].append(train_run(args, [best], batch, work, f"b{batch}", min(args.run_cap_s, budget.left())))
        write_json(path, report)
    write_json(path, report)
    print(format_train(report), flush=True)
    return 0


def best_training_variant(runs: list[dict[str, Any]], batch: int) -> str | None:
    """The fastnst variant with the highest ratio to its own run's reference at ``batch``."""
    scored = [(result["speedup_vs_reference"], name) for run in runs if run["batch_size"] == batch
              for name, result in run.get("results", {}).items() if name != "reference"]
    return max(scored)[1] if scored else None


def best_run_seconds(runs: list[dict[str, Any]], variant: str, batch: int) -> float:
    """How long the run that measured ``variant`` at ``batch`` took (start-up and compilation included)."""
    return max((run["seconds"] for run in runs if run["batch_size"] == batch and variant in run.get("results", {})),
               default=0.0)


def format_train(report: dict[str, Any]) -> str:
    lines = [f"Training, {report['size']}² crops, VGG16 ({report.get('vgg_note') or 'weights as resolved'}); "
             f"each run interleaves its variants with its own reference",
             "| batch | run | variant | s/step | images/s | × its reference | run s |",
             "|---|---|---|---|---|---|---|"]
    for index, run in enumerate(report["runs"]):
        for name, result in run.get("results", {}).items():
            lines.append(f"| {run['batch_size']} | {index} | {name} | {result['seconds_per_step']:.4f} | "
                         f"{result['images_per_second']:.1f} | {result['speedup_vs_reference']:.2f} | "
                         f"{run['seconds']} |")
        for name, reason in run.get("failed", {}).items():
            lines.append(f"| {run['batch_size']} | {index} | {name} | failed: {reason[:120]} | | | |")
        if "error" in run:
            lines.append(f"| {run['batch_size']} | {index} | {','.join(run['variants'])} | {run['error'][:140]} "
                         "| | | |")
    for skip in report["skipped"]:
        lines.append(f"| {skip['batch_size']} | — | {skip['case']} | {skip['reason']} | | | |")
    lines.append(f"best at batch {report['batch_size']}: {report.get('best_at_batch')}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------- infer


class InferCase:
    """One way to stylize a frame: ``build`` does the one-time work and returns the per-frame call."""

    def __init__(self, name: str, kind: str, build: Callable[[], Callable[[], Any]], *, needs_cuda: bool = False,
                 prepare_estimate_s: float = 5.0, skip_reason: str | None = None) -> None:
        self.name, self.kind, self.build = name, kind, build
        self.needs_cuda, self.prepare_estimate_s, self.skip_reason = needs_cuda, prepare_estimate_s, skip_reason


def test_frame(height: int, width: int) -> Any:
    """A real photo (samples/castle.jpg) resized to the frame size: statistics like real video."""
    from PIL import Image

    from fastnst.utils.images import image_to_tensor, load_rgb

    photo = load_rgb(REPO / "samples" / "castle.jpg").resize((width, height), Image.Resampling.BICUBIC)
    return image_to_tensor(photo)


def ort_iobinding_call(session: Any, frame: Any) -> Callable[[], Any]:
    """Per-frame call running ``session`` on a torch tensor in place: input and output stay where ``frame`` is.

    Both are bound by pointer with onnxruntime's public IOBinding API; the output buffer is a torch tensor
    allocated once after a first run tells its shape, so no copy to or from the host happens per frame.
    """
    import numpy as np
    import torch

    from fastnst.model.files import ONNX_INPUT, ONNX_OUTPUT

    frame = frame.contiguous().float()
    device_type = "cuda" if frame.is_cuda else "cpu"
    device_id = (frame.device.index or 0) if frame.is_cuda else 0
    if frame.is_cuda:
        torch.cuda.synchronize()  # ONNX Runtime reads the input on its own stream

    def bind(output: Any | None) -> Any:
        binding = session.io_binding()
        binding.bind_input(ONNX_INPUT, device_type, device_id, np.float32, list(frame.shape), frame.data_ptr())
        if output is None:
            binding.bind_output(ONNX_OUTPUT, device_type, device_id)
        else:
            binding.bind_output(ONNX_OUTPUT, device_type, device_id, np.float32, list(output.shape),
                                output.data_ptr())
        return binding

    probe = bind(None)
    session.run_with_iobinding(probe)
    # NaN-poisoned, so an output ONNX Runtime did not write fails the PSNR check instead of passing unseen
    output = torch.full(probe.get_outputs()[0].shape(), float("nan"), dtype=torch.float32, device=frame.device)
    binding = bind(output)

    def call() -> Any:
        session.run_with_iobinding(binding)  # synchronises its outputs before returning
        return output
    return call


def tensorrt_missing() -> str | None:
    """Why TensorRT cannot run here, or None when its libraries and onnxruntime's provider are present."""
    import ctypes.util

    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed"
    if "TensorrtExecutionProvider" not in ort.get_available_providers():
        return f"onnxruntime {ort.__version__} here has no TensorrtExecutionProvider"
    if ctypes.util.find_library("nvinfer") is None:
        try:
            import tensorrt  # noqa: F401 - its wheel carries libnvinfer
        except ImportError:
            return "no TensorRT libraries (libnvinfer) on this machine"
    return None


def ort_cuda_missing() -> str | None:
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed"
    providers = ort.get_available_providers()
    if "CUDAExecutionProvider" not in providers:
        return (f"onnxruntime {ort.__version__} here is a CPU build (providers: {', '.join(providers)}); "
                "onnxruntime-gpu is needed")
    return None


def measure(call: Callable[[], Any], sync: Callable[[], None], repeats: int) -> dict[str, float]:
    """Latency per frame (synchronised after every call) and throughput back to back (one sync at the end)."""
    latencies = []
    for _ in range(repeats):
        began = time.perf_counter()
        call()
        sync()
        latencies.append(time.perf_counter() - began)
    began = time.perf_counter()
    for _ in range(repeats):
        call()
    sync()
    back_to_back = (time.perf_counter() - began) / repeats
    return {"ms_per_frame": round(statistics.median(latencies) * 1e3, 3),
            "ms_per_frame_min": round(min(latencies) * 1e3, 3),
            "frames_per_s": round(1.0 / back_to_back, 1), "repeats": repeats}


def cmd_infer(args: argparse.Namespace) -> int:
    import torch

    from fastnst.export.quantize import psnr
    from fastnst.model.files import find_model, load_model
    from fastnst.runtime.onnx_backend import CPU, CUDA, TENSORRT, OnnxBackend
    from fastnst.runtime.select import load_backend, onnx_file
    from fastnst.runtime.torch_backend import COMPILE_SETTINGS, TorchBackend
    from fastnst.utils.defaults import DEFAULT_MIN_PSNR

    budget = Budget(args.budget_s)
    cuda = cuda_ready(args.device)
    device = "cuda" if cuda else "cpu"
    width, height = (int(v) for v in args.size.split("x"))
    precision = "fp16" if cuda else "fp32"  # fp16 is fastnst's GPU default; CPUs have no fp16 convolutions
    weights = find_model(args.model)
    frame_cpu = test_frame(height, width)
    frame = frame_cpu.to(device)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    reference_net, _ = load_model(weights, device=device)
    with torch.inference_mode():
        expected = reference_net(frame).clamp(0, 1).cpu().numpy()

    def torch_backend(**kwargs: Any) -> TorchBackend:
        net, _ = load_model(weights, device=device)
        return TorchBackend(net, device=device, precision=precision, **kwargs)

    def network_call(network: Any, backend: TorchBackend, graphs: bool = False) -> Callable[[], Any]:
        x = frame.contiguous(memory_format=torch.channels_last) if backend.channels_last else frame

        def call() -> Any:
            if graphs:
                torch.compiler.cudagraph_mark_step_begin()
            with torch.inference_mode(), backend._autocast():
                return network(x)
        call()  # the first call compiles / records
        return call

    def eager_fp32() -> Callable[[], Any]:
        def call() -> Any:
            with torch.inference_mode():
                return reference_net(frame)
        return call

    def eager() -> Callable[[], Any]:
        backend = torch_backend()
        return network_call(backend.network, backend)

    def compiled(mode: str) -> Callable[[], Callable[[], Any]]:
        def build() -> Callable[[], Any]:
            backend = torch_backend()
            network = torch.compile(backend.network, mode=mode, dynamic=False)
            return network_call(network, backend, graphs=mode in ("reduce-overhead", "max-autotune"))
        return build

    def fastnst_compile() -> Callable[[], Any]:
        backend = torch_backend(compile=True)
        return network_call(backend.network, backend)

    exported = onnx_file(weights.parent, precision)  # the file `--backend auto` would run
    provider = CUDA if cuda else CPU

    def ort_backend(chosen: str = provider) -> OnnxBackend:
        if exported is None:
            raise FileNotFoundError(f"no ONNX export for {precision} beside {weights}")
        return OnnxBackend(exported, precision=precision, provider=chosen, device=device)

    def ort_normal() -> Callable[[], Any]:
        backend = ort_backend()
        return lambda: backend.stylize(frame_cpu)  # what fastnst's default path does per frame: host copies

    def ort_bound() -> Callable[[], Any]:
        return ort_iobinding_call(ort_backend().session, frame)

    def ort_tensorrt() -> Callable[[], Any]:
        return ort_iobinding_call(ort_backend(TENSORRT).session, frame)

    no_cuda = "skipped: no CUDA"
    ort_reason = ort_cuda_missing() if cuda else None
    trt_reason = (tensorrt_missing() if cuda else no_cuda)
    where = "CUDA" if cuda else "CPU"
    cases = [
        InferCase("torch fp32 eager (plain network: the PSNR reference)", "frame on device", eager_fp32),
        InferCase(f"torch {precision} eager (fastnst torch backend)", "frame on device", eager),
        InferCase(f"onnxruntime {where} {precision}, fastnst backend (host copies)", "host copies", ort_normal,
                  prepare_estimate_s=20, skip_reason=ort_reason),
        InferCase(f"onnxruntime {where} {precision}, IO binding (device tensors)", "frame on device", ort_bound,
                  prepare_estimate_s=20, skip_reason=ort_reason),
        InferCase(f"torch {precision} fastnst --compile ({COMPILE_SETTINGS[device]})", "frame on device",
                  fastnst_compile, prepare_estimate_s=args.compile_estimate_s),
        InferCase(f"torch {precision} torch.compile reduce-overhead (CUDA graphs)", "frame on device",
                  compiled("reduce-overhead"), needs_cuda=True, prepare_estimate_s=args.compile_estimate_s),
        InferCase(f"onnxruntime TensorRT {precision}, IO binding", "frame on device", ort_tensorrt,
                  needs_cuda=True, prepare_estimate_s=120, skip_reason=trt_reason),
    ]
    wanted = set(args.cases.split(",")) if args.cases else None
    report: dict[str, Any] = {"part": "infer", "device": device, "model": args.model, "width": width,
                              "height": height, "precision": precision, "gate_min_psnr_db": DEFAULT_MIN_PSNR,
                              "repeats": args.repeats, "machine": machine(device), "results": [], "skipped": []}
    try:
        default_backend, _ = load_backend(weights, backend="auto", device="auto")  # what the CLI does by default
        report["default_path"] = f"{default_backend.name} on {getattr(default_backend, 'device', device)}"
    except Exception as exc:  # noqa: BLE001 - the measurements do not depend on it
        report["default_path"] = f"could not build: {str(exc).splitlines()[0][:200]}"
    path = Path(args.work) / PART_FILES["infer"]
    ready: list[tuple[InferCase, Callable[[], Any], dict[str, Any]]] = []
    for index, case in enumerate(cases):
        if wanted is not None and str(index) not in wanted:
            continue
        reason = no_cuda if case.needs_cuda and not cuda else case.skip_reason
        if reason is None and budget.left() < case.prepare_estimate_s + 5:
            reason = (f"skipped: time budget ({budget.left():.0f} s left, preparing takes "
                      f"≈{case.prepare_estimate_s:g} s)")
        if reason is not None:
            report["skipped"].append({"case": case.name, "reason": reason})
            print(f"[infer] {case.name}: {reason}", flush=True)
            write_json(path, report)
            continue
        began = time.perf_counter()
        try:
            call = case.build()
            call()
            sync()
            prepare_s = time.perf_counter() - began
            output = call()
            got = output.detach()[..., :height, :width].float().clamp(0, 1).cpu().numpy()
            row = {"case": case.name, "kind": case.kind, "prepare_s": round(prepare_s, 1),
                   "psnr_db_vs_fp32": round(psnr(expected, got), 2), **measure(call, sync, args.repeats)}
        except Exception as exc:  # noqa: BLE001 - one path failing (a provider, a compile mode) must not end the part
            detail = str(exc).splitlines()[0][:300] if str(exc) else ""
            report["skipped"].append({"case": case.name, "reason": f"failed: {type(exc).__name__}: {detail}"})
            print(f"[infer] {case.name}: failed: {exc!r}"[:400], flush=True)
            write_json(path, report)
            continue
        row["passes_gate"] = row["psnr_db_vs_fp32"] >= DEFAULT_MIN_PSNR
        report["results"].append(row)
        ready.append((case, call, row))
        print(f"[infer] {case.name}: {row['ms_per_frame']:.2f} ms/frame, {row['frames_per_s']:.1f} frames/s, "
              f"PSNR {row['psnr_db_vs_fp32']:.1f} dB, prepared in {row['prepare_s']:.1f} s", flush=True)
        write_json(path, report)
    if len(ready) > 1 and budget.left() > 10:
        interleave(ready, sync, args.repeats, args.rounds)
    report["fastest_passing_gate"] = fastest_passing(report["results"])
    write_json(path, report)
    print(format_infer(report), flush=True)
    return 0


def interleave(ready: list[tuple[InferCase, Callable[[], Any], dict[str, Any]]], sync: Callable[[], None],
               repeats: int, rounds: int) -> None:
    """Time every prepared path again in rounds, each round visiting all of them, so drift hits all alike; these
    medians replace the first ones (which stay in the row as ``first_*``)."""
    samples: dict[int, list[float]] = {i: [] for i in range(len(ready))}
    throughput: dict[int, list[float]] = {i: [] for i in range(len(ready))}
    per_round = max(1, repeats // rounds)
    for _ in range(rounds):
        for index, (_case, call, _row) in enumerate(ready):
            result = measure(call, sync, per_round)
            samples[index].append(result["ms_per_frame"])
            throughput[index].append(result["frames_per_s"])
    for index, (_case, _call, row) in enumerate(ready):
        row["first_ms_per_frame"], row["first_frames_per_s"] = row["ms_per_frame"], row["frames_per_s"]
        row["ms_per_frame"] = round(statistics.median(samples[index]), 3)
        row["frames_per_s"] = round(statistics.median(throughput[index]), 1)
        row["timing"] = f"interleaved, {rounds} rounds × {per_round} frames"


def fastest_passing(results: list[dict[str, Any]]) -> str | None:
    passing = [row for row in results if row["passes_gate"] and not row["case"].startswith("torch fp32 eager (plain")]
    return max(passing, key=lambda row: row["frames_per_s"])["case"] if passing else None


def format_infer(report: dict[str, Any]) -> str:
    lines = [f"Inference, {report['model']} at {report['width']}×{report['height']}, one frame per call, on "
             f"{report['device']}; gate: PSNR ≥ {report['gate_min_psnr_db']:g} dB against the fp32 network; "
             f"`--backend auto` here: {report.get('default_path')}",
             "| path | frames | ms/frame (synced) | frames/s (back to back) | PSNR dB | gate | prepare s |",
             "|---|---|---|---|---|---|---|"]
    for row in report["results"]:
        lines.append(f"| {row['case']} | {row['kind']} | {row['ms_per_frame']:.2f} | {row['frames_per_s']:.1f} | "
                     f"{row['psnr_db_vs_fp32']:.1f} | {'pass' if row['passes_gate'] else 'FAIL'} | "
                     f"{row['prepare_s']:.1f} |")
    for skip in report["skipped"]:
        lines.append(f"| {skip['case']} | — | {skip['reason'][:160]} | | | | |")
    lines.append(f"fastest path passing the gate: {report.get('fastest_passing_gate')}")
    return "\n".join(lines)


def machine(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"torch": torch.__version__, "cpu_count": os.cpu_count()}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    try:
        import onnxruntime as ort

        info["onnxruntime"] = ort.__version__
        info["onnxruntime_providers"] = ort.get_available_providers()
    except ImportError:
        info["onnxruntime"] = None
    return info


# ------------------------------------------------------------------------------------------------------- video


def make_video(path: Path, width: int, height: int, frames: int, fps: int = 30) -> None:
    """A slow pan across a real photo, H.264 (MPEG-4 part 2 where this PyAV has no libx264)."""
    import av
    import numpy as np
    from PIL import Image

    from fastnst.utils.images import load_rgb

    pan = frames * 2
    photo = np.asarray(load_rgb(REPO / "samples" / "castle.jpg").resize((width + pan, height),
                                                                         Image.Resampling.BICUBIC))
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    encode_frames(path, (photo[:, 2 * index: 2 * index + width] for index in range(frames)), width, height,
                  fps=fps, codec=codec)


def encode_frames(target: Path | BinaryIO, frames: Iterable[Any], width: int, height: int, *, fps: int = 30,
                  codec: str = "libx264", options: dict[str, str] | None = None,
                  thread_type: str | None = None) -> None:
    """Encode rgb24 arrays as yuv420p video into ``target``: a file (container from its suffix) or an in-memory
    MP4; ``thread_type`` sets the encoder's threading (PyAV's default when None)."""
    import av
    import numpy as np

    opened = av.open(str(target), "w") if isinstance(target, Path) else av.open(target, "w", format="mp4")
    with opened as container:
        stream = container.add_stream(codec, rate=fps, options=options or {})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if thread_type is not None:
            stream.codec_context.thread_type = thread_type
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def count_frames(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


VIDEO_VARIANTS = {"auto": [], "compile": ["--compile"]}  # the default command, and the same with --compile


def cmd_video(args: argparse.Namespace) -> int:
    budget = Budget(args.budget_s)
    width, height = (int(v) for v in args.size.split("x"))
    report: dict[str, Any] = {"part": "video", "model": args.model, "width": width, "height": height,
                              "command": f"fastnst stylize VIDEO -m {args.model} -o OUT.mp4 --backend auto "
                                         "--device auto", "variants": {name: " ".join(VIDEO_VARIANTS[name])
                                                                       or "(defaults)" for name in args.variants},
                              "runs": [], "skipped": [], "steady": {}}
    path = Path(args.work) / PART_FILES["video"]
    try:
        import av  # noqa: F401
    except ImportError as exc:
        report["skipped"].append({"case": "video", "reason": f"PyAV is not installed ({exc}); carry .whl"})
        write_json(path, report)
        print(format_video(report), flush=True)
        return 0
    with tempfile.TemporaryDirectory(prefix="fastnst-video-") as tmp:
        for frames in args.frames:
            make_video(Path(tmp) / f"in{frames}.mp4", width, height, frames)
        for variant in args.variants:
            for frames in args.frames:
                if video_run(args, report, variant, frames, Path(tmp), budget) != 0:
                    break
                write_json(path, report)
    for variant in args.variants:
        done = [run for run in report["runs"] if run["variant"] == variant and run["exit_code"] == 0]
        for run in done:
            run["frames_per_s_with_startup"] = round(run["frames"] / run["seconds"], 2)
        if len(done) >= 2 and done[-1]["seconds"] > done[0]["seconds"]:
            extra_frames = done[-1]["frames"] - done[0]["frames"]
            steady = round(extra_frames / (done[-1]["seconds"] - done[0]["seconds"]), 1)
            report["steady"][variant] = {"frames_per_s": steady,
                                         "startup_s": round(done[0]["seconds"] - done[0]["frames"] / steady, 2)}
    write_json(path, report)
    print(format_video(report), flush=True)
    return 0


def video_run(args: argparse.Namespace, report: dict[str, Any], variant: str, frames: int, tmp: Path,
              budget: Budget) -> int:
    """One ``fastnst stylize`` of the ``frames``-long clip; its exit code (-1: skipped for time)."""
    if budget.left() < 15:  # a run cut short by the limit measures nothing
        report["skipped"].append({"case": f"{variant}, {frames} frames",
                                  "reason": f"skipped: time budget ({budget.left():.0f} s left)"})
        return -1
    source, target = tmp / f"in{frames}.mp4", tmp / f"out_{variant}_{frames}.mp4"
    command = [sys.executable, "-m", "fastnst.cli", "stylize", str(source), "-m", args.model, "-o", str(target),
               "--backend", "auto", "--device", "auto", *VIDEO_VARIANTS[variant]]  # the defaults, spelled out
    print(f"[video] {variant}: {frames} frames at {args.size} (limit {budget.left():.0f} s)", flush=True)
    code, output, seconds = run_child(command, budget.left())
    notes = [line.strip() for line in output.splitlines()  # the path the CLI took, and errors; no progress bars
             if any(word in line for word in ("onnxruntime", "backend", "rror")) and "%|" not in line]
    run: dict[str, Any] = {"variant": variant, "frames": frames, "seconds": round(seconds, 2), "exit_code": code,
                           "notes": notes[:6]}
    if code == 0:
        run["frames_written"] = count_frames(target)
    else:
        run["error"] = quiet(output).strip().splitlines()[-1:] or ["no output"]
    report["runs"].append(run)
    return code


def format_video(report: dict[str, Any]) -> str:
    lines = [f"End to end: {report['command']} ({report['width']}×{report['height']} H.264, a pan over a photo; "
             "steady frames/s = extra frames / extra seconds between the two lengths, so start-up drops out)",
             "| variant | frames | seconds | frames written | frames/s incl. start-up | notes |",
             "|---|---|---|---|---|---|"]
    for run in report["runs"]:
        notes = "; ".join(run.get("notes", []))[:160] or "; ".join(run.get("error", []))[:160]
        lines.append(f"| {run.get('variant', 'auto')} | {run['frames']} | {run['seconds']} | "
                     f"{run.get('frames_written', '—')} | {run.get('frames_per_s_with_startup', '—')} | {notes} |")
    for skip in report["skipped"]:
        lines.append(f"| {skip['case']} | {skip['reason']} | | | | |")
    for variant, steady in report.get("steady", {}).items():
        lines.append(f"{variant}: steady frames/s {steady['frames_per_s']}; start-up s {steady['startup_s']}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------ server


def cmd_server(args: argparse.Namespace) -> int:
    path = Path(args.work) / PART_FILES["server"]
    report: dict[str, Any] = {"part": "server", "device": args.device, "skipped": []}
    missing = [name for name in ("fastapi", "fastapi_offline", "uvicorn", "httpx")
               if not _importable(name)]
    if missing:
        report["skipped"].append({"case": "server", "reason": f"not installed: {', '.join(missing)}; carry .whl"})
        write_json(path, report)
        print(format_server(report), flush=True)
        return 0
    raw = Path(args.work) / "server_load.json"
    command = [sys.executable, str(SERVER_SCRIPT), "--device", args.device, "--seconds", str(args.seconds),
               "--clients", str(args.clients), "--side", str(args.side), "--warmup-requests", str(args.warmup),
               "--model", args.model, "--output", str(raw)]
    print(f"[server] {' '.join(command[1:])} (limit {args.budget_s:.0f} s)", flush=True)
    code, output, seconds = run_child(command, args.budget_s)
    summary = [line for line in quiet(output).splitlines() if line[:1] not in (" ", "{", "}")]  # no JSON dumps
    print("\n".join(summary)[-2500:], flush=True)
    report.update(command=" ".join(command[1:]), exit_code=code, seconds=round(seconds, 1))
    if raw.is_file():
        report["server_load"] = json.loads(raw.read_text())
    else:
        report["skipped"].append({"case": "server", "reason": f"exit code {code}" + (" (time limit)" if code == 124
                                                                                       else "")})
    write_json(path, report)
    print(format_server(report), flush=True)
    return 0


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def format_server(report: dict[str, Any]) -> str:
    lines = ["Server (benchmarks/server_load.py, default backend): batched against unbatched",
             "| mode | images/s | p50 s | p95 s | errors |", "|---|---|---|---|---|"]
    load = report.get("server_load")
    if load:
        for name, mode in load["modes"].items():
            latency = mode["latency_s"]
            lines.append(f"| {name} | {mode['throughput_img_s']:.2f} | {latency['p50'] or 0:.3f} | "
                         f"{latency['p95'] or 0:.3f} | {mode['errors'] or 'none'} |")
        lines.append(f"batched / unbatched: {load.get('speedup')}× ({load['clients']} clients, {load['seconds']} s "
                     f"per mode, {load['image']}, device {load['device']})")
    for skip in report["skipped"]:
        lines.append(f"| skipped | {skip['reason']} | | | |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------- summary


def cmd_summary(args: argparse.Namespace) -> int:
    work = Path(args.work)
    parts: dict[str, Any] = {}
    for part, name in PART_FILES.items():
        file = work / name
        parts[part] = json.loads(file.read_text()) if file.is_file() else None
    combined = {"issue": 17, "toy": args.toy, "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "script": "benchmarks/gpu_issue17.sh", "parts": parts}
    out = Path(args.output)
    write_json(out, combined)
    print("\n========== issue #17 summary ==========")
    for part, formatter in (("train", format_train), ("infer", format_infer), ("video", format_video),
                            ("server", format_server)):
        report = parts[part]
        print(f"\n{formatter(report) if report else f'{part}: no results (not run, or stopped before writing)'}")
    print("\n" + "\n".join(goal_lines(parts)))
    print(f"\nwrote {out}")
    return 0


def goal_lines(parts: dict[str, Any]) -> list[str]:
    """The issue's numeric goals against what was measured."""
    lines = ["Goals (issue #17):"]
    train = parts.get("train")
    if train:
        ratios = [result["speedup_vs_reference"] for run in train["runs"] if run["batch_size"] == train["batch_size"]
                  for name, result in run.get("results", {}).items() if name != "reference"]
        best_rate = max((result["images_per_second"] for run in train["runs"]
                         for name, result in run.get("results", {}).items() if name != "reference"), default=None)
        lines.append(f"- training ≥ 3× the reference at batch {train['batch_size']}: best "
                     f"{max(ratios):.2f}×" if ratios else "- training: no fastnst variant measured")
        if best_rate is not None:
            lines.append(f"- best training images/s at any batch: {best_rate:.1f}")
    infer = parts.get("infer")
    if infer:
        fastest = infer.get("fastest_passing_gate")
        rate = next((row["frames_per_s"] for row in infer["results"] if row["case"] == fastest), None)
        lines.append(f"- ≥ 400 frames/s at {infer['width']}×{infer['height']} passing the gate: fastest passing is "
                     f"{fastest} at {rate} frames/s; `--backend auto` here runs {infer.get('default_path')}")
    video = parts.get("video")
    if video:
        steady = {name: entry["frames_per_s"] for name, entry in video.get("steady", {}).items()}
        lines.append(f"- end-to-end video, frames/s steady: {steady or 'not measured'}")
    server = parts.get("server")
    if server and server.get("server_load"):
        lines.append(f"- server batched ≥ 1.5× unbatched: {server['server_load'].get('speedup')}×")
    return lines


# ----------------------------------------------------------------------------------------------------- prepare


def cmd_prepare(args: argparse.Namespace) -> int:
    """Fill .whl/ and .device/ for the device call, and say whether everything that travels fits."""
    wheels, payload = REPO / ".whl", REPO / ".device"
    wheels.mkdir(exist_ok=True)
    platforms = [item for tag in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                                  "manylinux2014_x86_64") for item in ("--platform", tag)]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
               "3.12", "--implementation", "cp", *platforms, "-d", str(wheels), *DEVICE_WHEELS]
    code = subprocess.call(command)
    if code != 0:
        print(f"pip download failed (exit code {code})", file=sys.stderr)
        return code
    from PIL import Image

    styles = payload / "styles"
    styles.mkdir(parents=True, exist_ok=True)
    style = Path(args.style)
    with Image.open(style) as image:
        small = image.convert("RGB")
        small.thumbnail((512, 512), Image.Resampling.LANCZOS)
        small.save(styles / style.name, quality=92)
    if args.vgg:
        import torch

        state = torch.load(args.vgg, map_location="cpu", weights_only=True)
        torch.save({key: value.half() for key, value in state.items()}, payload / "vgg16_features.pth")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout  # what a device call sends besides carry
    tree = sum((REPO / name).stat().st_size for name in set(listed.decode().split("\0")) if name
               and (REPO / name).is_file())
    carried = sum(file.stat().st_size for folder in (wheels, payload) for file in folder.rglob("*") if file.is_file())
    total = tree + carried
    print(f"working tree {tree / 2**20:.1f} MiB + .whl and .device {carried / 2**20:.1f} MiB = "
          f"{total / 2**20:.1f} MiB (the device call's limit: {CARRY_LIMIT_BYTES / 2**20:.0f} MiB)")
    if total > CARRY_LIMIT_BYTES:
        print("too large for one device call: see the header of benchmarks/gpu_issue17.sh", file=sys.stderr)
        return 2
    return 0


# -------------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def part(name: str, budget: float) -> argparse.ArgumentParser:
        parser_ = sub.add_parser(name)
        parser_.add_argument("--work", required=True, help="folder for the parts' JSON files")
        parser_.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
        parser_.add_argument("--budget-s", type=float, default=budget, help="the part's time budget")
        parser_.add_argument("--model", default="starry_night")
        return parser_

    train = part("train", 240)
    train.add_argument("--size", type=int, default=256)
    train.add_argument("--batch-size", type=int, default=4)
    train.add_argument("--more-batches", type=int, nargs="*", default=[8, 16])
    train.add_argument("--group", action="append", required=True,
                       help="variants timed in one run with their own reference (comma list); repeatable")
    train.add_argument("--rounds", type=int, default=3)
    train.add_argument("--steps", type=int, default=10)
    train.add_argument("--warmup", type=int, default=3)
    train.add_argument("--run-cap-s", type=float, default=150, help="the longest one run may take")
    train.add_argument("--min-run-s", type=float, default=25, help="do not start a run with less time left")
    train.add_argument("--data-dir", required=True)
    train.add_argument("--style", required=True)
    train.add_argument("--vgg-note", default="", help="where the VGG16 weights came from (for the report)")
    train.set_defaults(handler=cmd_train)

    infer = part("infer", 160)
    infer.add_argument("--size", default="1920x1080", help="WIDTHxHEIGHT")
    infer.add_argument("--repeats", type=int, default=40)
    infer.add_argument("--rounds", type=int, default=4, help="interleaved rounds after all paths are ready")
    infer.add_argument("--compile-estimate-s", type=float, default=50, help="skip a compile mode with less left")
    infer.add_argument("--cases", default="", help="comma list of case numbers to run (default: all)")
    infer.set_defaults(handler=cmd_infer)

    video = part("video", 35)
    video.add_argument("--size", default="1920x1080", help="WIDTHxHEIGHT")
    video.add_argument("--frames", type=int, nargs="+", default=[30, 120], help="two lengths: start-up drops out")
    video.add_argument("--variants", nargs="+", default=list(VIDEO_VARIANTS), choices=list(VIDEO_VARIANTS),
                       help="the default command, and the same with --compile")
    video.set_defaults(handler=cmd_video)

    server = part("server", 55)
    server.add_argument("--seconds", type=float, default=10)
    server.add_argument("--clients", type=int, default=16)
    server.add_argument("--side", type=int, default=512)
    server.add_argument("--warmup", type=int, default=2)
    server.set_defaults(handler=cmd_server)

    summary = sub.add_parser("summary")
    summary.add_argument("--work", required=True)
    summary.add_argument("--output", required=True)
    summary.add_argument("--toy", action="store_true")
    summary.set_defaults(handler=cmd_summary)

    prepare = sub.add_parser("prepare")
    prepare.add_argument("--style", default=str(REPO.parent / "shared" / "data" / "styles" /
                                                "van_gogh_starry_night.jpg"))
    prepare.add_argument("--vgg", default="", help="also carry these VGG16 weights as fp16 (29 MiB)")
    prepare.set_defaults(handler=cmd_prepare)

    args = parser.parse_args(argv)
    if getattr(args, "work", None):
        Path(args.work).mkdir(parents=True, exist_ok=True)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
