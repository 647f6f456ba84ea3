#!/usr/bin/env python3
"""Flicker of stylized video with and without smoothed instance-norm statistics.

Flicker is the mean absolute frame-to-frame change of the stylized frames divided by that of the input frames
(1 = the output changes exactly as much as the input), on the ``static``, ``pan`` and ``object`` clips that
fastnst.bench.flicker makes from a real photo (samples/), so the numbers need no video files.

Each clip runs in batches of 4 frames, as ``fastnst stylize in.mp4`` does, with two remedies: smoothed
instance-norm statistics (``model_stylizer(smoothing=M)``) and the motion-gated blend of outputs that
``--flicker-reduction M`` applies (``TemporalBlend``). Besides the ratio, each variant reports how far its frames
are from the plain per-frame result (mean absolute difference in 8-bit levels: what the remedy changes).
Every variant runs once on the bare network and once per ``--margins`` value above 0 with that many px mirrored
around each frame and cropped after (fastnst.runtime.margin), as ``fastnst stylize in.mp4`` runs its default
32 px; those results are named ``margin N: <variant>`` and compared with that margin's own plain result. Usage:

    python benchmarks/flicker.py [--model starry_night] [--size 256x192] [--frames 24] [--margins 0,32]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fastnst.bench.flicker import CLIP_FRAMES, CLIP_SIZE, synthetic_clips
from fastnst.model.files import load_model
from fastnst.runtime.margin import DEFAULT_MARGIN, with_margin
from fastnst.runtime.video import TemporalBlend, flicker_ratio, model_stylizer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="starry_night")
    parser.add_argument("--photo", default=str(REPO / "samples" / "castle.jpg"))
    parser.add_argument("--size", default=f"{CLIP_SIZE[0]}x{CLIP_SIZE[1]}")
    parser.add_argument("--frames", type=int, default=CLIP_FRAMES)
    parser.add_argument("--smoothing", default="0,0.5,0.9", help="statistics smoothing values (first = baseline)")
    parser.add_argument("--blend", default="0.5,0.8", help="TemporalBlend strengths (--flicker-reduction)")
    parser.add_argument("--margins", default=f"0,{DEFAULT_MARGIN}",
                        help="mirrored margins in px (0: the bare network; the CLI's default is "
                             f"{DEFAULT_MARGIN})")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "flicker.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    model, _ = load_model(args.model, device="cpu")
    stats_values = [float(v) for v in args.smoothing.split(",")]
    blend_values = [float(v) for v in args.blend.split(",")]
    results: dict[str, dict[str, dict[str, float]]] = {}
    variants = [("stats", v) for v in stats_values] + [("blend", v) for v in blend_values]
    for name, clip in synthetic_clips(Path(args.photo), width, height, args.frames).items():
        results[name] = {}
        for margin in (int(v) for v in args.margins.split(",")):
            prefix = f"margin {margin}: " if margin else ""
            plain = None
            for kind, value in variants:
                with model_stylizer(model, smoothing=value if kind == "stats" else 0.0) as bare:
                    stylize = with_margin(bare, margin)
                    temporal = TemporalBlend(value if kind == "blend" else 0.0)
                    out = torch.cat([temporal(clip[i : i + 4], stylize(clip[i : i + 4]))
                                     for i in range(0, clip.shape[0], 4)])
                plain = out if plain is None else plain
                results[name][f"{prefix}{kind} {value}"] = {
                    "flicker_ratio": round(flicker_ratio(clip, out), 3),
                    "mean_change_vs_per_frame_levels": round(float((out - plain).abs().mean()) * 255, 2),
                }
        print(name, {k: v["flicker_ratio"] for k, v in results[name].items()}, flush=True)
    report = {"benchmark": "flicker", "metric": "mean |out[t]-out[t-1]| / mean |in[t]-in[t-1]|",
              "model": args.model, "photo": Path(args.photo).name, "size": [width, height], "frames": args.frames,
              "results": results, "machine": f"{platform.machine()}, torch {torch.__version__}"}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
