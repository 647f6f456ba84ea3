#!/usr/bin/env python3
"""Write each shipped model's card (``models/<name>/README.md``) and sample output (``models/<name>/sample.jpg``).

A card says where the style came from (painting, artist, licence of the painting and of the digitisation), what
the model was trained on and how (recipe, steps, time, hardware, precision), what it reached (final training
losses, and the held-out losses and artifact checks measured by ``scripts/evaluate_models.py``), and shows one
held-out photo stylized. Every value comes from ``model.json``, ``../shared/data/manifest.csv`` and
``benchmarks/results/model_quality.json``; nothing is typed by hand. Example:

    python scripts/make_model_cards.py            # every folder under models/
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from evaluate_models import (  # scripts/ is on sys.path when run
    artifact_flags,
    flicker_cells,
    fmt_ratio,
    num,
    twin_ratios,
)
from PIL import Image
from train_zoo import RECIPES, recipe_of

from fastnst.model.files import load_styled_model
from fastnst.model.mixing import style_entries
from fastnst.runtime.pipeline import stylize_tensor
from fastnst.training.config import inherited_configs
from fastnst.training.data import find_photos, split_holdout
from fastnst.training.lineage import lineage_of
from fastnst.utils.atomic import atomic_write_text
from fastnst.utils.images import image_to_tensor, load_rgb, resize_max_side, save_image, tensor_to_image

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FASTNST_SHARED_DATA", REPO.parent / "shared" / "data"))
SAMPLE_PHOTO = REPO / "samples" / "castle.jpg"  # held out from training, CC0 (samples/CREDITS.md)
SAMPLE_MAX_SIDE = 512
SAMPLE_QUALITY = 88


@dataclass(frozen=True)
class Painting:
    """A style image as ../shared/data/manifest.csv describes it."""

    file: str
    artist: str
    title: str
    date: str
    licence: str
    source_package: str
    credit: str
    size: tuple[int, int]

    @property
    def label(self) -> str:
        return f"{self.artist}, *{self.title}*" + (f" ({self.date})" if self.date else "")


def read_manifest(shared: Path = SHARED) -> dict[str, dict[str, str]]:
    """manifest.csv rows by file path relative to the shared data folder (e.g. ``styles/x.jpg``)."""
    with open(shared / "manifest.csv", newline="", encoding="utf-8") as handle:
        return {row["file"]: row for row in csv.DictReader(handle)}


def painting_info(style_file: str, manifest: dict[str, dict[str, str]]) -> Painting:
    """Parse the manifest's "Artist, Title - date" into its parts."""
    row = manifest[f"styles/{style_file}"]
    artist, _, rest = row["title"].partition(", ")
    title, _, date = rest.rpartition(" - ") if " - " in rest else (rest, "", "")
    return Painting(file=style_file, artist=artist.strip(), title=title.strip().rstrip("."),
                    date=date.strip().rstrip("."), licence=row["licence"], source_package=row["source_package"],
                    credit=row["credit"], size=(int(row["width"]), int(row["height"])))


def model_paintings(meta: dict, folder: Path, manifest: dict[str, dict[str, str]]) -> list[tuple[str, Painting]]:
    """(style name, painting) for each style a model holds, in the order of its norm rows."""
    return [(entry["name"], painting_info(entry["image"], manifest)) for entry in style_entries(meta, folder.name)]


def fmt(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def training_photos(config: dict, manifest: dict[str, dict[str, str]]) -> tuple[int, int, str]:
    """(training photo count, held-out count, "package n, …") for the run's photo folder, if it is here."""
    folder = Path(config["data_dir"])
    if not folder.is_dir():
        folder = SHARED / "photos"
    train, held = split_holdout(find_photos(folder), int(config.get("holdout_every", 0)))
    packages = Counter(manifest.get(f"photos/{p.name}", {}).get("source_package", "unknown") for p in train)
    return len(train), len(held), ", ".join(f"{name} {count}" for name, count in packages.most_common())


def stylized_sample(folder: Path, photo: Path = SAMPLE_PHOTO, mix: dict[str, float] | None = None) -> Image.Image:
    """The sample photo at ≤ SAMPLE_MAX_SIDE px through the model (a multi-style model at ``mix``, default: its
    first style)."""
    model, _ = load_styled_model(folder, mix=mix)
    image = image_to_tensor(resize_max_side(load_rgb(photo), SAMPLE_MAX_SIDE))
    with torch.inference_mode():
        return tensor_to_image(stylize_tensor(model, image))


def strip(images: list[Image.Image], gap: int = 4) -> Image.Image:
    """Images side by side at half size, on white."""
    tiles = [image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS) for image in images]
    out = Image.new("RGB", (sum(t.width for t in tiles) + gap * (len(tiles) - 1), tiles[0].height), "white")
    for index, tile in enumerate(tiles):
        out.paste(tile, (index * (tile.width + gap), 0))
    return out


def make_samples(folder: Path, styles: list[str], photo: Path = SAMPLE_PHOTO) -> list[Path]:
    """``folder/sample.jpg``: the sample photo stylized; for a multi-style model, a strip of every style, and
    ``folder/mix.jpg``: its first two styles mixed at 0, 25, 50, 75 and 100 %."""
    if len(styles) == 1:
        return [save_image(stylized_sample(folder, photo), folder / "sample.jpg", quality=SAMPLE_QUALITY)]
    pure = [stylized_sample(folder, photo, {name: 1.0}) for name in styles]
    first, second = styles[:2]
    mixes = [stylized_sample(folder, photo, {first: 1 - share, second: share}) for share in MIX_SHARES]
    return [save_image(strip(pure), folder / "sample.jpg", quality=SAMPLE_QUALITY),
            save_image(strip(mixes), folder / "mix.jpg", quality=SAMPLE_QUALITY)]


MIX_SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)  # of the second style, in mix.jpg


def style_section(paintings: list[tuple[str, Painting]], style_size: int) -> list[str]:
    """Where each style came from: a table of one painting, or one row per style of a multi-style model."""
    used = f"used at {style_size or 'full'} px on the longer side"
    if len(paintings) == 1:
        painting = paintings[0][1]
        return [
            "## Style image",
            "",
            "| | |",
            "|---|---|",
            f"| painting | {painting.title} |",
            f"| artist | {painting.artist} |",
            f"| date | {painting.date or '–'} |",
            (f"| file | `../shared/data/styles/{painting.file}` ({painting.size[0]}×{painting.size[1]} px; "
             f"{used}) |"),
            "| painting licence | public domain (the painter died over 70 years ago) |",
            f"| digitisation | from the Debian/PyPI package `{painting.source_package}`, licence as recorded in "
            f"`../shared/data/manifest.csv`: {painting.licence}"
            + (f"; credit: {painting.credit}" if painting.credit else "") + " |",
        ]
    lines = [
        "## Style images",
        "",
        (f"Paintings in public domain (the painters died over 70 years ago), {used}; digitisations from "
         "`../shared/data/styles`, licences as recorded in `../shared/data/manifest.csv`."),
        "",
        "| style | painting | file | digitisation |",
        "|---|---|---|---|",
    ]
    for style, painting in paintings:
        lines.append(f"| `{style}` | {painting.label} | `{painting.file}` ({painting.size[0]}×{painting.size[1]} px) "
                     f"| `{painting.source_package}`: {painting.licence}"
                     + (f"; credit: {painting.credit}" if painting.credit else "") + " |")
    return lines


def style_quality_section(name: str, styles: list[str], report: dict, n_held: int) -> list[str]:
    """A multi-style model's held-out losses and artifact flags per style, beside the single-style model of the
    same painting where the report has one (the judge's ratios compare across recipes; the own losses per unit
    weight, where both define them on the same layers)."""
    measured = {style: report[f"{name}:{style}"] for style in styles if f"{name}:{style}" in report}
    if not measured:
        return ["- Held-out losses: not measured yet (run `scripts/evaluate_models.py`)."]
    lines = [
        (f"- Held-out photos ({n_held}, shorter side 256 px; `scripts/evaluate_models.py`, "
         "[docs/quality.md](../../docs/quality.md)), per style. Ratios compare with the single-style model of the "
         "same painting (below 1: this model is lower); own-loss ratios per unit weight (each loss divided by "
         "its model's weight) where both use the same layers, the Gatys VGG19 judge's always."),
        "",
        "| style | content | style | style ÷ untrained | single-style model | style ratio | judge style ratio | "
        "judge content ratio | artifact flags |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for style, q in measured.items():
        twin = report.get(q.get("single_style", ""))
        ratios = twin_ratios(q, twin) if twin is not None else {}
        own, judge_style, judge_content = (fmt_ratio(ratios.get(key), 2)
                                           for key in ("style", "judge_style", "judge_content"))
        lines.append(f"| `{style}` | {fmt(q['trained']['content'])} | {fmt(q['trained']['style'])} | "
                     f"{q['trained']['style'] / q['untrained']['style']:.3f} | "
                     + (f"[`{twin_name}`](../{twin_name}/README.md)" if (twin_name := q.get("single_style"))
                        and twin is not None else "–")
                     + f" | {own} | {judge_style} | {judge_content} | {artifact_flags(q['artifacts']['trained'])} |")
    later = [style for style, q in measured.items() if q.get("from_base")]
    if later:
        lines += ["", (", ".join(f"`{style}`" for style in later) + " learned by a later `--base` run (Training "
                       "above): their style ÷ untrained compares with that run's start, the mean of the rows it "
                       "kept, an already stylized network.")]
    recipe = next(iter(measured.values())).get("recipe")
    other = sorted({twin["recipe"] for q in measured.values() if (twin := report.get(q.get("single_style", "")))
                    and twin.get("recipe") != recipe})
    if other:
        lines += ["", (f"The single-style models were trained with another recipe (`{'`, `'.join(other)}`), so "
                       "these ratios mix the recipe's effect with the multi-style network's; the comparison at the "
                       f"same recipe (`{recipe}`) and steps per style is in "
                       "[docs/benchmarks.md](../../docs/benchmarks.md#multi-style-models).")]
    return lines


def later_runs(runs: list[dict]) -> list[str]:
    """One training-table row per ``--base`` run after the first of a model's lineage: which styles' rows it
    learned, at what weight."""
    rows = []
    for index, run in enumerate(runs[1:], start=1):
        config, before = run["config"], {name for earlier in runs[:index] for name in earlier["styles"]}
        weights = config.get("style_weights") or [config["style_weight"]] * len(run["styles"])
        learned = ", ".join(f"`{name}` ({'relearned' if name in before else 'added'}, style weight {num(weight)})"
                            for name, weight in zip(run["styles"], weights, strict=True))
        rows.append(f"| then | `fastnst train --base`: {learned}; only their norm rows learn, every other weight and "
                    f"row stays bit-equal; {run['steps']} × batch {config['batch_size']} random "
                    f"{config['image_size']}² crops, Adam, learning rate {config['learning_rate']:g}, "
                    f"{run.get('train_seconds', 0):.0f} s on {run.get('hardware', '?')} |")
    return rows


def stability_row(config: dict) -> list[str]:
    """The training table's row for the stability loss, when the model was trained with it."""
    weight = config.get("stability_weight") or 0.0
    if weight <= 0:
        return []
    shift = config.get("stability_shift") or 0
    perturbation = f"Gaussian noise σ {config['stability_noise']:g}" + (f" and a shift of up to {shift} px"
                                                                          if shift else "")
    return [f"| stability loss | weight {num(weight)}: the output of a copy with {perturbation} must match the "
            "output of the frame itself "
            "([docs/training.md](../../docs/training.md#stable-video-the-stability-loss)) |"]


FLICKER_MEANING = ("Plain per-frame flicker, the output's frame-to-frame change ÷ the input's (1 = the video changes "
                   "as much as its source; [docs/quality.md](../../docs/quality.md#video-flicker))")
FLICKER_REMEDY = ("`--flicker-reduction 0.5` damps what is left "
                  "([docs/inference.md](../../docs/inference.md#video)).")


def video_section(name: str, flicker: dict | None) -> list[str]:
    """Plain per-frame flicker, as measured by ``scripts/evaluate_models.py``: what a video made with this model
    shimmers by without ``--flicker-reduction``."""
    if not flicker:
        return []
    seen, bare = flicker["with_margin"], flicker["bare"]
    return [
        "",
        "## Video",
        "",
        (f"{FLICKER_MEANING}, as `fastnst stylize in.mp4 --model {name}` gives it ({flicker['margin']} px margin): "
         f"static view {seen['static']:.2f}, pan {seen['pan']:.2f}, moving object {seen['object']:.2f}; the bare "
         f"network: {bare['static']:.2f}, {bare['pan']:.2f}, {bare['object']:.2f}. {FLICKER_REMEDY}"),
    ]


def style_video_section(name: str, styles: list[str], report: dict) -> list[str]:
    """A multi-style model's plain per-frame flicker, one row per style: styles of one network differ as much
    as separate models do."""
    measured = {style: q["flicker"] for style in styles if (q := report.get(f"{name}:{style}")) and "flicker" in q}
    if not measured:
        return []
    margin = next(iter(measured.values()))["margin"]
    lines = [
        "",
        "## Video",
        "",
        (f"{FLICKER_MEANING}, per style: through the margin as `fastnst stylize in.mp4 --model {name} --style S` "
         f"gives it ({margin} px), and of the bare network. {FLICKER_REMEDY}"),
        "",
        "| style | static | pan | moving object | bare: static | bare: pan | bare: moving object |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| `{style}` | {flicker_cells(flicker)} |" for style, flicker in measured.items()]
    return lines


def card(folder: Path, meta: dict, paintings: list[tuple[str, Painting]], photos: tuple[int, int, str],
         quality: dict | None, report: dict | None = None) -> str:
    """The Markdown model card (one style, or a multi-style model's styles and mixes). ``quality``: the model's
    entry of ``scripts/evaluate_models.py``'s report (single-style), ``report``: all its entries (multi-style)."""
    name = folder.name
    styles = [style for style, _ in paintings]
    multi = len(styles) > 1
    runs = lineage_of(meta)
    run = runs[0]  # the run that trained the shared weights (model.json itself for a model of one run)
    config = run["config"]
    recipe = recipe_of(config)
    losses = run.get("final_losses") or {}
    run_styles = len(run["styles"])
    weights = folder / "model.safetensors"
    onnx = folder / "model.onnx"
    n_train, n_held, packages = photos
    layers = ", ".join(f"{layer} ×{w:g}"
                       for layer, w in zip(config["style_layers"], config["style_layer_weights"], strict=False))
    recipe_flags = " ".join(f"{k} {v}" for k, v in RECIPES.get(recipe, {}).items())
    photo_credit = ("`samples/castle.jpg` (Neuschwanstein Castle, photo by cameralends, CC0; held out from "
                    f"training), stylized at {SAMPLE_MAX_SIDE} px on the longer side")
    lines = [
        f"# `{name}` — fastnst style model",
        "",
        "<!-- generated by scripts/make_model_cards.py; do not edit by hand -->",
        "",
    ]
    if multi:
        first, second = styles[:2]
        lines += [
            (f"{len(styles)} styles in one feed-forward transform network (Johnson et al. 2016; "
             f"{meta['parameters']:,} parameters) trained with fastnst's own trainer on real photos: every weight "
             "is shared except the instance norms' scale and shift, one row per style (conditional instance "
             "norm, Dumoulin et al. 2017), so any mix of the styles runs too. Styles: "
             + ", ".join(f"`{style}`" for style in styles) + "."),
            "",
            f"![each style of {name} applied to a held-out photo](sample.jpg)",
            "",
            (f"*Sample:* {photo_credit}, in each style from left to right: "
             + ", ".join(f"`{style}`" for style in styles) + "."),
            "",
            f"![{first} mixed into {second}](mix.jpg)",
            "",
            (f"*Mixes:* `{first}` and `{second}` at "
             + ", ".join(f"{round(100 * (1 - share))}/{round(100 * share)} %" for share in MIX_SHARES)
             + f", e.g. `fastnst stylize samples/castle.jpg --model {name} --mix {first}=0.5,{second}=0.5`."),
        ]
    else:
        lines += [
            (f"Style of {paintings[0][1].label}. A feed-forward transform network (Johnson et al. 2016; "
             f"{meta['parameters']:,} parameters) trained with fastnst's own trainer on real photos"
             + (", with the stability loss, so that video frames that barely differ get the same texture (see "
                "Video below)." if config.get("stability_weight") else ".")),
            "",
            f"![{name} applied to a held-out photo](sample.jpg)",
            "",
            f"*Sample:* {photo_credit} with `fastnst stylize samples/castle.jpg --model {name}`.",
        ]
    lines += [
        "",
        *style_section(paintings, config["style_size"]),
        "",
        "## Files",
        "",
        (f"- `model.safetensors` — weights, fp32, {weights.stat().st_size / 1e6:.1f} MB, SHA-256 "
        f"`{meta.get('sha256', '?')[:16]}…` (checked on load against `model.json`)"),
        "- `model.json` — architecture, the full training config, steps, final losses, hardware",
    ]
    if onnx.is_file():
        lines.append(f"- `model.onnx` — ONNX export ({onnx.stat().st_size / 1e6:.1f} MB; dynamic batch, height, "
                     "width; checked against PyTorch when exported)")
    lines += [
        "- `sample.jpg`" + (", `mix.jpg` — the samples above" if multi else " — the sample above"),
        "",
        "## Training",
        "",
        "| | |",
        "|---|---|",
        (f"| photos | {n_train} real photos from `../shared/data/photos` ({packages}); every "
        f"{config['holdout_every']}th of the sorted folder ({n_held} photos) held out and never trained on |"),
        (f"| recipe | `{recipe}` (`scripts/train_zoo.py --recipe {recipe}`: {recipe_flags}; see "
         "[docs/recipes.md](../../docs/recipes.md)) |" if recipe in RECIPES else
         "| recipe | not one of `scripts/train_zoo.py`'s recipes (the settings below) |"),
        (f"| steps | {run['steps']} × batch {config['batch_size']} random {config['image_size']}² crops "
        f"({run['steps'] * config['batch_size']:,} crops"
         + (f"; each style draws an equal share, {run['steps'] * config['batch_size'] // run_styles:,} crops, "
            f"as many as {run['steps'] // run_styles} single-style steps" if multi else "") + ") |"),
        (f"| optimiser | Adam, learning rate {config['learning_rate']:g}, {config['schedule']} schedule"
         + ("" if config["schedule"] == "constant" else
            f" to {config['learning_rate'] * config['min_lr_ratio']:g}"
            + (f" over the last {config['cooldown_fraction']:.0%} of the steps"
               if config["schedule"] == "cooldown" else ""))
         + f", warm-up {config['warmup_steps']}, seed {config['seed']}"
         + (f"; the model is the weight average of width {config['ema_width']:g}" if config.get("ema_width") else "")
         + " |"),
        f"| loss network | {config['vgg']} (ImageNet weights) |",
        f"| content loss | {config['content_layer']}, weight {num(config['content_weight'])} |",
        f"| style loss | {layers}; weight {num(config['style_weight'])}; Gram matrices / (C·H·W) |",
        f"| TV loss weight | {num(config['tv_weight'])} |",
        *stability_row(config),
        (f"| precision | {run.get('precision', '?')}"
         + (" |" if run.get("precision") == "float32" else " autocast (losses in fp32) |")),
        f"| hardware | {run.get('hardware', '?')}, torch {meta.get('torch', '?')} |",
        (f"| time | {run.get('train_seconds', 0):.0f} s in training steps (start-up, data loading and saving not "
        "included) |"),
    ]
    config_file = next((f"{kind}/{name}.toml" for kind in ("styles", "multistyle")
                        if (REPO / "configs" / kind / f"{name}.toml").is_file()), None)
    if config_file:
        parents = [path.relative_to(REPO).as_posix() for path in inherited_configs(REPO / "configs" / config_file)]
        chain = (" (inherits " + ", which inherits ".join(f"`{parent}`" for parent in parents) + ")"
                 if parents else "")
        lines.append(f"| config | [`configs/{config_file}`](../../configs/{config_file}){chain}, plus the "
                     "recipe's flags |")
    else:
        lines.append("| config | the full config is in `model.json` |")
    lines += later_runs(runs)
    if "gpu" in recipe and "NVIDIA" in str(run.get("hardware")):
        lines.append("| GPU inputs | photos and style image downscaled to 512 px on the longer side and VGG16 "
                     "weights cast to fp16 before upload (`benchmarks/prepare_device_payload.py`) |")
    lines += [
        "",
        "## Losses",
        "",
        "Weighted as in the training log (content_weight·MSE, style_weight·Σ Gram MSE).",
        "",
        (f"- Final training batch (step {run['steps']}): total {fmt(losses.get('total'))}, content "
        f"{fmt(losses.get('content'))}, style {fmt(losses.get('style'))}."),
    ]
    if multi:
        lines += style_quality_section(name, styles, report or {}, n_held)
        lines += style_video_section(name, styles, report or {})
    elif quality:
        q = quality
        tenth = q.get("tenth")
        held = (f"- Held-out photos ({n_held}, shorter side 256 px; `scripts/evaluate_models.py`, "
                "[docs/quality.md](../../docs/quality.md)): content "
                f"{fmt(q['trained']['content'])}, style {fmt(q['trained']['style'])}. The untrained network "
                f"(step 0): content {fmt(q['untrained']['content'])}, style {fmt(q['untrained']['style'])}; "
                f"the photo itself: style {fmt(q['photo']['style'])}; an unrelated photo: content "
                f"{fmt(q['other_photo']['content'])}.")
        if tenth:
            held += (f" The same recipe for a tenth of the steps ({tenth['steps']}): content "
                     f"{fmt(tenth['content'])}, style {fmt(tenth['style'])}.")
        lines.append(held)
        a = q["artifacts"]["trained"]
        flags = artifact_flags(a)
        lines += [
            "",
            "## Artifact checks",
            "",
            (f"Grid-aligned pattern share (period 2 / 4 px; the photos' own in brackets): {a['checkerboard_2']:.3f} "
             f"/ {a['checkerboard_4']:.3f} ({a['photo_checkerboard_2']:.3f} / {a['photo_checkerboard_4']:.3f}), "
             f"period-4 amplitude {a['grid_levels_4']:.1f} grey levels. Border band vs interior, relative to the "
             f"photos': luma shift {a['border_luma_shift']:+.3f}, detail ratio {a['border_detail_ratio']:.2f}; "
             f"output minus photo luma {a['edge_profile'][0]:+.3f} at the edge (0–2 px) and "
             f"{a['edge_profile'][-1]:+.3f} in the interior (≥ 64 px). "
             f"Flags: **{flags}** (method and thresholds: "
             "[docs/quality.md](../../docs/quality.md#artifacts)"
             + ("; what was tried and what is left: [docs/recipes.md]"
                "(../../docs/recipes.md#artifacts-what-was-measured-what-was-tried-what-ships)"
                if flags != "none" else "") + ")."),
        ]
        lines += video_section(name, q.get("flicker"))
    else:
        lines.append("- Held-out losses: not measured yet (run `scripts/evaluate_models.py`).")
    use = [f"fastnst stylize photo.jpg --model {name} -o photo_{name}.jpg"]
    if multi:
        use = [f"fastnst stylize photo.jpg --model {name} --style {styles[1]} -o photo_{styles[1]}.jpg",
               f"fastnst stylize photo.jpg --model {name} --mix {styles[0]}=0.7,{styles[1]}=0.3 -o photo_mix.jpg"]
    query = f"model={name}" + (f"&style={styles[1]}" if multi else "")
    lines += [
        "",
        "## Use",
        "",
        "```bash",
        *use,
        f"fastnst serve --models models    # then POST /v1/stylize?{query}",
        "```",
        "",
    ]
    return "\n".join(lines)


RECIPES_DOC = REPO / "docs" / "recipes.md"
TABLE_BEGIN, TABLE_END = "<!-- models:begin", "<!-- models:end -->"


def recipe_table(folders: list[Path]) -> str:
    """The "which recipe made each shipped model" rows of docs/recipes.md, from each model.json."""
    rows = ["| model | recipe | steps × batch × crop | precision | hardware | time in steps |",
            "|---|---|---|---|---|---|"]
    for folder in folders:
        meta = json.loads((folder / "model.json").read_text())
        runs = lineage_of(meta)
        run, config = runs[0], runs[0]["config"]
        later = "".join(f" + {r['steps']} × {r['config']['batch_size']} × {r['config']['image_size']}² (`--base`)"
                        for r in runs[1:])
        seconds = sum(r.get("train_seconds", 0) for r in runs)
        rows.append(f"| [`{folder.name}`](../models/{folder.name}/README.md) | `{recipe_of(config)}` | "
                    f"{run['steps']} × {config['batch_size']} × {config['image_size']}²{later} | "
                    f"{run.get('precision')} | {run.get('hardware')} | {seconds:.0f} s |")
    return "\n".join(rows)


def update_recipes_doc(folders: list[Path], path: Path = RECIPES_DOC) -> None:
    """Replace the generated table between the markers in docs/recipes.md (the prose around it is by hand)."""
    text = path.read_text(encoding="utf-8")
    start, end = text.index(TABLE_BEGIN), text.index(TABLE_END)
    head = text[:start] + text[start:].split("\n", 1)[0] + "\n"
    path.write_text(head + recipe_table(folders) + "\n" + text[end:], encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path, help="model folders (default: models/*)")
    parser.add_argument("--quality", type=Path, default=REPO / "benchmarks" / "results" / "model_quality.json")
    parser.add_argument("--no-samples", action="store_true", help="keep existing sample.jpg files")
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    folders = args.models or sorted(p.parent for p in (REPO / "models").glob("*/model.safetensors"))
    manifest = read_manifest()
    quality = json.loads(args.quality.read_text())["models"] if args.quality.is_file() else {}
    for folder in folders:
        meta = json.loads((folder / "model.json").read_text())
        paintings = model_paintings(meta, folder, manifest)
        written = [] if args.no_samples and (folder / "sample.jpg").is_file() else make_samples(
            folder, [style for style, _ in paintings])
        text = card(folder, meta, paintings, training_photos(meta["config"], manifest), quality.get(folder.name),
                    quality)
        atomic_write_text(folder / "README.md", text)
        print(f"wrote {', '.join(str(path) for path in [folder / 'README.md', *written])}")
    if not args.models and RECIPES_DOC.is_file():
        update_recipes_doc(folders)
        print(f"updated the model table in {RECIPES_DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
