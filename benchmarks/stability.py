#!/usr/bin/env python3
"""Flicker with and without the stability loss (issue 16, part 3), every variant fine-tuned by the same recipe.

Each variant starts from the weights of a shipped model (default ``starry_night``) and trains the model's own
recipe (its ``model.json`` config: losses and their weights, precision, seed) for ``--steps`` steps at
``--image-size`` crops, at the learning rate its schedule ended with (constant), differing only in the stability
keys, so the baseline ``off`` shows what the short
fine-tune alone does. With ``--from-scratch`` every variant instead trains from the trainer's initialisation with
the model's own schedule at ``--learning-rate``: stability learned from the start, against the same run without it.
For each variant, and for the shipped model as it is, it reports:

* plain per-frame flicker on the ``static``, ``pan`` and ``object`` clips exactly as ``benchmarks/flicker.py``
  runs them (fastnst.bench.flicker: batches of 4 frames, no remedy), and ``panned_still``: the flicker of ONE
  stylized frame (the clip's whole 304×240 source, no noise) cut into the pan's windows, i.e. what a perfectly
  shift-equivariant network would give. It is a reference, not a bound: that frame's instance-norm
  statistics come from the larger picture, so its texture contrast differs from the windows' own;
* the trainer's content and style loss on the config's held-out photos (fastnst.training.quality.LossMeter);
* the artifact statistics and flags of fastnst.training.quality.artifact_report on those photos;
* ``with_margin``: the clips' flicker and the held-out artifacts again as ``fastnst stylize`` delivers them, with
  the runtime's default mirrored margin (fastnst.runtime.margin, 32 px) around every frame and photo. The
  numbers above are the bare network's; a dark frame it draws at its input's edge is cropped away with the margin.

A variant is ``off`` (no stability loss), a weight (``1e8``: the clean output is a fixed target) or a weight with
``:both`` (the clean output gets gradient too), and ``:shift=N`` / ``:noise=SIGMA`` / ``:margin=PX`` change that
variant's perturbation or the border left out of its loss (``1e8:shift=0``: noise only). Results are written to
``benchmarks/results/stability.json``; ``--keep`` keeps the variants of an earlier report measured with the same
recipe, so variants can be added one invocation at a time, and measures ``with_margin`` for kept variants that lack
it when their trained model is still in ``--runs-dir`` (after checking that it reproduces the stored bare-network
flicker). Usage:

    nice python benchmarks/stability.py [--model starry_night] [--steps 100] [--image-size 128] \\
        [--variants off,3e7,1e8,1e8:both,1e8:shift=0] [--keep]
    nice python benchmarks/stability.py --from-scratch --steps 762 --image-size 128 --learning-rate 2e-3 \\
        --output benchmarks/results/stability_scratch.json   # the CPU recipe, each variant from scratch
    nice python benchmarks/stability.py --from-scratch --steps 1524 --learning-rate 2e-3 --seed 1 \\
        --runs-dir runs/stability_scratch_1524_seed1 --output benchmarks/results/stability_scratch_1524_seed1.json
    nice python benchmarks/stability.py --from-scratch --steps 1524 --learning-rate 2e-3 --seed 0 \
        --set ema_width=0.05 --set 'schedule="constant"' ...   # the model's recipe with other training keys
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
if (REPO.parent / "shared" / "data" / "vgg").is_dir():  # the VGG weights the shipped models were trained with
    os.environ.setdefault("FASTNST_VGG_WEIGHTS", str(REPO.parent / "shared" / "data" / "vgg"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCHMARKS))

from fastnst.bench.flicker import (  # noqa: E402
    CLIP_FRAMES,
    CLIP_SIZE,
    PAN_PX,
    clip_source,
    plain_flicker,
    synthetic_clips,
)
from fastnst.model.files import load_model  # noqa: E402
from fastnst.model.transformer import TransformerNet  # noqa: E402
from fastnst.runtime.margin import DEFAULT_MARGIN, with_margin  # noqa: E402
from fastnst.runtime.video import flicker_ratio, model_stylizer  # noqa: E402
from fastnst.training.config import TrainConfig, parse_overrides  # noqa: E402
from fastnst.training.quality import (  # noqa: E402
    LossMeter,
    artifact_report,
    config_of,
    heldout_photos,
    load_eval_image,
    make_vgg,
)
from fastnst.training.trainer import Trainer  # noqa: E402
from fastnst.utils.errors import ConfigError  # noqa: E402
from fastnst.utils.machine import cpu_model  # noqa: E402


def parse_variant(text: str) -> tuple[float, bool, dict[str, float]]:
    """'off' → (0, False, {}); '1e8' → (1e8, False, {}); '1e8:both' → (1e8, True, {});
    '1e8:shift=0:noise=0.02' → (1e8, False, {"stability_shift": 0, "stability_noise": 0.02});
    '6e7:margin=8' → (6e7, False, {"stability_margin": 8})."""
    weight, *suffixes = text.split(":")
    both, overrides = False, {}
    for suffix in suffixes:
        key, sep, value = suffix.partition("=")
        if suffix == "both":
            both = True
        elif sep and key in ("shift", "noise", "margin"):
            overrides[f"stability_{key}"] = float(value) if key == "noise" else int(value)
        else:
            raise SystemExit(f"variant {text!r}: suffixes are ':both', ':shift=N', ':noise=SIGMA' and ':margin=PX'")
    return (0.0 if weight == "off" else float(weight)), both, overrides


def fine_tune(config: TrainConfig, initial: TransformerNet | None,
              clean_gradient: bool) -> tuple[TransformerNet, dict]:
    """Train ``config`` starting from ``initial``'s weights (None: from the trainer's initialisation); returns the
    network and what the run cost."""
    trainer = Trainer(config)
    if initial is not None:
        trainer.model.load_state_dict(initial.state_dict())
    trainer.stability = replace(trainer.stability, clean_gradient=clean_gradient)
    started = time.perf_counter()
    result = trainer.run()
    seconds = time.perf_counter() - started
    model, _ = load_model(result.model_path)
    return model.eval(), {"train_seconds": round(seconds, 1), "seconds_per_step": round(seconds / config.steps, 3),
                          "final_losses": {k: round(v, 6) for k, v in result.final_losses.items()}}


def panned_still(model: TransformerNet, photo: Path, width: int, height: int, frames: int,
                 pan: torch.Tensor) -> float:
    """Flicker of the pan clip's windows cut from ONE stylized frame: what perfect shift equivariance would give."""
    big, margin = clip_source(photo, width, height, frames)
    with model_stylizer(model) as stylize:
        styled = stylize(big)
    cut = torch.cat([styled[..., margin : margin + height, PAN_PX * t : PAN_PX * t + width] for t in range(frames)])
    return flicker_ratio(pan, cut)


def measure(model: TransformerNet, clip_set: dict[str, torch.Tensor], photo: Path, size: tuple[int, int],
            frames: int, meter: LossMeter, photos: list[torch.Tensor],
            features: list[dict[str, torch.Tensor]]) -> dict:
    """The bare network's flicker, held-out losses and artifacts, and ``with_margin``: flicker and artifacts as
    ``fastnst stylize`` delivers them."""
    out, outputs = seen_through(model, clip_set, photos, 0)
    out["flicker"]["panned_still"] = round(panned_still(model, photo, *size, frames, clip_set["pan"]), 3)
    losses = [meter(o, f) for o, f in zip(outputs, features, strict=True)]
    out["heldout"] = {key: statistics.fmean(entry[key] for entry in losses) for key in ("content", "style")}
    out["with_margin"] = margin_block(model, clip_set, photos)
    return out


def seen_through(model: TransformerNet, clip_set: dict[str, torch.Tensor], photos: list[torch.Tensor],
                 margin: int) -> tuple[dict, list[torch.Tensor]]:
    """Flicker of each clip and the artifact report of the held-out photos, with ``margin`` px mirrored around
    every frame and photo (0: the bare network); also the stylized photos, for the held-out losses."""
    out: dict = {"flicker": plain_flicker(model, clip_set, margin)}
    with model_stylizer(model) as bare:
        stylize = with_margin(bare, margin)
        outputs = [stylize(p) for p in photos]
    report = artifact_report(outputs, photos)
    out["artifacts"] = {**asdict(report), "checkerboard_flag": report.checkerboard, "border_flag": report.border}
    return out, outputs


def margin_block(model: TransformerNet, clip_set: dict[str, torch.Tensor], photos: list[torch.Tensor]) -> dict:
    """A variant's ``with_margin`` entry: flicker and artifacts through the runtime's default margin."""
    return {"margin": DEFAULT_MARGIN, **seen_through(model, clip_set, photos, DEFAULT_MARGIN)[0]}


def run_folder(runs_dir: str, variant: str) -> Path:
    """Where ``variant`` trains, and where a later ``--keep`` finds its model."""
    return Path(runs_dir) / variant.replace(":", "_")


def add_margin_measure(name: str, entry: dict, model: TransformerNet, clip_set: dict[str, torch.Tensor],
                       photos: list[torch.Tensor]) -> None:
    """Give a kept ``entry`` its ``with_margin`` block, after checking that ``model`` is the network it measured:
    the bare network's flicker must come out as stored."""
    bare, _ = seen_through(model, clip_set, photos, 0)
    drift = max(abs(bare["flicker"][clip] - entry["flicker"][clip]) for clip in clip_set)
    if drift > 0.002:
        print(f"{name}: the model in the runs folder gives flicker {bare['flicker']}, the report "
              f"{entry['flicker']}; not the measured network, left without with_margin", flush=True)
        return
    entry["with_margin"] = margin_block(model, clip_set, photos)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="starry_night", help="shipped model whose weights and recipe start")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--variants", default="off,3e7,1e8,1e8:both")
    parser.add_argument("--photo", default=str(REPO / "samples" / "castle.jpg"))
    parser.add_argument("--size", default=f"{CLIP_SIZE[0]}x{CLIP_SIZE[1]}",
                        help="clip size, as benchmarks/flicker.py")
    parser.add_argument("--frames", type=int, default=CLIP_FRAMES)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs-dir", default=str(REPO / "runs" / "stability_bench"))
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "stability.json"))
    parser.add_argument("--keep", action="store_true", help="keep earlier variants measured with the same recipe")
    parser.add_argument("--from-scratch", action="store_true",
                        help="train every variant from the trainer's initialisation with the model's own schedule, "
                             "instead of fine-tuning the shipped weights")
    parser.add_argument("--learning-rate", type=float,
                        help="with --from-scratch: the run's learning rate (default: the model's own)")
    parser.add_argument("--seed", type=int,
                        help="the runs' seed (initialisation, crops, perturbations; default: the model's own); "
                             "give each seed its own --runs-dir and --output")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change the recipe of every variant (TOML value syntax, repeatable), e.g. --set "
                             "ema_width=0.05 --set schedule='\"constant\"'; recorded in the report's recipe")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    shipped, info = load_model(args.model, device="cpu")
    shipped.eval()
    base = config_of(info.metadata)
    if args.learning_rate is not None and not args.from_scratch:
        raise SystemExit("--learning-rate goes with --from-scratch (a fine-tune keeps the model's final rate)")
    recipe = base.replace(image_size=args.image_size, batch_size=args.batch_size, steps=args.steps,
                          checkpoint_every=args.steps, preview_every=0, tensorboard=False, num_workers=1,
                          seed=base.seed if args.seed is None else args.seed)
    if args.from_scratch:
        recipe = recipe.replace(learning_rate=args.learning_rate or base.learning_rate)
    else:
        # The fine-tune continues the model's run where its schedule ended: constant at its final learning rate
        # (Adam's first steps at the full rate move every weight by about the rate at once and undo the training).
        recipe = recipe.replace(learning_rate=base.learning_rate * base.min_lr_ratio, schedule="constant",
                                warmup_steps=0)
    try:
        changes = parse_overrides(args.set, "--set")
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None
    recipe = recipe.replace(**changes)
    recipe_key = {"model": args.model, "sha256": info.metadata.get("sha256"), "steps": args.steps,
                  "seed": recipe.seed, "start": "scratch" if args.from_scratch else "shipped",
                  "learning_rate": recipe.learning_rate, "schedule": recipe.schedule,
                  "image_size": args.image_size, "batch_size": args.batch_size,
                  "stability_noise": recipe.stability_noise, "stability_shift": recipe.stability_shift,
                  "stability_margin": recipe.stability_margin,
                  "clip": {"photo": Path(args.photo).name, "size": [width, height], "frames": args.frames}}
    if changes:  # absent otherwise, so reports written before --set existed still match a plain recipe
        recipe_key["set"] = changes
    output = Path(args.output)
    previous = json.loads(output.read_text()) if args.keep and output.is_file() else {}
    # Each variant records its own perturbation, so the default one may change without discarding earlier variants.
    per_variant = ("stability_noise", "stability_shift", "stability_margin")
    previous_recipe = {"seed": base.seed, **previous.get("recipe", {})}  # reports before seeds were recorded
    same_recipe = ({k: v for k, v in previous_recipe.items() if k not in per_variant}
                   == {k: v for k, v in recipe_key.items() if k not in per_variant})
    results: dict = previous.get("variants", {}) if same_recipe else {}
    for entry in results.values():  # entries written before variants recorded it: the recipe's at the time
        if entry.get("weight"):
            for key in per_variant:
                entry.setdefault(key, previous["recipe"].get(key, 0))  # no margin before it was recorded

    clip_set = synthetic_clips(Path(args.photo), width, height, args.frames)
    paths = heldout_photos(base.data_dir, base.holdout_every)
    photos = [load_eval_image(p) for p in paths]
    vgg = make_vgg([base])
    with torch.no_grad():
        features = [vgg(p) for p in photos]
    meter = LossMeter(base, vgg)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    for name, entry in results.items():  # kept variants measured before with_margin was
        folder = run_folder(args.runs_dir, name)
        if "with_margin" in entry or not (name == "shipped" or (folder / "model.safetensors").is_file()):
            continue
        print(f"{name}: measuring with the default margin", flush=True)
        model = shipped if name == "shipped" else load_model(folder / "model.safetensors")[0].eval()
        add_margin_measure(name, entry, model, clip_set, photos)
        write(output, recipe_key, results, load, started, len(paths), base)
    if "shipped" not in results:
        results["shipped"] = {"weight": None, "clean_gradient": None,
                              **measure(shipped, clip_set, Path(args.photo), (width, height), args.frames, meter,
                                        photos, features)}
    for variant in args.variants.split(","):
        if variant in results:
            continue
        weight, both, overrides = parse_variant(variant)
        config = recipe.replace(stability_weight=weight, **overrides,
                                output_dir=str(run_folder(args.runs_dir, variant)))
        print(f"{variant}: {'training' if args.from_scratch else 'fine-tuning'} {args.steps} steps at "
              f"{args.image_size}² × {args.batch_size}", flush=True)
        model, cost = fine_tune(config, None if args.from_scratch else shipped, both)
        results[variant] = {"weight": weight, "clean_gradient": both,
                            "stability_shift": config.stability_shift, "stability_noise": config.stability_noise,
                            "stability_margin": config.stability_margin,
                            "machine": machine(),
                            **cost,
                            **measure(model, clip_set, Path(args.photo), (width, height), args.frames, meter,
                                      photos, features)}
        output.parent.mkdir(parents=True, exist_ok=True)
        write(output, recipe_key, results, load, started, len(paths), base)
    write(output, recipe_key, results, load, started, len(paths), base)
    print_table(results)
    return 0


def machine() -> dict:
    """The CPU, core count and torch build, recorded per variant since a report's variants may span machines."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__}


def write(output: Path, recipe_key: dict, results: dict, load: float, started: float, photos: int,
          base: TrainConfig) -> None:
    report = {
        "benchmark": "stability", "recipe": recipe_key,
        "trained_recipe": (("the model's config with image_size, batch_size, steps and learning_rate replaced; "
                            "from the trainer's initialisation") if recipe_key["start"] == "scratch" else
                           ("the model's config with image_size, batch_size, steps replaced and its final learning "
                            "rate held constant; starts from its weights")),
        "learning_rate": recipe_key["learning_rate"], "schedule": recipe_key["schedule"], "amp": base.amp,
        "heldout_photos": photos, "variants": results,
        # This invocation's machine; each variant's entry names the one it trained on (older entries carry none).
        "machine": {**machine(), "load_average_at_start": round(load, 2), "python": platform.python_version()},
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    output.write_text(json.dumps(report, indent=2) + "\n")


def print_table(results: dict) -> None:
    off_style = results.get("off", {}).get("heldout", {}).get("style")
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}")
    print("| variant | static | pan | object | panned still | held-out style | vs off | held-out content | "
          "checkerboard | border shift | with margin: static | pan | object | border shift | s/step |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, entry in results.items():
        flicker, heldout, artifacts = entry["flicker"], entry["heldout"], entry["artifacts"]
        ratio = f"{heldout['style'] / off_style:.3f}" if off_style else "–"
        margin = entry.get("with_margin")
        seen = (f"{margin['flicker']['static']:.3f} | {margin['flicker']['pan']:.3f} | "
                f"{margin['flicker']['object']:.3f} | {margin['artifacts']['border_luma_shift']:+.3f}"
                if margin else "– | – | – | –")
        print(f"| {name} | {flicker['static']:.3f} | {flicker['pan']:.3f} | {flicker['object']:.3f} | "
              f"{flicker['panned_still']:.3f} | {heldout['style']:.4g} | {ratio} | {heldout['content']:.4g} | "
              f"{artifacts['checkerboard_flag']} | {artifacts['border_luma_shift']:+.3f} | {seen} | "
              f"{entry.get('seconds_per_step', '–')} |")


if __name__ == "__main__":
    sys.exit(main())
