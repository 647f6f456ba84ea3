#!/usr/bin/env python3
"""Screen trained recipe variants for artifacts and stylization, on a GPU, and pick one per style.

Meant for the device call that trains several recipe variants of a style side by side (model folders named
``<style>__<variant>``): each model stylizes the held-out photos, and the script reports the checks of
``scripts/evaluate_models.py`` that decide a recipe (the 4-px grid and border statistics of fastnst.training.quality,
and the crop-vs-whole dark edge of ``benchmarks/border_margin.py``) plus the held-out style and content loss, all
variants measured with the style's *shipped* loss weights (so a variant trained with other layer weights is
still compared in the same units). Then, per style, it picks the variant without a grid flag and with the lowest
style loss (the lowest grid amplitude when every variant is flagged) and writes ``<style> <variant>`` lines.

    python benchmarks/screen_models.py runs/models/* --data-dir DIR --vgg-weights FILE --choice choice.txt

The full measurement of a shipped model is still ``scripts/evaluate_models.py``; this is the quick screen.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "benchmarks"), str(REPO / "scripts")]
from border_margin import edge_effect
from evaluate_models import measure, stylize

from fastnst.model.files import ModelInfo, load_model
from fastnst.training.quality import LossMeter, artifact_report, config_of, heldout_photos, load_eval_image, make_vgg

SHIPPED_LAYER_WEIGHTS = (1.0, 1.0, 1.0, 1.0)


def style_of(model_dir: Path) -> tuple[str, str]:
    """``great_wave__tv3e6`` → (``great_wave``, ``tv3e6``); a plain name is its own style's ``base``."""
    style, _, variant = model_dir.name.partition("__")
    return style, variant or "base"


@torch.no_grad()
def screen(model: torch.nn.Module, info: ModelInfo, photos: list[torch.Tensor], features: list[dict],
           edge_photos: list[torch.Tensor], vgg) -> dict:
    """One model's screen; ``features`` are the photos' VGG features (every layer the losses use), computed once."""
    config = config_of(info.metadata)
    reference = dataclasses.replace(config, style_layer_weights=SHIPPED_LAYER_WEIGHTS[: len(config.style_layers)])
    outputs = stylize(model, photos)
    losses = measure(outputs, features, LossMeter(reference, vgg))
    report = artifact_report([o.cpu() for o in outputs], [p.cpu() for p in photos])
    edge = edge_effect(model, edge_photos, 0)["signed"]
    return {
        "steps": info.metadata.get("steps"),
        "tv_weight": config.tv_weight, "style_layer_weights": list(config.style_layer_weights),
        "style": losses["style"], "content": losses["content"],
        "grid_levels_4": report.grid_levels_4, "checkerboard_4": report.checkerboard_4,
        "checkerboard_flag": report.checkerboard, "border_luma_shift": report.border_luma_shift,
        "crop_edge_luma_0_2px": edge[0], "crop_edge_luma_16_32px": edge[4],
        "final_losses": info.metadata.get("final_losses"),
    }


def choose(results: dict[str, dict]) -> dict[str, str]:
    """Per style: the unflagged variant with the lowest style loss, else the one with the faintest grid."""
    by_style: dict[str, list[tuple[str, dict]]] = {}
    for name, entry in results.items():
        style, variant = style_of(Path(name))
        by_style.setdefault(style, []).append((variant, entry))
    picks = {}
    for style, entries in by_style.items():
        clean = [e for e in entries if not e[1]["checkerboard_flag"]]
        best = min(clean, key=lambda e: e[1]["style"]) if clean else min(entries, key=lambda e: e[1]["grid_levels_4"])
        picks[style] = best[0]
    return picks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", type=Path, help="model folders (<style>__<variant> or <style>)")
    parser.add_argument("--data-dir", type=Path, required=True, help="the training photo folder")
    parser.add_argument("--vgg-weights", type=Path)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path, help="write every measurement here")
    parser.add_argument("--choice", type=Path, help="write the picked variant per style here")
    args = parser.parse_args()
    dirs = [d for d in args.models if (d / "model.safetensors").is_file()]
    if not dirs:
        print("no model folders with model.safetensors", file=sys.stderr)
        return 1
    device = torch.device(args.device)
    paths = heldout_photos(args.data_dir, 10)
    photos = [load_eval_image(p).to(device) for p in paths]
    edge_photos = [load_eval_image(p, 384).to(device) for p in paths]
    loaded = {d: load_model(d, device=device) for d in sorted(dirs)}
    vgg = make_vgg([config_of(info.metadata) for _, info in loaded.values()], args.vgg_weights).to(device).eval()
    with torch.no_grad():
        features = [vgg(photo) for photo in photos]
    results = {}
    print(f"{'model':34s} {'steps':>5s} {'style':>9s} {'content':>9s} {'grid lv':>7s} {'p4':>6s} "
          f"{'border':>7s} {'edge0-2':>7s} {'edge16-32':>9s}", flush=True)
    for model_dir, (model, info) in loaded.items():
        t0 = time.perf_counter()
        r = screen(model.eval(), info, photos, features, edge_photos, vgg)
        results[model_dir.name] = r
        print(f"{model_dir.name:34s} {r['steps']!s:>5s} {r['style']:9.4g} {r['content']:9.4g} "
              f"{r['grid_levels_4']:7.2f} {r['checkerboard_4']:6.3f} {r['border_luma_shift']:+7.3f} "
              f"{r['crop_edge_luma_0_2px']:+7.3f} {r['crop_edge_luma_16_32px']:+9.3f}"
              f"{'  GRID' if r['checkerboard_flag'] else ''}  ({time.perf_counter() - t0:.1f} s)", flush=True)
    picks = choose({k: v for k, v in results.items() if "__" in k})
    print("picked: " + ", ".join(f"{s} → {v}" for s, v in sorted(picks.items())), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"photos": len(photos), "device": str(device), "results": results,
                                         "picked": picks}, indent=1))
    if args.choice:
        args.choice.write_text("".join(f"{s} {v}\n" for s, v in sorted(picks.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
