#!/usr/bin/env python3
"""Adding a style to a trained multi-style network vs training a single-style network from scratch.

1. Trains a base network for two paintings (conditional instance norm).
2. Adds a third painting to it (``base``: only the new style's norm rows learn) for ``--steps`` steps.
3. Trains a single-style network for that painting from scratch for the same ``--steps``.
Both are measured every ``--eval-every`` steps with the trainer's own weighted style loss on held-out photos
(:class:`fastnst.training.quality.LossMeter`); the report says after how many steps and training seconds the
added style first reaches the from-scratch network's final held-out style loss, and how many bytes a style adds
to the model file. CPU-sized by default (a few minutes on two cores); the numbers are for that small budget.

    python benchmarks/add_style.py --data ../shared/data [--steps 150] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fastnst.model.files import load_model  # noqa: E402
from fastnst.model.transformer import TransformerNet, bake  # noqa: E402
from fastnst.training.config import TrainConfig, load_config  # noqa: E402
from fastnst.training.quality import LossMeter, heldout_photos, load_eval_image, make_vgg  # noqa: E402
from fastnst.training.trainer import StepReport, Trainer  # noqa: E402

BASE_PAINTINGS = ("van_gogh_starry_night.jpg", "hokusai_great_wave.jpg")
NEW_PAINTING = "kandinsky_composition_viii.jpg"


def run_config(args: argparse.Namespace, out: Path, **values: object) -> TrainConfig:
    common: dict[str, object] = {
        "data_dir": str(args.data / "photos"), "holdout_every": 10, "style_size": args.style_size,
        "width": args.width, "residual_blocks": args.residual_blocks, "image_size": args.image_size,
        "batch_size": args.batch_size, "learning_rate": args.learning_rate, "schedule": "constant",
        "checkpoint_every": 10_000, "log_every": 10, "preview_every": 0, "num_workers": 0, "tensorboard": False,
        "device": "cpu", "output_dir": str(out), "seed": 0, "vgg_weights": str(args.data / "vgg"),
    }
    return load_config(None, {**common, **values})


def measured_run(config: TrainConfig, meter: LossMeter, photos: list[torch.Tensor], eval_every: int,
                 pick: list[float] | None) -> list[dict[str, float]]:
    """Train ``config``; every ``eval_every`` steps the held-out weighted style loss (``pick``: the style row)."""
    trainer = Trainer(config)
    curve: list[dict[str, float]] = []

    def evaluate(step: int) -> None:
        net: TransformerNet = bake(trainer.model, pick) if pick is not None else trainer.model
        with torch.no_grad():
            losses = [meter(net(photo).clamp(0, 1), meter.features(photo))["style"] for photo in photos]
        curve.append({"step": step, "seconds": round(trainer.elapsed, 2), "style": sum(losses) / len(losses)})

    def on_step(report: StepReport) -> None:
        if report.step % eval_every == 0 or report.step == config.steps:
            evaluate(report.step)

    trainer.on_step = on_step
    evaluate(0)
    trainer.run()
    return curve


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--base-steps", type=int, default=200)
    parser.add_argument("--steps", type=int, default=150, help="budget of the added style and of the scratch run")
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--eval-photos", type=int, default=4)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--residual-blocks", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--style-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=5e-3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    styles = args.data / "styles"

    with tempfile.TemporaryDirectory(prefix="fastnst-add-style-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        base_config = run_config(args, work / "base", style_images=tuple(str(styles / p) for p in BASE_PAINTINGS),
                                 steps=args.base_steps)
        Trainer(base_config).run()
        base_seconds = time.perf_counter() - started

        scratch_config = run_config(args, work / "scratch", style_image=str(styles / NEW_PAINTING),
                                    steps=args.steps)
        meter = LossMeter(scratch_config, make_vgg([scratch_config], args.data / "vgg"))
        held_out = heldout_photos(scratch_config.data_dir, scratch_config.holdout_every)[:args.eval_photos]
        photos = [load_eval_image(path, short_side=args.image_size) for path in held_out]

        added_config = run_config(args, work / "added", style_image=str(styles / NEW_PAINTING),
                                  base=str(work / "base"), steps=args.steps)
        added = measured_run(added_config, meter, photos, args.eval_every, [0.0, 0.0, 1.0])
        scratch = measured_run(scratch_config, meter, photos, args.eval_every, None)

        base_bytes = (work / "base" / "model.safetensors").stat().st_size
        added_bytes = (work / "added" / "model.safetensors").stat().st_size
        single_bytes = (work / "scratch" / "model.safetensors").stat().st_size
        model, _ = load_model(work / "added")
        style_values = sum(model.state_dict()[key][0].numel() for key in model.style_keys())

    target = scratch[-1]["style"]
    reached = next((point for point in added if point["style"] <= target), None)
    report = {
        "setup": {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()},
        "base_train_seconds": round(base_seconds, 1),
        "scratch_final": scratch[-1], "added_final": added[-1],
        "added_reaches_scratch_final_at": reached,
        "bytes": {"single_style_file": single_bytes, "two_style_file": base_bytes, "three_style_file": added_bytes,
                  "added_per_style": added_bytes - base_bytes, "style_values_per_style": style_values},
        "curves": {"added": added, "scratch": scratch},
    }
    text = json.dumps(report, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
