#!/usr/bin/env python3
"""Peak memory and time of tiled stylization of an 8K photo (7680×4320) on the CPU.

The photo is made in a first subprocess (a real photo from ../shared/data upscaled, or a synthetic texture), and
stylized in a second one that does exactly what ``fastnst stylize big.jpg --tile 512`` does: decode, stylize in
tiles, encode. Its peak resident set size is the kernel's ``ru_maxrss`` for that child alone, so nothing the
parent allocated counts (``os.wait4`` returns that child's own rusage). The whole-image pass would need ~1000
bytes/pixel (≈33 GB here). Usage:

    python benchmarks/tiling_memory.py [--size 7680x4320] [--tile 512] [--model starry_night] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FASTNST_SHARED_DATA", REPO.parent / "shared" / "data"))

MAKE = """
import sys
from pathlib import Path
import numpy as np
from PIL import Image
width, height, target, shared = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
photos = sorted((shared / "photos").glob("*.jpg")) if (shared / "photos").is_dir() else []
if photos:
    source = Image.open(photos[len(photos) // 3]).convert("RGB")
    image = source.resize((width, height), Image.Resampling.BICUBIC)
else:  # smooth colour fields plus fine noise, so every tile has content
    rng = np.random.default_rng(0)
    base = np.asarray(Image.fromarray(rng.integers(0, 255, (9, 16, 3), dtype=np.uint8)).resize((width, height),
                      Image.Resampling.BICUBIC), dtype=np.int16)
    image = Image.fromarray(np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8))
image.save(target, quality=92)
print(photos[len(photos) // 3].name if photos else "synthetic")
"""

RUN = """
import sys, time, torch
from fastnst.utils.images import load_image, save_image
from fastnst.model.files import load_model
from fastnst.runtime.tiling import stylize_image
torch.set_num_threads(int(sys.argv[4]))
model, _ = load_model(sys.argv[3], device="cpu")
start = time.perf_counter()
loaded = load_image(sys.argv[1])
result = stylize_image(model, loaded.rgb, tile=int(sys.argv[5]))
save_image(result, sys.argv[2])
print(time.perf_counter() - start)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="7680x4320")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--model", default="starry_night")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "tiling_memory.json"))
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as tmp:
        photo, out = Path(tmp) / "big.jpg", Path(tmp) / "big_styled.jpg"
        made = subprocess.run([sys.executable, "-c", MAKE, str(width), str(height), str(photo), str(SHARED)],
                              check=True, capture_output=True, text=True, env=env)
        log = Path(tmp) / "stdout.txt"
        wall = time.perf_counter()
        with open(log, "w") as handle:
            proc = subprocess.Popen([sys.executable, "-c", RUN, str(photo), str(out), args.model, str(args.threads),
                                     str(args.tile)], stdout=handle, env=env, cwd=REPO)
            _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: its peak RSS alone
        wall = time.perf_counter() - wall
        if os.waitstatus_to_exitcode(status) != 0:
            print(f"stylize subprocess failed with status {os.waitstatus_to_exitcode(status)}", file=sys.stderr)
            return 1
        stdout = log.read_text()
        peak_kib = usage.ru_maxrss  # KiB on Linux
        report = {
            "benchmark": "tiling_memory",
            "size": [width, height],
            "megapixels": round(width * height / 1e6, 1),
            "photo": made.stdout.strip(),
            "model": args.model,
            "tile": args.tile,
            "threads": args.threads,
            "peak_rss_gib": round(peak_kib / 2**20, 3),
            "stylize_seconds": round(float(stdout.strip().splitlines()[-1]), 1),
            "wall_seconds": round(wall, 1),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),  # robust to other load on the machine
            "load_average_after": round(os.getloadavg()[0], 1),
            "output_bytes": out.stat().st_size,
            "machine": f"{platform.machine()} {os.cpu_count()} cpus, {platform.python_implementation()} "
                       f"{platform.python_version()}",
        }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
