#!/usr/bin/env python3
"""Training throughput: fastnst's trainer vs the plain pytorch/examples recipe, in the same run.

Both train the same architecture at 256² crops, batch 4, with VGG16 and real photos; each variant is timed on the
same pre-loaded batches (data loading excluded for both), interleaved in rounds so machine noise hits all
variants alike; the median step time is reported. Usage:

    python benchmarks/train_throughput.py [--device cpu|cuda] [--rounds 3] [--steps 4] [--threads N]

This is wall-clock throughput with all threads; ``benchmarks/train_profile.py`` measures the per-step process CPU
time on one thread (what contention does not inflate) and where it goes.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_recipe import ReferenceTrainer

from fastnst.perceptual.weights.resolve import load_vgg_features_state
from fastnst.training.config import load_config
from fastnst.training.data import CropSpec, PhotoCrops
from fastnst.training.trainer import Trainer
from fastnst.utils.machine import device_name

REPO = Path(__file__).resolve().parents[1]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "photos"))
    parser.add_argument("--style",
                        default=str(REPO.parent / "shared" / "data" / "styles" / "van_gogh_starry_night.jpg"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per variant")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--variants", default="auto", help="comma list of fastnst variants, e.g. "
                        "'fp32,fp32-cl,bf16-cl,bf16-cl-compile,bf16-cl-graphs' (auto: a sensible set for the device)")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: PyTorch's default)")
    parser.add_argument("--json", help="also write results to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    dataset = PhotoCrops(args.data_dir, CropSpec(args.size), seed=0, max_pixels=None)
    batches = [torch.stack([dataset[i * args.batch_size + j][0] for j in range(args.batch_size)])
               for i in range(args.rounds * args.steps + args.warmup)]

    names = args.variants.split(",") if args.variants != "auto" else (
        ["fp32", "fp32-cl", "bf16-cl", "bf16-cl-compile", "bf16-cl-graphs"] if device.type == "cuda"
        else ["fp32", "fp32-cl", "bf16-cl"])
    runners: dict[str, object] = {}
    from fastnst.utils.images import image_to_tensor, load_rgb
    style = image_to_tensor(load_rgb(args.style))
    runners["reference"] = ReferenceTrainer(load_vgg_features_state("vgg16"), style, device)
    tmp = tempfile.mkdtemp(prefix="fastnst-bench-")
    for name in names:
        config = load_config(None, {
            "style_image": args.style, "data_dir": args.data_dir, "image_size": args.size,
            "batch_size": args.batch_size, "steps": 10**6, "device": device.type, "tensorboard": False,
            "amp": "bf16" if name.startswith("bf16") else "none", "channels_last": "-cl" in name,
            "compile": {"compile": "default", "graphs": "reduce-overhead"}.get(name.rsplit("-", 1)[-1], "off"),
            "output_dir": f"{tmp}/{name}", "num_workers": 0,
        })
        runners[name] = Trainer(config)
    failed: dict[str, str] = {}

    def run_step(name: str, batch: torch.Tensor) -> None:
        runner = runners[name]
        if isinstance(runner, ReferenceTrainer):
            runner.step(batch.to(device) * 255.0)
        else:
            losses = runner._train_step(batch, 1e-3)
            float(losses["total"])

    for name in list(runners):  # warm-up (and compilation); a variant that fails is reported, not fatal
        try:
            for i in range(args.warmup):
                run_step(name, batches[i])
        except Exception as exc:  # noqa: BLE001 - benchmark keeps going with the other variants
            failed[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            del runners[name]
    times: dict[str, list[float]] = {name: [] for name in runners}
    for r in range(args.rounds):
        for name in runners:
            sync(device)
            start = time.perf_counter()
            for s in range(args.steps):
                run_step(name, batches[args.warmup + r * args.steps + s])
            sync(device)
            times[name].append((time.perf_counter() - start) / args.steps)

    ref = statistics.median(times["reference"])
    hardware = device_name(device)
    print(f"training throughput, {args.size}² crops, batch {args.batch_size}, VGG16, device {device.type} "
          f"({hardware}, torch {torch.__version__}, {torch.get_num_threads()} threads), host {socket.gethostname()}")
    print(f"{'variant':<18}{'s/step':>10}{'img/s':>10}{'vs reference':>14}")
    results = {}
    for name, values in times.items():
        median = statistics.median(values)
        results[name] = {"seconds_per_step": median, "images_per_second": args.batch_size / median,
                         "speedup_vs_reference": ref / median, "rounds": values}
        print(f"{name:<18}{median:>10.4f}{args.batch_size / median:>10.2f}{ref / median:>13.2f}×")
    for name, reason in failed.items():
        print(f"{name:<18}failed: {reason}")
    if args.json:
        settings = {"size": args.size, "batch_size": args.batch_size, "rounds": args.rounds, "steps": args.steps,
                    "warmup": args.warmup, "data_dir": args.data_dir, "style": args.style,
                    "threads": torch.get_num_threads()}
        Path(args.json).write_text(json.dumps({"device": device.type, "hardware": hardware,
                                               "torch": torch.__version__, "settings": settings,
                                               "results": results, "failed": failed}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
