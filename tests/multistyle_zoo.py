"""A tiny two-style model and the single-style networks it is equivalent to, for the multi-style tests."""

from __future__ import annotations

from pathlib import Path

import torch

from fastnst.model.files import save_model
from fastnst.model.transformer import TransformerNet, TransformerSpec, bake, extend
from fastnst.training.config import load_config
from fastnst.training.trainer import model_metadata

STYLES = ["wave", "night"]


def two_style_network(seed: int, spread: float) -> TransformerNet:
    """A small seeded network whose second style's norm rows are drawn around 1 (scale) and 0 (shift)."""
    torch.manual_seed(seed)
    multi = extend(TransformerNet(TransformerSpec(width=8, residual_blocks=1)), 1)
    with torch.no_grad():
        for key in sorted(multi.style_keys()):  # a set: a fixed order keeps the draws seeded
            multi.state_dict()[key][1].normal_(1.0 if key.endswith("weight") else 0.0, spread)
    return multi


def build_zoo(root: Path) -> Path:
    """``root/multi`` (styles wave, night) beside ``wave``, ``night`` and ``mix73`` (70 % wave): single-style
    models with the same shared weights and the corresponding norm rows."""
    multi = two_style_network(seed=3, spread=0.4)
    save_model(multi, root / "multi", {"style_name": "+".join(STYLES),
                                       "styles": [{"name": name, "image": f"{name}.jpg"} for name in STYLES]})
    save_model(bake(multi, [1, 0]), root / "wave", {"style_name": "wave"})
    save_model(bake(multi, [0, 1]), root / "night", {"style_name": "night"})
    save_model(bake(multi, [0.7, 0.3]), root / "mix73", {"style_name": "mix73"})
    return root


PAINTINGS = {"night": "van_gogh_starry_night.jpg", "wave": "hokusai_great_wave.jpg"}
SINGLE_PAINTING = "van_gogh_night_cafe.jpg"


def write_credited_models(root: Path, shared: Path) -> tuple[Path, Path]:
    """``root/duo`` (styles night, wave of real paintings, with different norm rows, full metadata as the trainer
    writes it) and ``root/cafe`` (one style)."""
    duo = two_style_network(seed=5, spread=0.5)
    single = bake(duo, [1, 0])
    photos = str(shared / "photos")
    config = load_config(None, {"style_images": [str(shared / "styles" / f) for f in PAINTINGS.values()],
                                "style_names": list(PAINTINGS), "data_dir": photos, "holdout_every": 10})
    styles = [{"name": name, "image": image} for name, image in PAINTINGS.items()]
    run = {"hardware": "cpu × 1", "precision": "float32", "torch": torch.__version__}
    save_model(duo, root / "duo", model_metadata(config, steps=3, losses={}, seconds=1.0, run_info=run,
                                                 skipped_files=0, styles=styles))
    config = load_config(None, {"style_image": str(shared / "styles" / SINGLE_PAINTING), "data_dir": photos,
                                "holdout_every": 10})
    save_model(single, root / "cafe", model_metadata(config, steps=3, losses={}, seconds=1.0, run_info=run,
                                                     skipped_files=0))
    return root / "duo", root / "cafe"
