#!/usr/bin/env python3
"""What the persistent torch.compile cache saves: ``fastnst stylize --compile`` run as a user would, in a new
process each time, first with an empty cache folder and then again with the one it filled.

    python benchmarks/compile_cache.py [--rounds 2] [--side 256] [--output FILE]

Each round starts from a fresh ``FASTNST_CACHE`` (where fastnst keeps torch.compile's cache unless
``TORCHINDUCTOR_CACHE_DIR`` is set), runs the cold and the warm process, and an eager run (no ``--compile``) for the
cost of everything else; medians of the processes' wall times. On the CPU of this machine: ``--device cpu``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fastnst.utils.cache import COMPILE_CACHE_ENV  # noqa: E402
from fastnst.utils.machine import cpu_model  # noqa: E402


def stylize_seconds(image: Path, out: Path, cache: Path, compile: bool, threads: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != COMPILE_CACHE_ENV}
    env.update(FASTNST_CACHE=str(cache), OMP_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore")
    command = [sys.executable, "-m", "fastnst.cli", "-q", "stylize", str(image), "-m", "starry_night", "-o",
               str(out), "--device", "cpu", "--backend", "torch", *(["--compile"] if compile else [])]
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--side", type=int, default=256, help="the photo's side, px (a crop of samples/castle.jpg)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "compile_cache.json")
    args = parser.parse_args()

    from PIL import Image

    runs: dict[str, list[float]] = {"eager": [], "compile, empty cache": [], "compile, cache filled": []}
    with tempfile.TemporaryDirectory(prefix="fastnst-compile-cache-") as folder:
        tmp = Path(folder)
        image = tmp / "photo.png"
        with Image.open(REPO / "samples" / "castle.jpg") as photo:
            photo.convert("RGB").crop((0, 0, args.side, args.side)).save(image)
        for index in range(args.rounds):
            cache = tmp / f"cache{index}"
            runs["eager"].append(stylize_seconds(image, tmp / "eager.png", cache, False, args.threads))
            runs["compile, empty cache"].append(stylize_seconds(image, tmp / "cold.png", cache, True, args.threads))
            runs["compile, cache filled"].append(stylize_seconds(image, tmp / "warm.png", cache, True, args.threads))
            print(f"round {index + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in runs.items()), flush=True)
    medians = {name: statistics.median(values) for name, values in runs.items()}
    report = {"benchmark": "compile_cache", "machine": {"cpu": cpu_model(), "threads": args.threads},
              "settings": {"rounds": args.rounds, "side": args.side, "device": "cpu"},
              "process_seconds": runs, "median_seconds": medians}
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(" | ".join(f"{name}: {value:.1f} s" for name, value in medians.items()) + f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
