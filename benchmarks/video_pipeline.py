#!/usr/bin/env python3
"""Video throughput with decoding and encoding overlapped with the model, against the same run in one thread.

    python benchmarks/video_pipeline.py [--size 1920x1080] [--frames 60] [--rounds 3] [--output FILE]

Two stylizers on the same generated clip (a pan over a photo, H.264), each run with ``overlap`` off and on,
alternating within every round so drift hits both alike; medians of wall time and of this process's CPU time:

- ``pipeline only``: the stylizer hands each batch back scaled, so only decoding, conversions, the mirrored
  margin and encoding are timed: what a fast GPU leaves for the CPU to do;
- ``starry_night``: the shipped model on the default backend for this machine, at ``--model-size`` (smaller, so
  a CPU finishes).

Then libx264 alone on the 1080p clip's frames (CRF 18, preset medium, as fastnst writes): slice threads only
(PyAV's default) against frame and slice threads (what fastnst asks for).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from gpu_paths import make_video  # noqa: E402

from fastnst.bench.machine import cpu_model  # noqa: E402
from fastnst.runtime.margin import DEFAULT_MARGIN, with_margin  # noqa: E402
from fastnst.runtime.select import load_backend  # noqa: E402
from fastnst.runtime.video import stylize_video  # noqa: E402


def timed(source: Path, target: Path, stylize: Callable[[torch.Tensor], torch.Tensor], overlap: bool) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    stylize_video(source, target, with_margin(stylize, DEFAULT_MARGIN), overlap=overlap)
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}


def compare(name: str, source: Path, frames: int, stylize: Callable[[torch.Tensor], torch.Tensor], rounds: int,
            tmp: Path) -> dict:
    runs: dict[str, list[dict]] = {"one thread": [], "overlapped": []}
    for _ in range(rounds):
        for label, overlap in (("one thread", False), ("overlapped", True)):
            runs[label].append(timed(source, tmp / f"{label.replace(' ', '_')}.mp4", stylize, overlap))
    result = {}
    for label, values in runs.items():
        wall = statistics.median(v["wall_s"] for v in values)
        result[label] = {"frames_per_s": frames / wall, "wall_s": wall,
                         "cpu_s": statistics.median(v["cpu_s"] for v in values), "rounds": values}
    result["speedup"] = result["overlapped"]["frames_per_s"] / result["one thread"]["frames_per_s"]
    print(f"{name:<16} one thread {result['one thread']['frames_per_s']:6.2f} frames/s, overlapped "
          f"{result['overlapped']['frames_per_s']:6.2f} frames/s: {result['speedup']:.2f}×", flush=True)
    return result


def encode_seconds(frames: list, thread_type: str) -> float:
    """Wall seconds libx264 takes to encode ``frames`` (rgb24 arrays) with ``thread_type`` threading."""
    import io

    import av

    start = time.perf_counter()
    with av.open(io.BytesIO(), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=30, options={"crf": "18", "preset": "medium"})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_type = thread_type
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return time.perf_counter() - start


def compare_encoder_threads(source: Path, rounds: int) -> dict:
    import av

    with av.open(str(source)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    runs: dict[str, list[float]] = {"SLICE": [], "AUTO": []}
    for _ in range(rounds):
        for thread_type in runs:
            runs[thread_type].append(encode_seconds(frames, thread_type))
    rates = {name: len(frames) / statistics.median(values) for name, values in runs.items()}
    print(f"libx264 encode   slices {rates['SLICE']:6.2f} frames/s, frames+slices {rates['AUTO']:6.2f} frames/s: "
          f"{rates['AUTO'] / rates['SLICE']:.2f}×", flush=True)
    return {"frames": len(frames), "frames_per_s": rates, "speedup": rates["AUTO"] / rates["SLICE"],
            "rounds_s": runs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1920x1080", help="WIDTHxHEIGHT of the pipeline-only clip")
    parser.add_argument("--model-size", default="640x360", help="WIDTHxHEIGHT of the clip the model stylizes")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--model-frames", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="starry_night")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "video_pipeline.json")
    args = parser.parse_args()

    backend, _ = load_backend(args.model)
    report = {"benchmark": "video_pipeline", "machine": {"cpu": cpu_model(), "torch_threads": torch.get_num_threads(),
                                                          "torch": torch.__version__},
              "settings": {**{k: str(v) for k, v in vars(args).items()}, "margin": DEFAULT_MARGIN},
              "backend": f"{backend.name} {getattr(backend, 'precision', '')} on {getattr(backend, 'device', '')}",
              "results": {}}
    print(f"{report['machine']['cpu']}, {report['machine']['torch_threads']} torch threads; model on "
          f"{report['backend']}")
    with tempfile.TemporaryDirectory(prefix="fastnst-video-") as folder:
        tmp = Path(folder)
        cases = (("pipeline only", args.size, args.frames, lambda batch: batch * 0.9),
                 (args.model, args.model_size, args.model_frames, backend.stylize))
        for name, size, frames, stylize in cases:
            width, height = (int(v) for v in size.split("x"))
            source = tmp / f"in_{width}x{height}.mp4"
            make_video(source, width, height, frames)
            report["results"][name] = {"size": size, "frames": frames,
                                       **compare(name, source, frames, stylize, args.rounds, tmp)}
        width, height = (int(v) for v in args.size.split("x"))
        report["results"]["encoder threads"] = compare_encoder_threads(tmp / f"in_{width}x{height}.mp4",
                                                                       args.rounds)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
