"""A tiny two-style model and the single-style networks it is equivalent to, for the multi-style tests."""

from __future__ import annotations

from pathlib import Path

import torch

from fastnst.model.files import save_model
from fastnst.model.transformer import TransformerNet, TransformerSpec, bake, extend

STYLES = ["wave", "night"]


def build_zoo(root: Path) -> Path:
    """``root/multi`` (styles wave, night) beside ``wave``, ``night`` and ``mix73`` (70 % wave): single-style
    models with the same shared weights and the corresponding norm rows."""
    torch.manual_seed(3)
    wave = TransformerNet(TransformerSpec(width=8, residual_blocks=1))
    multi = extend(wave, 1)
    with torch.no_grad():
        for key in multi.style_keys():
            multi.state_dict()[key][1].normal_(1.0 if key.endswith("weight") else 0.0, 0.4)
    save_model(multi, root / "multi", {"style_name": "+".join(STYLES),
                                       "styles": [{"name": name, "image": f"{name}.jpg"} for name in STYLES]})
    save_model(bake(multi, [1, 0]), root / "wave", {"style_name": "wave"})
    save_model(bake(multi, [0, 1]), root / "night", {"style_name": "night"})
    save_model(bake(multi, [0.7, 0.3]), root / "mix73", {"style_name": "mix73"})
    return root
