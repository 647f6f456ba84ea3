#!/usr/bin/env python3
"""Measure every shipped style model on the photos its trainer held out, and check it for artifacts.

For each model, on each held-out photo (every ``holdout_every``-th photo of the sorted training folder, never
seen in training; shorter side resized to 256 px), the trainer's own content and style losses
(fastnst.perceptual.losses on fastnst.perceptual.vgg, weighted as in the training log) are computed for:

- the trained model;
- the untrained network (the trainer's seeded initialisation: the run at step 0);
- the same recipe run for a tenth of the steps (model folders under ``--tenth-dir``, if present);
- the photo itself (no stylization: content loss 0, the photo's own distance to the painting's style).

A multi-style model is measured once per style (``model:style``, the network baked for that style, against that
style's painting) and set beside any single-style model of the same painting.

Checkerboard and border statistics of the trained (and tenth) outputs are compared with the photos' own (see
fastnst.training.quality), and the trained network's plain per-frame video flicker is measured on the synthetic
clips of fastnst.bench.flicker (made from ``samples/castle.jpg``, held out from training), bare and through the
mirrored margin ``fastnst stylize in.mp4`` applies. Writes a JSON (numbers per photo) and a Markdown page with
the tables. Example:

    nice python scripts/evaluate_models.py models/* --tenth-dir runs/tenth_models \\
        --json benchmarks/results/model_quality.json --markdown docs/quality.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F
from train_zoo import recipe_of  # scripts/ is on sys.path when this file is run

from fastnst.bench.flicker import CLIP_FRAMES, CLIP_NAMES, CLIP_SIZE, PAN_PX, plain_flicker, synthetic_clips
from fastnst.model.files import load_model
from fastnst.model.mixing import model_styles
from fastnst.model.transformer import TransformerNet
from fastnst.runtime.margin import DEFAULT_MARGIN
from fastnst.training.config import TrainConfig
from fastnst.training.quality import (
    BORDER_BAND_FRACTION,
    BORDER_DETAIL_MAX,
    BORDER_LUMA_MAX,
    CHECKERBOARD_MAX,
    CHECKERBOARD_MIN_LEVELS,
    EDGE_BINS,
    EVAL_SHORT_SIDE,
    ArtifactReport,
    GatysJudge,
    LossMeter,
    StyleRun,
    artifact_report,
    heldout_photos,
    load_eval_image,
    make_vgg,
    style_network,
    style_runs,
    untrained_network,
)
from fastnst.utils.machine import cpu_model

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FASTNST_SHARED_DATA", REPO.parent / "shared" / "data"))
CLIP_PHOTO = REPO / "samples" / "castle.jpg"  # held out from every model's training (samples/CREDITS.md)


def artifact_dict(report: ArtifactReport) -> dict:
    return {**asdict(report), "checkerboard_flag": report.checkerboard, "border_flag": report.border}


def num(value: float) -> str:
    """A config number the way a person writes it: 1e5, 5e9, 0.001."""
    return f"{value:.3g}".replace("e+0", "e").replace("e+", "e")


def mean(values: list[float]) -> float:
    return statistics.fmean(values)


@torch.no_grad()
def measure(outputs: list[torch.Tensor], features: list[dict[str, torch.Tensor]], meter: LossMeter) -> dict:
    """Mean (and per-photo) weighted content and style loss of ``outputs`` against each photo's features."""
    per_photo = [meter(out, feats) for out, feats in zip(outputs, features, strict=False)]
    summary = {key: mean([p[key] for p in per_photo]) for key in ("content", "style")}
    return {**summary, "per_photo": per_photo}


@torch.no_grad()
def stylize(net: torch.nn.Module, photos: list[torch.Tensor]) -> list[torch.Tensor]:
    return [net(photo).float().clamp(0, 1) for photo in photos]


def video_flicker(model: torch.nn.Module, clips: dict[str, torch.Tensor]) -> dict:
    """Plain per-frame flicker of each clip, as ``fastnst stylize in.mp4`` delivers it and for the bare network."""
    return {"margin": DEFAULT_MARGIN, "with_margin": plain_flicker(model, clips),
            "bare": plain_flicker(model, clips, margin=0)}


def flicker_cells(flicker: dict) -> str:
    """A flicker entry as six table cells: static, pan and object through the margin, then the same bare."""
    return " | ".join(f"{flicker[view][clip]:.2f}" for view in ("with_margin", "bare") for clip in CLIP_NAMES)


def other_photos(photos: list[torch.Tensor]) -> list[torch.Tensor]:
    """For each photo, the next held-out photo resized to its size: the content loss of an unrelated image."""
    return [F.interpolate(photos[(i + 1) % len(photos)], size=photo.shape[-2:], mode="bilinear",
                          align_corners=False, antialias=True).clamp(0, 1) for i, photo in enumerate(photos)]


def painting_of(config_image: str) -> Path:
    """The painting a model learned: its config's path, or the same file name under ../shared/data/styles when the
    model was trained on another machine."""
    path = Path(config_image)
    return path if path.is_file() else SHARED / "styles" / path.name


@dataclass(frozen=True)
class Measured:
    """One network to measure: a single-style model, or one style of a multi-style model."""

    name: str  # the model folder's name, or "folder:style"
    network: TransformerNet  # the plain network of this style
    whole: TransformerNet  # the model's network, every style
    metadata: dict
    model: str  # the model folder's name
    style: StyleRun  # the style and the run that learned it

    @property
    def painting(self) -> str:
        return self.style.painting


def measured_networks(model_dirs: list[Path]) -> list[Measured]:
    """Every style of each model of ``model_dirs``, a multi-style one once per style, each with its own run's recipe
    (a model grown from a base holds rows learned by several runs; see :func:`style_runs` for what is left out)."""
    out = []
    for folder in model_dirs:
        network, info = load_model(folder)
        rows = model_styles(info.metadata, folder.name)
        styles, skipped = style_runs(info.metadata, rows)
        if skipped:
            print(f"{folder.name}: {', '.join(skipped)} not measured: model.json traces no run of theirs whose "
                  "step 0 this model still holds (a base's styles, or an earlier run from a base)", flush=True)
        out += [Measured(folder.name if len(rows) == 1 else f"{folder.name}:{style.name}",
                         style_network(network, style.row), network, info.metadata, folder.name, style)
                for style in sorted(styles, key=lambda style: style.row)]
    return out


# What a "style loss" number means: two models' own losses compare only where these settings agree.
LOSS_KEYS = ("vgg", "content_layer", "style_layers", "style_layer_weights", "content_weight", "style_weight")


def loss_definition(config: TrainConfig) -> dict:
    """The settings that define a model's own (weighted) content and style loss numbers."""
    return {key: list(value) if isinstance(value, tuple) else value
            for key in LOSS_KEYS for value in [getattr(config, key)]}


# The scalar weights only scale a loss: two models that differ only there still compare, per unit weight.
LOSS_WEIGHTS = {"style": "style_weight", "content": "content_weight"}


def twin_ratios(entry: dict, twin: dict) -> dict[str, float | None]:
    """A multi-style model's style ÷ its single-style twin, per loss (None where they do not compare): the own losses
    per unit weight (each divided by its model's weight) where both models define them alike but for the weights,
    the judge's where both were judged."""
    mine, theirs = entry.get("loss"), twin.get("loss")
    alike = mine is not None and theirs is not None and all(
        mine.get(key) == theirs.get(key) for key in LOSS_KEYS if key not in LOSS_WEIGHTS.values())

    def own(kind: str) -> float | None:
        if not alike:
            return None
        weight = LOSS_WEIGHTS[kind]
        return (entry["trained"][kind] / mine[weight]) / (twin["trained"][kind] / theirs[weight])

    judge, twin_judge = entry.get("judge", {}).get("trained"), twin.get("judge", {}).get("trained")
    judged = bool(judge and twin_judge)
    return {
        "style": own("style"),
        "content": own("content"),
        "judge_style": judge["style"] / twin_judge["style"] if judged else None,
        "judge_content": judge["content"] / twin_judge["content"] if judged else None,
    }


def place(name: str, unit: Measured, twins: dict[str, str]) -> dict[str, str]:
    """A multi-style entry's model, style and single-style twin (if any); nothing for a single-style model."""
    if name == unit.model:
        return {}
    return {"model": unit.model, "style": name.split(":", 1)[1],
            **({"single_style": twins[name]} if name in twins else {})}


def single_style_twins(units: list[Measured]) -> dict[str, str]:
    """Each style of a multi-style model → a single-style model of the same painting (by file name), if any: the
    one named like the style where the painting has several (``starry_night`` beside ``starry_night_video``)."""
    singles: dict[str, list[str]] = {}
    for unit in units:
        if unit.name == unit.model:
            singles.setdefault(Path(unit.painting).name, []).append(unit.name)
    twins: dict[str, str] = {}
    for unit in units:
        names = singles.get(Path(unit.painting).name, [])
        if unit.name != unit.model and names:
            style = unit.name.split(":", 1)[1]
            twins[unit.name] = style if style in names else names[0]
    return twins


@torch.no_grad()
def judge_outputs(outputs: list[torch.Tensor], photo_features: list[torch.Tensor], judge: GatysJudge) -> dict:
    """Mean Gatys-judge content and style of ``outputs`` against each photo's relu4_2 features."""
    scores = [judge(out, feats) for out, feats in zip(outputs, photo_features, strict=True)]
    return {key: mean([s[key] for s in scores]) for key in ("content", "style")}


def evaluate(model_dirs: list[Path], tenth_dir: Path | None, data_dir: Path, vgg_weights: Path | None,
             short_side: int, previous: dict | None = None, judge_weights: Path | None = None,
             keep_others: bool = False) -> dict:
    """Measure every model; entries of ``previous`` (an earlier report) whose weights and settings are unchanged
    are kept as they are, so adding the tenth-steps models later costs only their own measurement. With
    ``keep_others``, ``previous``'s entries of models not given stay too (say, twins whose folders are gone), and
    a multi-style entry with no twin among the models given keeps the twin its earlier entry had."""
    units = measured_networks(model_dirs)
    configs = {unit.name: unit.style.config for unit in units}
    holdouts = {c.holdout_every for c in configs.values()}
    if len(holdouts) != 1 or 0 in holdouts:
        raise SystemExit(f"models disagree on, or lack, held-out photos (holdout_every: {sorted(holdouts)})")
    paths = heldout_photos(data_dir, holdouts.pop())
    names = [str(p.relative_to(data_dir)) for p in paths]
    reusable = (previous or {}).get("models", {}) if previous and previous.get("photos") == names and \
        previous.get("eval_short_side") == short_side else {}
    photos = [load_eval_image(p, short_side) for p in paths]
    vgg = make_vgg(list(configs.values()), vgg_weights)
    started = time.perf_counter()
    features = [vgg(photo) for photo in photos]  # every layer any loss uses, computed once per photo
    unrelated = other_photos(photos)
    clips = synthetic_clips(CLIP_PHOTO)
    judge_vgg = None
    if judge_weights is not None:
        judge_vgg = GatysJudge.network(judge_weights)
        judge_features = [GatysJudge.photo_features(judge_vgg, photo) for photo in photos]

    def judge_entry(outputs: list[torch.Tensor], painting: str) -> dict:
        """The independent judge's scores of a model's ``outputs`` and of the photos themselves."""
        judge = GatysJudge(painting_of(painting), vgg=judge_vgg)
        return {"trained": judge_outputs(outputs, judge_features, judge),
                "photo": judge_outputs(photos, judge_features, judge),
                "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    results: dict[str, dict] = {}
    twins = single_style_twins(units)
    for unit in units:
        t0 = time.perf_counter()
        name, model, config, meta = unit.name, unit.network, unit.style.own, unit.metadata
        old = dict(reusable.get(name, {}))  # a copy: the previous report still holds its twins
        painting = str(painting_of(unit.painting))
        tenth_path = tenth_dir / name if tenth_dir and name == unit.model else None
        tenth_meta = (load_model(tenth_path)[1].metadata if tenth_path is not None
                      and (tenth_path / "model.safetensors").is_file() else None)
        described = {"loss": loss_definition(config), "from_base": unit.style.from_base,
                     "stability_weight": unit.style.run["config"].get("stability_weight", 0.0)}
        flicker = video_flicker(model, clips)  # cheap (no VGG): measured again for every model, like artifacts
        if old.get("sha256") == meta.get("sha256") and (
                tenth_meta is None or old.get("tenth", {}).get("sha256") == tenth_meta.get("sha256")):
            # Losses kept; the artifact statistics are cheap (no VGG), so they always follow the current code.
            kept = old.get("artifacts", {})
            outputs = stylize(model, photos)
            old["artifacts"] = {"trained": artifact_dict(artifact_report(outputs, photos))}
            if tenth_meta is not None:
                old["artifacts"]["tenth"] = artifact_dict(
                    artifact_report(stylize(load_model(tenth_path)[0], photos), photos))
            elif "tenth" in kept:  # the tenth-steps model is not here: its measured entry stays as it was
                old["artifacts"]["tenth"] = kept["tenth"]
            old.setdefault("measured_at", (previous or {}).get("measured_at"))
            old.update(described, flicker=flicker)
            if judge_vgg is not None and "judge" not in old:
                old["judge"] = judge_entry(outputs, painting)
            old.pop("single_style", None)  # the twin depends on which models this run was given
            results[name] = {**old, **place(name, unit, twins)}
            print(f"{name}: losses unchanged, kept from the previous report; artifacts remeasured", flush=True)
            continue
        meter = LossMeter(config, vgg, image=painting)
        entry: dict = {
            "sha256": meta.get("sha256"), "recipe": recipe_of(unit.style.run["config"]),
            **{key: unit.style.run.get(key)
               for key in ("steps", "hardware", "precision", "train_seconds", "final_losses")},
            **described,
        }
        outputs = stylize(model, photos)
        if old.get("sha256") == meta.get("sha256"):  # only the tenth-steps model is new
            entry.update({k: old[k] for k in ("trained", "untrained", "photo", "other_photo")})
            artifacts = {"trained": artifact_dict(artifact_report(outputs, photos))}
        else:
            entry["trained"] = measure(outputs, features, meter)
            untrained = style_network(untrained_network(unit.style.config, unit.whole, unit.style.learned_with),
                                        unit.style.row)
            entry["untrained"] = measure(stylize(untrained, photos), features, meter)
            entry["photo"] = measure(photos, features, meter)
            entry["other_photo"] = measure(unrelated, features, meter)
            artifacts = {"trained": artifact_dict(artifact_report(outputs, photos))}
        if tenth_meta is not None:
            tenth_model, _ = load_model(tenth_path)
            tenth_outputs = stylize(tenth_model, photos)
            entry["tenth"] = measure(tenth_outputs, features, meter)
            entry["tenth"].update({
                "sha256": tenth_meta.get("sha256"), "steps": tenth_meta.get("steps"),
                "recipe": recipe_of(tenth_meta["config"]), "hardware": tenth_meta.get("hardware"),
                "precision": tenth_meta.get("precision"), "train_seconds": tenth_meta.get("train_seconds")})
            artifacts["tenth"] = artifact_dict(artifact_report(tenth_outputs, photos))
        entry["artifacts"] = artifacts
        entry["flicker"] = flicker
        if judge_vgg is not None:
            entry["judge"] = judge_entry(outputs, painting)
        entry.update(place(name, unit, twins))
        entry["seconds"] = round(time.perf_counter() - t0, 1)
        entry["measured_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        results[name] = entry
        print(f"{name}: style {entry['trained']['style']:.4g} (untrained {entry['untrained']['style']:.4g}, "
              f"tenth {entry.get('tenth', {}).get('style', float('nan')):.4g}), content "
              f"{entry['trained']['content']:.4g}; checkerboard p4 {artifacts['trained']['checkerboard_4']:.3f}; "
              f"{entry['seconds']} s", flush=True)
    if keep_others:
        results = with_kept_entries(results, reusable)
    return {
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "eval_short_side": short_side,
        "photos": names,
        "vgg_weights": str(vgg_weights) if vgg_weights else "resolver default",
        "loss_units": "weighted as in training: content_weight·MSE(relu2_2), style_weight·Σ MSE(Gram/(C·H·W))",
        "thresholds": {"checkerboard": CHECKERBOARD_MAX, "checkerboard_levels": CHECKERBOARD_MIN_LEVELS,
                       "border_luma": BORDER_LUMA_MAX,
                       "border_detail": BORDER_DETAIL_MAX, "border_band_fraction": BORDER_BAND_FRACTION},
        "flicker_clips": {"photo": CLIP_PHOTO.name, "size": list(CLIP_SIZE), "frames": CLIP_FRAMES},
        "seconds": round(time.perf_counter() - started, 1),
        "models": results,
    }


def with_kept_entries(results: dict[str, dict], previous: dict[str, dict]) -> dict[str, dict]:
    """``results`` plus ``previous``'s entries it lacks (in ``previous``'s order, then the new ones); a new
    multi-style entry without a twin takes its earlier entry's twin when that twin's entry is kept."""
    merged = {name: results.get(name, entry) for name, entry in previous.items()}
    merged |= {name: entry for name, entry in results.items() if name not in merged}
    for name, entry in results.items():
        twin = previous.get(name, {}).get("single_style")
        if "model" in entry and "single_style" not in entry and twin in merged and twin not in results:
            entry["single_style"] = twin
    return merged


def fmt(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.3e}".replace("e+0", "e").replace("e+", "e")


def summary(models: dict) -> list[str]:
    """Bullet points computed from the numbers: ranges, and which models the artifact checks flag."""
    def span(values: list[float], digits: str = ".2f") -> str:
        return f"{min(values):{digits}}–{max(values):{digits}}"

    style = [m["trained"]["style"] / m["untrained"]["style"] for m in models.values()]
    photo = [m["trained"]["style"] / m["photo"]["style"] for m in models.values()]
    content = [m["trained"]["content"] / m["other_photo"]["content"] for m in models.values()]
    out = [(f"- Style: every model's style loss on the held-out photos is {span(style, '.3f')} of the untrained "
            f"network's and {span(photo)} of the unstylized photo's."),
           (f"- Content: every model's content loss is {span(content)} of an unrelated photo's (1.0 would mean the "
            "output is no closer to the photo's relu2_2 features than another picture is).")]
    tenth = {name: m for name, m in models.items() if "tenth" in m}
    if tenth:
        ratios = [m["trained"]["style"] / m["tenth"]["style"] for m in tenth.values()]
        totals = [(m["trained"]["content"] + m["trained"]["style"]) / (m["tenth"]["content"] + m["tenth"]["style"])
                  for m in tenth.values()]
        out.append(f"- Steps: for the {len(tenth)} style(s) with a tenth-of-steps run ({', '.join(tenth)}), the "
                   f"full run's style loss is {span(ratios)} of the short run's and its total {span(totals)}.")
    missing = [name for name, m in models.items() if name not in tenth and "model" not in m]
    if missing:
        out.append(f"- Not yet measured: the tenth-of-steps runs of {', '.join(missing)} (see docs/recipes.md).")
    for kind in ("checkerboard", "border"):
        flagged = [name for name, m in models.items() if m["artifacts"]["trained"][f"{kind}_flag"]]
        out.append(f"- {kind.capitalize()} check: " + (f"flags {', '.join(flagged)} ({len(flagged)} of "
                   f"{len(models)})." if flagged else f"no model flagged (of {len(models)})."))
    return out


def multistyle_section(models: dict) -> list[str]:
    """Each style of a multi-style model beside the single-style model of the same painting (if one was measured)."""
    styles = {name: m for name, m in models.items() if "model" in m}
    if not styles:
        return []
    lines = [
        "",
        "## Multi-style models against single-style ones",
        "",
        ("Each style of a multi-style model (the network baked for that style) on the same photos and the same "
         "painting's losses as the single-style model of that painting; ratios below 1 favour the multi-style "
         "model. Steps are the run's total (a multi-style run shares them among its styles). The own-loss ratios "
         "compare the losses per unit weight (each divided by its model's content or style weight) and are given "
         "only where both models use the same VGG, layers and layer weights (else –); the Gatys judge's ratios "
         "always compare."),
        "",
        "| style | recipe | steps | style loss | single-style model | recipe | steps | style loss | style ratio | "
        "content ratio | judge style ratio | judge content ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in styles.items():
        twin = models.get(m.get("single_style", ""))
        head = f"| `{name}` | `{m.get('recipe', '?')}` | {m['steps']} | {fmt(m['trained']['style'])} |"
        if twin is None:
            lines.append(head + " – | – | – | – | – | – | – | – |")
            continue
        ratios = " | ".join(fmt_ratio(value, 3) for value in twin_ratios(m, twin).values())
        lines.append(head + f" `{m['single_style']}` | `{twin.get('recipe', '?')}` | {twin['steps']} | "
                     f"{fmt(twin['trained']['style'])} | {ratios} |")
    return lines


def artifact_flags(found: dict) -> str:
    """The artifact checks that flag one artifacts record (an entry's ``["artifacts"]["trained"]`` or another
    variant), e.g. "checkerboard, border", or "none"."""
    return ", ".join(kind for kind in ("checkerboard", "border") if found[f"{kind}_flag"]) or "none"


def fmt_ratio(value: float | None, places: int) -> str:
    return "–" if value is None else f"{value:.{places}f}"


def twin_table(models: dict) -> list[str]:
    """docs/benchmarks.md's table of each multi-style model's styles against their single-style twins: losses per
    unit weight (see :func:`twin_ratios`), the judge's, artifact flags, and the means."""
    lines = ["| style | style loss per unit weight, single → multi | style ratio | content ratio | "
             "judge style ratio | judge content ratio | artifact flags (single / multi) |",
             "|---|---|---|---|---|---|---|"]
    columns: list[list[float | None]] = [[], [], [], []]
    flagged = [0, 0]
    for m in models.values():
        twin = models.get(m.get("single_style", ""))
        if twin is None:
            continue
        ratios = list(twin_ratios(m, twin).values())
        for column, value in zip(columns, ratios, strict=True):
            column.append(value)
        per_unit = [e["trained"]["style"] / e["loss"]["style_weight"] for e in (twin, m)]
        twin_flags, own_flags = (artifact_flags(e["artifacts"]["trained"]) for e in (twin, m))
        flagged = [flagged[0] + (twin_flags != "none"), flagged[1] + (own_flags != "none")]
        lines.append(f"| {m['style']} | {per_unit[0]:.3g} → {per_unit[1]:.3g} | "
                     + " | ".join(fmt_ratio(value, 2) for value in ratios) + f" | {twin_flags} / {own_flags} |")
    means = [fmt(None) if None in column or not column else f"{mean(column):.2f}" for column in columns]
    lines.append(f"| mean | – | {' | '.join(means)} | {flagged[0]} / {flagged[1]} flagged |")
    return lines


def video_section(report: dict) -> list[str]:
    """The flicker table: how much each model's texture changes between video frames that barely differ."""
    measured = {name: m["flicker"] for name, m in report["models"].items() if "flicker" in m}
    if not measured:
        return []
    clips = report["flicker_clips"]  # written with every flicker entry
    width, height = clips["size"]
    margin = next(iter(measured.values()))["margin"]
    lines = [
        "",
        "## Video flicker",
        "",
        ("Plain per-frame flicker: the output's mean frame-to-frame change divided by the input's (1 = the "
         "stylized video changes exactly as much as the source; above 1 is texture the network redraws), on the "
         f"synthetic clips of `fastnst.bench.flicker` ({width}×{height}, {clips['frames']} frames "
         f"of `samples/{clips['photo']}` with sensor noise): a **static** view, a **pan** of "
         f"{PAN_PX} px per frame and a dark **object** crossing the view. No remedy (`--flicker-reduction 0`); "
         f"**through the margin** is what `fastnst stylize in.mp4` gives ({margin} px mirrored around every "
         "frame), **bare** the network alone. Models trained with the stability loss "
         "([training.md](training.md#stable-video-the-stability-loss)) show its weight."),
        "",
        "| model | stability loss | static | pan | object | bare: static | bare: pan | bare: object |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, f in measured.items():
        weight = report["models"][name].get("stability_weight")
        lines.append(f"| `{name}` | {num(weight) if weight else '–'} | {flicker_cells(f)} |")
    return lines


def markdown(report: dict) -> str:
    """docs/quality.md: the tables plus how to read them; every number comes from ``report``."""
    models = report["models"]
    n = len(report["photos"])
    lines = [
        "# Model quality, measured",
        "",
        "<!-- generated by scripts/evaluate_models.py; do not edit by hand -->",
        "",
        (f"Every shipped model (`models/<name>/`) measured on the **{n} photos the trainer held out** (every 10th of "
        "the sorted `../shared/data/photos`, never seen in training), resized so the shorter side is "
        f"{report['eval_short_side']} px, with the **trainer's own loss definitions** "
        "(`fastnst.perceptual.losses` on "
        "`fastnst.perceptual.vgg`, VGG16 ImageNet weights in fp32) and the model's own config "
        "(content layer, style layers, "
        "weights, style image at `style_size`). Losses are weighted as in the training log "
        "(content_weight·MSE of relu2_2 features; style_weight·Σ over relu1_2…relu4_3 of the MSE between Gram "
        "matrices normalised by C·H·W), averaged over the photos; outputs are clamped to [0, 1] as users get them."),
        "",
        ("Columns: **trained** is the shipped model; **tenth** is the same recipe (same config, 256² crops, batch 8, "
        "bf16, lr 1e-3 cosine, same data and seed) stopped after a tenth of the steps (76 instead of 762); "
        "**untrained** is the network as the trainer initialises it (same seed), i.e. step 0 — its output is "
        "almost black; **photo** is the photo itself, unstylized (content loss 0 by definition; its style loss is "
        "how far a plain photo is from the painting); **other photo** is the next held-out photo resized to the "
        "same size: the content loss of an image that shares nothing with the photo."),
        *(["", ("Styles learned again or added by a later run from a trained network (`fastnst train --base`): "
                + ", ".join(f"`{name}`" for name, m in models.items() if m.get("from_base"))
                + ". That run learned only their norm rows, starting from the mean of the rows it kept, so their "
                "**untrained** column is that start, an already stylized network, and their recipe is that run's "
                "(its steps; `custom`: not one of `scripts/train_zoo.py`'s recipes).")]
          if any(m.get("from_base") for m in models.values()) else []),
        "",
        "## Style loss (lower = closer to the painting's Gram statistics)",
        "",
        "| model | recipe, steps | trained | tenth | untrained | photo | trained / untrained | trained / tenth |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in models.items():
        tenth = m.get("tenth", {})
        lines.append(
            f"| `{name}` | {m['recipe']}, {m['steps']} | {fmt(m['trained']['style'])} | {fmt(tenth.get('style'))} | "
            f"{fmt(m['untrained']['style'])} | {fmt(m['photo']['style'])} | "
            f"{m['trained']['style'] / m['untrained']['style']:.3f} | "
            f"{fmt_ratio(m['trained']['style'] / tenth['style'] if tenth else None, 2)} |")
    lines += [
        "",
        "## Content loss (lower = closer to the photo's relu2_2 features)",
        "",
        "| model | trained | tenth | untrained | other photo | trained / other photo |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in models.items():
        tenth = m.get("tenth", {})
        lines.append(f"| `{name}` | {fmt(m['trained']['content'])} | {fmt(tenth.get('content'))} | "
                     f"{fmt(m['untrained']['content'])} | {fmt(m['other_photo']['content'])} | "
                     f"{m['trained']['content'] / m['other_photo']['content']:.2f} |")
    judged = {name: m["judge"] for name, m in models.items() if "judge" in m}
    if judged:
        lines += [
            "",
            "## Independent judge (Gatys et al. on the Caffe VGG19)",
            "",
            ("Losses neither the trainer nor the pytorch/examples recipe optimises (`GatysJudge` in "
             "`fastnst.training.quality`): content = MSE of relu4_2 features against the photo's; style = Σ over "
             "relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 of the MSE between Gram matrices (normalised by C·H·W) of "
             "the output and of the painting (longer side 512 px); unweighted, so compare within a row. Measured "
             f"{min(j.get('measured_at') or report['measured_at'] for j in judged.values())[:10]}."),
            "",
            "| model | style: trained | style: photo | trained / photo | content: trained |",
            "|---|---|---|---|---|",
        ]
        for name, j in judged.items():
            lines.append(f"| `{name}` | {fmt(j['trained']['style'])} | {fmt(j['photo']['style'])} | "
                         f"{j['trained']['style'] / j['photo']['style']:.3f} | {fmt(j['trained']['content'])} |")
    lines += multistyle_section(models)
    lines += [
        "",
        "## Total (content + style, the quantity training minimises)",
        "",
        "| model | trained | tenth | untrained | final training batch (model.json) |",
        "|---|---|---|---|---|",
    ]
    for name, m in models.items():
        tenth = m.get("tenth", {})
        def total(d):
            return d["content"] + d["style"] if d else None
        final = (m.get("final_losses") or {}).get("total")
        lines.append(f"| `{name}` | {fmt(total(m['trained']))} | {fmt(total(tenth))} | "
                     f"{fmt(total(m['untrained']))} | {fmt(final)} |")
    t = report["thresholds"]
    lines += [
        "",
        "## Artifacts",
        "",
        ("**Checkerboard.** The share of the output's fine detail (luma minus a σ = 2 px blur) that is a pattern "
         "repeating every 2 or 4 px at a fixed phase of the pixel grid, the signature of stride-2 down- and "
         "upsampling (Odena et al. 2016; the network is shift-equivariant only by multiples of 4 px). Averaging the "
         "detail over all 2×2 (4×4) cells cancels image content and keeps such a pattern: 0 for a clean image, 1 "
         "for a pure checkerboard (a ±0.03 checkerboard added to a photo scores 0.35). The input photos' own score "
         "is in brackets; the period-4 pattern's amplitude is given in 8-bit grey levels (RMS). Flagged when the "
         f"share is above {t['checkerboard']} and the amplitude at least {t['checkerboard_levels']} levels: in "
         "zoomed outputs, patterns of 2.1–5 levels were visible (a regular 4-px chain or staircase texture in flat "
         "areas such as sky), one of 0.6 levels was not."),
        "",
        (f"**Border.** A frame of 1/{round(1 / t['border_band_fraction'])} of the shorter side "
         f"({round(report['eval_short_side'] * t['border_band_fraction'])} px here) against the interior: mean "
         "luma offset and detail (RMS) ratio, each relative to the same statistic of the input photo (photos have "
         "their own, e.g. sky at the top). Flagged when the frame is more than "
         f"{t['border_luma']} darker or brighter, or holds over {t['border_detail']}× (under "
         f"1/{t['border_detail']}) the photo's relative detail."),
        "",
        ("| model | checkerboard p2 / p4 (photo) | p4 amplitude (levels) | border luma shift | border detail ratio "
         "| flags |"),
        "|---|---|---|---|---|---|",
    ]
    for name, m in models.items():
        for variant, a in m["artifacts"].items():
            label = f"`{name}`" + ("" if variant == "trained" else f" ({variant})")
            lines.append(f"| {label} | {a['checkerboard_2']:.3f} / {a['checkerboard_4']:.3f} "
                         f"({a['photo_checkerboard_2']:.3f} / {a['photo_checkerboard_4']:.3f}) | "
                         f"{a['grid_levels_4']:.1f} | "
                         f"{a['border_luma_shift']:+.3f} | {a['border_detail_ratio']:.2f} | "
                         f"{artifact_flags(a)} |")
    bins = [f"{lo}–{hi} px" if hi < 1 << 20 else f"≥ {lo} px" for lo, hi in EDGE_BINS]
    lines += [
        "",
        ("**Edge profile.** Mean luma of the output minus the photo's (0–1 scale), by distance to the nearest "
         "edge, averaged over the photos: a constant row is a global colour change, a row that falls towards "
         "the edge a dark frame (vignette)."),
        "",
        "| model | " + " | ".join(bins) + " |",
        "|---|" + "---|" * len(bins),
    ]
    for name, m in models.items():
        for variant, a in m["artifacts"].items():
            label = f"`{name}`" + ("" if variant == "trained" else f" ({variant})")
            lines.append(f"| {label} | " + " | ".join(f"{v:+.3f}" for v in a["edge_profile"]) + " |")
    lines += video_section(report)
    lines += ["", "## Summary", "", *summary(models), ""]
    if any(a["checkerboard_flag"] or a["border_flag"] for m in models.values() for a in m["artifacts"].values()):
        lines += [("What was tried against the flagged artifacts, what fixed which, and what is left: "
                  "[recipes.md](recipes.md#artifacts-what-was-measured-what-was-tried-what-ships)."), ""]
    times = sorted({m.get("measured_at") or report["measured_at"] for m in models.values()})
    loss_times = times[0] if len(times) == 1 else f"{times[0]} to {times[-1]}"
    lines += [
        "",
        (f"Losses measured {loss_times}, artifacts {report['measured_at']}, on {report['cpu']} "
         f"({report['cpu_count']} cores, shared with other jobs; torch {report['torch']}); the last run took "
         f"{report['seconds']} s. Per-photo numbers in `benchmarks/results/model_quality.json`. "
        "Reproduce: `python scripts/evaluate_models.py models/* --tenth-dir runs/tenth_models` (the tenth-steps "
        "models are not shipped; `docs/recipes.md` says how they were trained)."),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path, help="model folders (default: models/*)")
    parser.add_argument("--tenth-dir", type=Path, default=REPO / "runs" / "tenth_models",
                        help="folder of same-recipe models trained for a tenth of the steps, by style name")
    parser.add_argument("--data-dir", type=Path, default=SHARED / "photos", help="the training photo folder")
    parser.add_argument("--vgg-weights", type=Path, default=SHARED / "vgg" / "vgg16_features.pth")
    parser.add_argument("--judge-weights", type=Path, default=SHARED / "vgg" / "vgg19_features_caffe.pth",
                        help="Caffe VGG19 weights for the independent Gatys judge (skipped when absent)")
    parser.add_argument("--short-side", type=int, default=EVAL_SHORT_SIDE)
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "model_quality.json")
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "quality.md")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--from-json", action="store_true", help="only rewrite the Markdown from --json")
    parser.add_argument("--twin-table", action="store_true",
                        help="print docs/benchmarks.md's multi-style vs single-style table from --json and stop")
    parser.add_argument("--update", action="store_true",
                        help="keep the entries of the existing --json whose models are unchanged")
    parser.add_argument("--keep-others", action="store_true",
                        help="with --update, also keep the --json's entries of models not given (e.g. twins whose "
                             "folders are gone); a re-measured multi-style style keeps its earlier twin")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.twin_table:
        print("\n".join(twin_table(json.loads(args.json.read_text())["models"])))
        return 0
    if args.from_json:
        report = json.loads(args.json.read_text())
    else:
        dirs = args.models or sorted(p.parent for p in (REPO / "models").glob("*/model.safetensors"))
        previous = json.loads(args.json.read_text()) if args.update and args.json.is_file() else None
        report = evaluate(dirs, args.tenth_dir, args.data_dir,
                          args.vgg_weights if args.vgg_weights.is_file() else None, args.short_side, previous,
                          args.judge_weights if args.judge_weights.is_file() else None, args.keep_others)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(markdown(report))
    print(f"wrote {args.json} and {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
