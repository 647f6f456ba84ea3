#!/usr/bin/env python3
"""Batch stylization on Ray Data against the local pipeline, interleaved in one run.

N photos (default 150, drawn in name order from ../shared/data/photos and resized to ``--side`` px on their long
side) are stylized with a shipped model by:

- ``local``: ``fastnst stylize`` in one process (the model's default backend, every core);
- ``ray_w1`` / ``ray_w2``: ``fastnst stylize --ray --workers 1|2 --address ADDR``, joining a Ray instance this
  script started (``--worker-cpus 1``: each actor one thread);
- ``dataset_w1`` / ``dataset_w2``: ``fastnst.stylize_dataset`` in this process, ``ray.data.read_images`` →
  stylize → ``write_images`` (the data-augmentation path).

Each mode runs on a small batch (``--small`` photos) and on all N, every round in a rotated order, so the time
splits into a fixed cost (process and Ray/actor start-up, model loading) and a per-image cost: steady images/s =
1 / per-image cost, and overhead per image vs ``local`` is the difference of the per-image costs. ``cold`` is one
``--ray --workers 2`` run of the small batch without ``--address``, so it starts (and stops) its own Ray instance.
Results are printed and written to benchmarks/results/ray_batch_cpu.json. Usage:

    python benchmarks/ray_batch.py [--photos 150] [--side 512] [--model starry_night] [--rounds 2] [--small 6]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image

from fastnst.utils.machine import cpu_details

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO.parent / "shared" / "data" / "photos"
FASTNST = [sys.executable, "-m", "fastnst.cli", "-q", "stylize"]
CLI_MODES = {"local": [], "ray_w1": ["--ray", "--workers", "1"], "ray_w2": ["--ray", "--workers", "2"]}
DATASET_MODES = {"dataset_w1": 1, "dataset_w2": 2}


def prepare_photos(count: int, side: int, folder: Path) -> Path:
    """The first ``count`` photos (cycling when there are fewer) as JPEGs of ``side`` px on the long side."""
    sources = sorted(PHOTOS.glob("*.jpg"))
    if not sources:
        sys.exit(f"no photos under {PHOTOS}")
    folder.mkdir(parents=True)
    for index in range(count):
        with Image.open(sources[index % len(sources)]) as image:
            image = image.convert("RGB")
            image.thumbnail((side, side))
            image.save(folder / f"{index:04d}.jpg", quality=92)
    return folder


def run_cli(photos: Path, out: Path, model: str, extra: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([*FASTNST, str(photos), "-m", model, "-o", str(out), *extra], capture_output=True,
                          text=True, cwd=REPO, timeout=3600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{extra or 'local'} failed:\n{done.stderr[-3000:]}")
    return seconds


def run_dataset(ray: Any, photos: Path, out: Path, model: str, workers: int) -> float:
    import fastnst

    started = time.perf_counter()
    dataset = ray.data.read_images(str(photos), mode="RGB")
    fastnst.stylize_dataset(dataset, model, workers=workers, device="cpu").write_images(
        str(out), column="image", file_format="jpeg")
    return time.perf_counter() - started


def count_outputs(folder: Path) -> int:
    return sum(1 for path in folder.rglob("*") if path.is_file() and not path.name.startswith("."))


def fit(small: list[float], full: list[float], n_small: int, n_full: int) -> dict[str, float]:
    """Fixed and per-image seconds from the medians of the two batch sizes: t = fixed + per_image × n."""
    t_small, t_full = statistics.median(small), statistics.median(full)
    per_image = (t_full - t_small) / (n_full - n_small)
    return {"seconds_small": round(t_small, 2), "seconds_full": round(t_full, 2),
            "images_per_s_end_to_end": round(n_full / t_full, 3), "per_image_ms": round(per_image * 1000, 1),
            "steady_images_per_s": round(1 / per_image, 3) if per_image > 0 else None,
            "fixed_s": round(t_small - per_image * n_small, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=150)
    parser.add_argument("--small", type=int, default=6, help="photos in the small batch [default: 6]")
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--model", default="starry_night")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "ray_batch_cpu.json")
    args = parser.parse_args()
    if not 1 <= args.small < args.photos:
        sys.exit("--small must be at least 1 and below --photos")

    import ray

    work = Path(tempfile.mkdtemp(prefix="fastnst-ray-batch-"))
    try:
        full = prepare_photos(args.photos, args.side, work / "full")
        small = prepare_photos(args.small, args.side, work / "small")
        load_before = os.getloadavg()
        started = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        ray_start_s = time.perf_counter() - started
        address = ray.get_runtime_context().gcs_address
        ray.data.DataContext.get_current().enable_progress_bars = False
        times: dict[str, dict[str, list[float]]] = {mode: {"small": [], "full": []}
                                                    for mode in [*CLI_MODES, *DATASET_MODES]}
        modes = list(times)
        for round_index in range(args.rounds):
            order = modes[round_index % len(modes):] + modes[:round_index % len(modes)]
            for mode in order:
                for size, photos in (("small", small), ("full", full)):
                    out = work / f"out-{mode}-{size}-{round_index}"
                    if mode in CLI_MODES:
                        flags = CLI_MODES[mode] + (["--address", address] if mode != "local" else [])
                        seconds = run_cli(photos, out, args.model, flags)
                    else:
                        seconds = run_dataset(ray, photos, out, args.model, DATASET_MODES[mode])
                    expected = args.photos if size == "full" else args.small
                    if count_outputs(out) != expected:
                        sys.exit(f"{mode} wrote {count_outputs(out)} files, expected {expected}")
                    shutil.rmtree(out)
                    times[mode][size].append(seconds)
                    print(f"round {round_index + 1} {mode:>10} {size:>5}: {seconds:7.1f} s", flush=True)
        ray.shutdown()
        cold = run_cli(small, work / "out-cold", args.model, ["--ray", "--workers", "2"])
        load_after = os.getloadavg()
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    results = {mode: fit(runs["small"], runs["full"], args.small, args.photos) for mode, runs in times.items()}
    local_ms = results["local"]["per_image_ms"]
    for row in results.values():
        row["overhead_per_image_ms_vs_local"] = round(row["per_image_ms"] - local_ms, 1)
    import onnxruntime
    import torch

    report = {
        "benchmark": "benchmarks/ray_batch.py", "photos": args.photos, "small_batch": args.small, "side": args.side,
        "model": args.model, "rounds": args.rounds,
        "machine": {"cpu": cpu_details(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "ray": ray.__version__,
                    "load_average_before": [round(value, 2) for value in load_before],
                    "load_average_after": [round(value, 2) for value in load_after]},
        "ray_init_s": round(ray_start_s, 2), "cold_ray_w2_small_batch_s": round(cold, 2),
        "raw_seconds": times, "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{args.photos} photos at {args.side} px, model {args.model}, {args.rounds} round(s), "
          f"{os.cpu_count()} cores ({cpu_details()})")
    print(f"{'mode':>10} {'end-to-end img/s':>17} {'steady img/s':>13} {'ms/img':>7} {'vs local':>9} {'fixed s':>8}")
    for mode, row in results.items():
        print(f"{mode:>10} {row['images_per_s_end_to_end']:>17} {row['steady_images_per_s']!s:>13} "
              f"{row['per_image_ms']:>7} {row['overhead_per_image_ms_vs_local']:>+9} {row['fixed_s']:>8}")
    print(f"ray.init here: {ray_start_s:.1f} s; cold `--ray --workers 2` on {args.small} photos (own Ray): "
          f"{cold:.1f} s; wrote {args.output}")


if __name__ == "__main__":
    main()
