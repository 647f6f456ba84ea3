#!/usr/bin/env python3
"""Where a CPU training step's time goes: fastnst's default trainer vs the pytorch/examples recipe, one thread each.

The measure of issue 16: process CPU time (``time.process_time``) of one training step with one intra-op thread,
256² crops × batch 4, VGG16, the same photos and painting for both. Process time on one thread is what the step
costs whatever else runs on the machine; the two trainers are timed step by step, interleaved (the order flips
every round), after warm-up steps, and the medians give the ratio. Then one more step of each runs under
``torch.profiler`` and the top operators by self CPU time are printed and saved.

    python benchmarks/train_profile.py [--rounds 6] [--json benchmarks/results/train_profile.json]

fastnst runs with its config defaults (``amp = "auto"``: bf16 autocast on CPUs with native bf16, channels_last);
data loading is excluded for both (the batches are loaded before timing).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_recipe import ReferenceTrainer

import fastnst
from fastnst.perceptual.weights.resolve import load_vgg_features_state
from fastnst.training.config import load_config, parse_overrides
from fastnst.training.data import CropSpec, PhotoCrops
from fastnst.training.trainer import Trainer
from fastnst.utils.images import image_to_tensor, load_rgb
from fastnst.utils.machine import cpu_details

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def git_state() -> str:
    """The commit of the imported fastnst package's checkout, with '+changes' when its tree differs from it."""
    root = Path(fastnst.__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout; see the label)"
    return commit + ("+changes" if dirty else "")


def top_operators(step: Callable[[], None], count: int) -> tuple[list[dict[str, Any]], float, str]:
    """One step under torch.profiler: the ``count`` operators with the most self CPU time, the total, the table."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    averages = prof.key_averages()
    total_us = sum(event.self_cpu_time_total for event in averages)
    ranked = sorted(averages, key=lambda event: event.self_cpu_time_total, reverse=True)[:count]
    rows = [{"op": event.key, "self_ms": round(event.self_cpu_time_total / 1e3, 1),
             "share": round(event.self_cpu_time_total / total_us, 4),
             "total_ms": round(event.cpu_time_total / 1e3, 1), "calls": event.count} for event in ranked]
    return rows, total_us / 1e6, averages.table(sort_by="self_cpu_time_total", row_limit=count)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(DATA / "photos"))
    parser.add_argument("--style", default=str(DATA / "styles" / "van_gogh_starry_night.jpg"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps of each trainer first")
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds; each times one step of each trainer")
    parser.add_argument("--top", type=int, default=15, help="operators listed per profile")
    parser.add_argument("--no-profile", action="store_true", help="only the timing")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a fastnst config override (TOML value syntax), e.g. --set amp='\"none\"'; "
                             "the defaults are what the issue measures")
    parser.add_argument("--label", default="", help="free text saved with the results (e.g. which code ran)")
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "train_profile.json"),
                        help="results file ('' for none)")
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(0)
    dataset = PhotoCrops(args.data_dir, CropSpec(args.size), seed=0, max_pixels=None)
    steps = args.warmup + args.rounds + 1
    batches = [torch.stack([dataset[(i * args.batch_size + j) % len(dataset)][0] for j in range(args.batch_size)])
               for i in range(steps)]

    overrides = parse_overrides(args.set, "--set")
    config = load_config(None, {
        "style_image": args.style, "data_dir": args.data_dir, "image_size": args.size, "batch_size": args.batch_size,
        "steps": 10**6, "device": "cpu", "tensorboard": False, "num_workers": 0,
        "output_dir": tempfile.mkdtemp(prefix="fastnst-train-profile-"), **overrides,
    })
    trainer = Trainer(config)
    reference = ReferenceTrainer(load_vgg_features_state("vgg16"), image_to_tensor(load_rgb(args.style)),
                                 torch.device("cpu"))

    def fastnst_step(batch: torch.Tensor) -> None:
        float(trainer._train_step(batch, config.learning_rate)["total"])

    def reference_step(batch: torch.Tensor) -> None:
        reference.step(batch * 255.0)

    runners = {"fastnst": fastnst_step, "reference": reference_step}
    warmup: dict[str, dict[str, float]] = {}
    for name, run in runners.items():  # with compile = "default", the compilation happens here
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(args.warmup):
            run(batches[i])
        warmup[name] = {"wall_s": round(time.perf_counter() - wall, 2),
                        "process_cpu_s": round(time.process_time() - cpu, 2)}
    print("warm-up: " + ", ".join(f"{n} {w['wall_s']:.1f} s wall" for n, w in warmup.items()), flush=True)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for r in range(args.rounds):
        order = list(runners) if r % 2 == 0 else list(reversed(runners))
        for name in order:
            start = time.process_time()
            runners[name](batches[args.warmup + r])
            times[name].append(time.process_time() - start)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in runners), flush=True)

    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["reference"] / medians["fastnst"]
    paired = [ref / fast for ref, fast in zip(times["reference"], times["fastnst"], strict=True)]
    print(f"\nprocess CPU s/step, 1 thread, {args.size}² × {args.batch_size}, VGG16 ({cpu_details()}, torch "
          f"{torch.__version__}, fastnst {git_state()})")
    for name in runners:
        print(f"  {name:<10} median {medians[name]:.3f}  min {min(times[name]):.3f}  max {max(times[name]):.3f}")
    print(f"  ratio reference/fastnst: {ratio:.2f}× (per-round ratios {min(paired):.2f}–{max(paired):.2f})")

    profiles: dict[str, Any] = {}
    if not args.no_profile:
        last = batches[args.warmup + args.rounds]
        for name, run in runners.items():
            rows, total, table = top_operators(lambda run=run: run(last), args.top)
            profiles[name] = {"profiled_step_self_cpu_s": round(total, 3), "top_operators": rows}
            print(f"\n{name}: one profiled step, {total:.2f} s of self CPU time\n{table}")

    if args.json:
        result = {
            "date": datetime.date.today().isoformat(),
            "label": args.label,
            "command": shlex.join(["python", *sys.argv]),
            "machine": {"cpu": cpu_details(), "host": platform.node(), "torch": torch.__version__,
                        "threads": torch.get_num_threads(), "cpu_count": os.cpu_count()},
            "fastnst": {"source": str(Path(fastnst.__file__).resolve().parent), "git": git_state(),
                        "amp": str(trainer.amp_dtype), "channels_last": config.channels_last,
                        "overrides": overrides},
            "settings": {"size": args.size, "batch_size": args.batch_size, "warmup": args.warmup,
                         "rounds": args.rounds, "data_dir": args.data_dir, "style": args.style},
            "warmup": warmup,
            "seconds_per_step": {name: [round(t, 4) for t in values] for name, values in times.items()},
            "median_seconds_per_step": {name: round(value, 4) for name, value in medians.items()},
            "ratio_reference_over_fastnst": round(ratio, 3),
            "per_round_ratios": [round(value, 3) for value in paired],
            "profiles": profiles,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
