#!/usr/bin/env python3
"""How much of each shipped model's dark edge a mirrored margin removes, measured without the photo's content.

For every held-out photo (shorter side 384 px) the model stylizes the whole photo and, separately, its centre crop
(64 px cut from every side). Pixels near the crop's edge were deep inside the whole image, so the crop result
minus the whole result at the same pixels is the pure effect of being near the network's input edge. The mean
luma difference (signed, and absolute) is reported by distance to the crop's edge, for each margin
(fastnst.runtime.margin: the crop mirrored outward before the network, cropped after). Writes
``benchmarks/results/border_margin.json``.

    python benchmarks/border_margin.py                          # all models in models/, margins 0 16 32 64
    python benchmarks/border_margin.py --models starry_night --margins 0 32
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from fastnst.model.files import load_model
from fastnst.runtime.margin import with_margin
from fastnst.training.quality import EDGE_BINS, heldout_photos, load_eval_image, luminance

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FASTNST_SHARED_DATA", REPO.parent / "shared" / "data"))
CUT = 64  # px removed from each side of the photo to make the crop


def edge_distance(height: int, width: int) -> torch.Tensor:
    """[H, W] distance of each pixel to the nearest edge."""
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.minimum(torch.minimum(yy, height - 1 - yy), torch.minimum(xx, width - 1 - xx))


def edge_effect(model: torch.nn.Module, photos: list[torch.Tensor], margin: int) -> dict[str, list[float]]:
    """Mean (crop result − whole result) luma per EDGE_BINS band, signed and absolute, over ``photos``."""
    def run(batch: torch.Tensor) -> torch.Tensor:
        return model(batch).clamp(0, 1)

    stylize = with_margin(run, margin)
    signed = [0.0] * len(EDGE_BINS)
    absolute = [0.0] * len(EDGE_BINS)
    with torch.inference_mode():
        for photo in photos:
            whole = run(photo)[..., CUT:-CUT, CUT:-CUT]
            crop = stylize(photo[..., CUT:-CUT, CUT:-CUT])
            diff = luminance(crop) - luminance(whole)
            distance = edge_distance(*diff.shape)
            for index, (low, high) in enumerate(EDGE_BINS):
                band = diff[(distance >= low) & (distance < high)]
                signed[index] += float(band.mean()) / len(photos)
                absolute[index] += float(band.abs().mean()) / len(photos)
    return {"signed": signed, "absolute": absolute}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", help="model names under models/ (default: all)")
    parser.add_argument("--margins", nargs="*", type=int, default=[0, 16, 32, 64])
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "border_margin.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.models or sorted(p.name for p in (REPO / "models").iterdir() if (p / "model.json").is_file())
    photos = [load_eval_image(path, 384) for path in heldout_photos(SHARED / "photos", 10)]
    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    for name in names:
        model = load_model(REPO / "models" / name)[0].eval()
        results[name] = {}
        for margin in args.margins:
            effect = edge_effect(model, photos, margin)
            results[name][str(margin)] = effect
            print(f"{name:22s} margin {margin:3d}: signed " + " ".join(f"{v:+.3f}" for v in effect["signed"])
                  + " | abs " + " ".join(f"{v:.3f}" for v in effect["absolute"]), flush=True)
    info = {"what": __doc__.split("\n\n")[1].replace("\n", " "), "photos": len(photos), "cut_px": CUT,
            "bands_px": [list(band) for band in EDGE_BINS], "results": results}
    Path(args.out).write_text(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
