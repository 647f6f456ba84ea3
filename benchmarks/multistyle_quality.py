#!/usr/bin/env python3
"""Multi-style vs single-style quality at equal steps per style (issue #15, "Measured").

Trains (a) ONE network holding three paintings for 3×N steps and (b) one single-style network per painting for N
steps each, with the same recipe otherwise (the trainer's defaults but for the sizes given here; same seed), then
measures on the trainer's held-out photos, for each painting: the weighted style and content losses
(:class:`fastnst.training.quality.LossMeter`, the trainer's own definitions and Gram targets) of the multi-style
network baked for that style (:func:`fastnst.training.quality.style_network`) next to the single-style network of
that painting, plus the checkerboard and border statistics (:func:`fastnst.training.quality.artifact_report`).
The untrained network (the runs' common step 0) is measured too, so the numbers can be read as progress.

CPU-sized: the default run (N = 100, 128 px crops, batch 4) takes minutes on two cores; the numbers describe that
small budget, not the zoo's.

    python benchmarks/multistyle_quality.py --data ../shared/data [--steps 100] \\
        [--json benchmarks/results/multistyle_quality_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fastnst.model.transformer import TransformerNet  # noqa: E402
from fastnst.training.config import TrainConfig, load_config  # noqa: E402
from fastnst.training.quality import (  # noqa: E402
    LossMeter,
    artifact_report,
    heldout_photos,
    make_vgg,
    style_meters,
    style_network,
    untrained_network,
)
from fastnst.training.trainer import Trainer  # noqa: E402
from fastnst.utils.images import image_to_tensor, load_rgb, resize_max_side  # noqa: E402
from fastnst.utils.machine import cpu_model  # noqa: E402

PAINTINGS = ("van_gogh_starry_night", "hokusai_great_wave", "kandinsky_composition_viii")


def run_config(args: argparse.Namespace, out: Path, **values: object) -> TrainConfig:
    """The shared recipe: the trainer's defaults except the sizes, the held-out split and logging (off)."""
    common: dict[str, object] = {
        "data_dir": str(args.data / "photos"), "holdout_every": args.holdout_every, "image_size": args.image_size,
        "batch_size": args.batch_size, "seed": args.seed, "device": "cpu", "vgg_weights": str(args.data / "vgg"),
        "num_workers": args.num_workers, "checkpoint_every": 1_000_000, "preview_every": 0, "tensorboard": False,
        "output_dir": str(out),
    }
    return load_config(None, {**common, **values})


def timed_training(config: TrainConfig) -> tuple[TransformerNet, dict[str, object]]:
    started = time.perf_counter()
    trainer = Trainer(config)
    result = trainer.run()
    info = {"steps": result.steps, "seconds": round(time.perf_counter() - started, 1),
            "step_seconds": round(trainer.elapsed, 1), "images_per_second": round(result.images_per_second, 2),
            "precision": trainer._run_info()["precision"], "final_train_losses": result.final_losses}
    return trainer.model.float().cpu().eval(), info


@torch.no_grad()
def measure(network: TransformerNet, photos: list[torch.Tensor], features: list[dict[str, torch.Tensor]],
            meter: LossMeter) -> dict[str, object]:
    outputs = [network(photo).float().clamp(0, 1) for photo in photos]
    per_photo = [meter(out, feats) for out, feats in zip(outputs, features, strict=True)]
    report = artifact_report(outputs, photos)
    return {
        "style": statistics.fmean(p["style"] for p in per_photo),
        "content": statistics.fmean(p["content"] for p in per_photo),
        "per_photo": per_photo,
        "artifacts": {"checkerboard_2": report.checkerboard_2, "checkerboard_4": report.checkerboard_4,
                      "grid_levels_4": report.grid_levels_4, "border_luma_shift": report.border_luma_shift,
                      "border_detail_ratio": report.border_detail_ratio,
                      "checkerboard_flag": report.checkerboard, "border_flag": report.border},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--paintings", nargs=3, default=list(PAINTINGS), help="stems under <data>/styles")
    parser.add_argument("--steps", type=int, default=100, help="N: steps per style (multi-style run: 3×N)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--holdout-every", type=int, default=20, help="20 holds out 8 of the 172 shared photos")
    parser.add_argument("--eval-photos", type=int, default=8)
    parser.add_argument("--eval-max-side", type=int, default=256)
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    images = {stem: str(args.data / "styles" / f"{stem}.jpg") for stem in args.paintings}
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="fastnst-multistyle-quality-") as tmp:
        work = Path(tmp)
        multi_config = run_config(args, work / "multi", style_images=tuple(images.values()),
                                  style_names=tuple(images), steps=len(images) * args.steps)
        multi, multi_info = timed_training(multi_config)
        print(f"multi-style: {multi_info['steps']} steps in {multi_info['seconds']} s", flush=True)
        singles: dict[str, tuple[TransformerNet, dict[str, object]]] = {}
        for stem, image in images.items():
            single_config = run_config(args, work / stem, style_image=image, style_name=stem, steps=args.steps)
            singles[stem] = timed_training(single_config)
            print(f"single {stem}: {args.steps} steps in {singles[stem][1]['seconds']} s", flush=True)

    eval_started = time.perf_counter()
    vgg = make_vgg([multi_config], multi_config.vgg_weights).eval()
    held_out = heldout_photos(multi_config.data_dir, multi_config.holdout_every)[:args.eval_photos]
    photos = [image_to_tensor(resize_max_side(load_rgb(path), args.eval_max_side)) for path in held_out]
    with torch.no_grad():
        features = [vgg(photo) for photo in photos]
    meters = style_meters(multi_config, vgg)  # the same Gram targets serve both models of a painting
    untrained = untrained_network(run_config(args, work / "untrained", style_image=images[args.paintings[0]],
                                             steps=args.steps))
    with torch.no_grad():  # the untrained output is the same for every painting: one VGG pass per photo
        untrained_outputs = [untrained(photo).float().clamp(0, 1) for photo in photos]
        untrained_features = [vgg(out) for out in untrained_outputs]
    styles: dict[str, dict[str, object]] = {}
    for row, (stem, meter) in enumerate(meters.items()):
        single = measure(singles[stem][0], photos, features, meter)
        mixed = measure(style_network(multi, row), photos, features, meter)
        baseline = [meter(out, feats, out_feats) for out, feats, out_feats
                    in zip(untrained_outputs, features, untrained_features, strict=True)]
        styles[stem] = {
            "single": single, "multi": mixed,
            "untrained": {key: statistics.fmean(p[key] for p in baseline) for key in ("style", "content")},
            "style_ratio_multi_over_single": mixed["style"] / single["style"],
            "content_ratio_multi_over_single": mixed["content"] / single["content"],
        }

    report = {
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
                    "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                    "python": platform.python_version()},
        "setup": {
            "paintings": {stem: Path(path).name for stem, path in images.items()},
            "steps_per_style": args.steps, "multi_style_steps": multi_config.steps, "single_style_steps": args.steps,
            "width": multi_config.width, "residual_blocks": multi_config.residual_blocks,
            "image_size": args.image_size, "batch_size": args.batch_size, "learning_rate": multi_config.learning_rate,
            "schedule": multi_config.schedule, "style_size": multi_config.style_size, "amp": multi_config.amp,
            "seed": args.seed, "holdout_every": args.holdout_every,
            "eval_photos": [str(p.relative_to(multi_config.data_dir)) for p in held_out],
            "eval_max_side": args.eval_max_side,
            "loss_units": "weighted as in training: content_weight·MSE(relu2_2), style_weight·Σ MSE(Gram/(C·H·W))",
        },
        "training": {"multi": multi_info, "single": {stem: info for stem, (_, info) in singles.items()}},
        "eval_seconds": round(time.perf_counter() - eval_started, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "styles": styles,
    }
    text = json.dumps(report, indent=2)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")

    header = ("style", "single style", "multi style", "ratio", "single content", "multi content", "ratio",
              "untrained style", "artifact flags (single/multi)")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for stem, entry in styles.items():
        single, mixed = entry["single"], entry["multi"]
        flags = "/".join(
            ",".join(name for name in ("checkerboard", "border") if m["artifacts"][f"{name}_flag"]) or "none"
            for m in (single, mixed))
        print(f"| {stem} | {single['style']:.4g} | {mixed['style']:.4g} | "
              f"{entry['style_ratio_multi_over_single']:.3f} | {single['content']:.4g} | {mixed['content']:.4g} | "
              f"{entry['content_ratio_multi_over_single']:.3f} | {entry['untrained']['style']:.4g} | {flags} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
