#!/usr/bin/env python3
"""libx264 as ``fastnst stylize`` writes videos (CRF 18, preset medium), with PyAV's default slice threads against
frame and slice threads (``thread_type = "AUTO"``, what fastnst asks for).

    python benchmarks/video_encoder.py [--size 1920x1080] [--frames 60] [--rounds 3] [--output FILE]

The frames are a slow pan over a photo (the clip of benchmarks/gpu_paths.py); both settings encode the same
frames, alternating within every round; medians of the wall time.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from gpu_paths import encode_frames, make_video  # noqa: E402

from fastnst.utils.machine import cpu_model  # noqa: E402

SETTINGS = {"slice threads (PyAV's default)": "SLICE", "frame and slice threads (fastnst)": "AUTO"}


def encode_seconds(frames: list, thread_type: str) -> float:
    """Wall seconds libx264 takes to encode ``frames`` (rgb24 arrays) with ``thread_type`` threading."""
    height, width = frames[0].shape[:2]
    start = time.perf_counter()
    encode_frames(io.BytesIO(), frames, width, height, options={"crf": "18", "preset": "medium"},
                  thread_type=thread_type)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1920x1080", help="WIDTHxHEIGHT")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "video_encoder.json")
    args = parser.parse_args()

    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="fastnst-encoder-") as folder:
        source = Path(folder) / "clip.mp4"
        make_video(source, width, height, args.frames)
        with av.open(str(source)) as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    runs: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for _ in range(args.rounds):
        for name, thread_type in SETTINGS.items():
            runs[name].append(encode_seconds(frames, thread_type))
    rates = {name: len(frames) / statistics.median(values) for name, values in runs.items()}
    for name, rate in rates.items():
        print(f"{name:<36}{rate:8.2f} frames/s")
    slices, both = rates.values()
    print(f"frame and slice threads / slice threads: {both / slices:.2f}× ({cpu_model()}, {os.cpu_count()} cores)")
    report = {"benchmark": "video_encoder", "machine": {"cpu": cpu_model(), "cores": os.cpu_count()},
              "settings": {"size": args.size, "frames": len(frames), "rounds": args.rounds, "crf": 18,
                           "preset": "medium"},
              "frames_per_s": rates, "speedup": both / slices, "rounds_s": runs}
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
