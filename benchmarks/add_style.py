#!/usr/bin/env python3
"""Adding a style to a trained multi-style network vs training a single-style network from scratch.

1. Trains a base network for two paintings (conditional instance norm), or takes a trained one (``--base``).
2. Adds a new painting to it (``base``: only the new style's norm rows learn) for ``--steps`` steps.
   ``--added-learning-rates`` runs this once per rate (only norm rows learn, so a larger rate may suit them).
3. Trains a single-style network for that painting from scratch for the same ``--steps``.
All are measured every ``--eval-every`` steps with the trainer's own weighted style loss on held-out photos
(:class:`fastnst.training.quality.LossMeter`); the report says after how many steps and training seconds the
added style first reaches the from-scratch network's final held-out style loss (and 105 % of it), and how many
bytes a style adds to the model file. CPU-sized by default (a few minutes on two cores); the numbers are for that
small budget.
With ``--base``, both runs use the recipe recorded in the base's ``model.json`` (losses, crops, batch, learning
rate, precision), so the only difference between them is what is learned:

    python benchmarks/add_style.py --data ../shared/data [--steps 150] [--json out.json]
    python benchmarks/add_style.py --base runs/cpu_zoo/models/zoo --new-painting van_gogh_the_harvest.jpg \
        --steps 762 --eval-every 50 --eval-photos 8 --added-learning-rates 0.002 0.01 \
        --json benchmarks/results/add_style_zoo_cpu.json
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


# A base's recorded config keys that describe the run rather than the recipe: replaced for the new runs.
_RUN_KEYS = ("style_image", "style_name", "style_images", "style_names", "base", "steps", "output_dir",
             "checkpoint_every", "log_every", "preview_every", "preview_images", "tensorboard", "num_workers",
             "device", "compile", "vgg_weights")


# Flags that only shape the small base trained here; a given base's recorded recipe decides them instead.
_BASE_DECIDES = ("base_steps", "width", "residual_blocks", "image_size", "style_size", "batch_size", "learning_rate")


def recipe_of_base(base: Path) -> dict[str, object]:
    """The training recipe stored in a trained model's ``model.json``, without the keys that name the run."""
    recorded = json.loads((base / "model.json").read_text())["config"]
    return {key: value for key, value in recorded.items() if key not in _RUN_KEYS}


def base_config(args: argparse.Namespace, out: Path, recipe: dict[str, object], **values: object) -> TrainConfig:
    """A run on a trained base's recipe (its photos, losses and sizes), with logging off."""
    run: dict[str, object] = {"checkpoint_every": 10_000, "log_every": 10, "preview_every": 0, "num_workers": 0,
                              "tensorboard": False, "device": "cpu", "output_dir": str(out),
                              "vgg_weights": str(args.data / "vgg")}
    return load_config(None, {**recipe, **run, **values})


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
    parser.add_argument("--base", type=Path,
                        help="a trained model folder to add the style to (its recipe is used for both runs; "
                             "--width, --residual-blocks, --image-size, --style-size, --batch-size and "
                             "--learning-rate are then ignored); default: train a small two-style base first")
    parser.add_argument("--new-painting", default=NEW_PAINTING, help="file name under <data>/styles")
    parser.add_argument("--added-learning-rates", type=float, nargs="+",
                        help="learning rates for the added style, one run each (default: the recipe's)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    styles = args.data / "styles"
    new_painting = str(styles / args.new_painting)

    with tempfile.TemporaryDirectory(prefix="fastnst-add-style-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        if args.base is None:
            base_dir = work / "base"
            config = run_config(args, base_dir, style_images=tuple(str(styles / p) for p in BASE_PAINTINGS),
                                steps=args.base_steps)
            Trainer(config).run()

            def make(out: Path, **values: object) -> TrainConfig:
                return run_config(args, out, **values)
        else:
            base_dir = args.base
            recipe = recipe_of_base(base_dir)

            def make(out: Path, **values: object) -> TrainConfig:
                return base_config(args, out, recipe, **values)
        base_seconds = time.perf_counter() - started
        base_styles = load_model(base_dir)[0].spec.styles

        scratch_config = make(work / "scratch", style_image=new_painting, steps=args.steps)
        meter = LossMeter(scratch_config, make_vgg([scratch_config], args.data / "vgg"))
        held_out = heldout_photos(scratch_config.data_dir, scratch_config.holdout_every)[:args.eval_photos]
        photos = [load_eval_image(path, short_side=scratch_config.image_size) for path in held_out]

        pick = [0.0] * base_styles + [1.0]
        rates = args.added_learning_rates or [scratch_config.learning_rate]
        added = {rate: measured_run(make(work / f"added-{rate:g}", style_image=new_painting, base=str(base_dir),
                                         steps=args.steps, learning_rate=rate), meter, photos, args.eval_every, pick)
                 for rate in rates}
        scratch = measured_run(scratch_config, meter, photos, args.eval_every, None)

        base_bytes = (base_dir / "model.safetensors").stat().st_size
        added_bytes = (work / f"added-{rates[0]:g}" / "model.safetensors").stat().st_size
        single_bytes = (work / "scratch" / "model.safetensors").stat().st_size
        model, _ = load_model(work / f"added-{rates[0]:g}")
        style_values = sum(model.state_dict()[key][0].numel() for key in model.style_keys())

    target = scratch[-1]["style"]

    def first_below(curve: list[dict[str, float]], level: float) -> dict[str, float] | None:
        return next((point for point in curve if point["style"] <= level), None)

    report = {
        "setup": {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()
                  if args.base is None or key not in _BASE_DECIDES},
        "base": str(args.base) if args.base else f"trained here: {', '.join(BASE_PAINTINGS)}",
        "base_styles": base_styles, "recipe": {key: getattr(scratch_config, key) for key in (
            "image_size", "batch_size", "learning_rate", "schedule", "amp", "tv_weight", "style_size",
            "style_layer_weights", "width", "residual_blocks")},
        "base_train_seconds": round(base_seconds, 1) if args.base is None else None,
        "scratch": {"final": scratch[-1], "curve": scratch},
        "added": [{"learning_rate": rate, "final": curve[-1], "reaches_scratch_final_at": first_below(curve, target),
                   "reaches_within_5_percent_at": first_below(curve, 1.05 * target), "curve": curve}
                  for rate, curve in added.items()],
        "bytes": {"single_style_file": single_bytes, "base_file": base_bytes, "added_file": added_bytes,
                  "added_per_style": added_bytes - base_bytes, "style_values_per_style": style_values},
    }
    text = json.dumps(report, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
