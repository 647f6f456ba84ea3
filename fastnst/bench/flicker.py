"""Synthetic video clips made from one photo, and a model's plain per-frame flicker on them.

The clips need no video files, so the flicker benchmarks, the stability benchmark and the model cards all measure
the same frames:

* ``static``: one view, sensor noise only (σ = 2/255 per frame);
* ``pan``: the camera pans ``PAN_PX`` px per frame across the photo, plus the same noise;
* ``object``: a static view with a dark object moving across it (the statistics change with it), plus noise.

Flicker is fastnst.runtime.video.flicker_ratio: the output's mean frame-to-frame change ÷ the input's.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from fastnst.model.transformer import TransformerNet
from fastnst.runtime.margin import DEFAULT_MARGIN, with_margin
from fastnst.runtime.video import flicker_ratio, model_stylizer
from fastnst.utils.images import image_to_tensor

CLIP_NAMES = ("static", "pan", "object")
CLIP_SIZE = (256, 192)  # width, height
CLIP_FRAMES = 24
PAN_PX = 2  # the pan's camera motion per frame
FRAME_BATCH = 4  # frames per network call, as `fastnst stylize in.mp4` runs them
NOISE_LEVEL = 2 / 255


def clip_source(photo: Path, width: int, height: int, frames: int) -> tuple[torch.Tensor, int]:
    """The photo resized to a ``width`` × ``height`` view plus the margin the pan travels over, and that margin:
    every clip is cut from this picture."""
    margin = PAN_PX * frames // 2
    with Image.open(photo) as image:
        return image_to_tensor(image.convert("RGB").resize((width + 2 * margin, height + 2 * margin))), margin


def synthetic_clips(photo: Path, width: int = CLIP_SIZE[0], height: int = CLIP_SIZE[1],
                    frames: int = CLIP_FRAMES) -> dict[str, torch.Tensor]:
    """``static``, ``pan`` and ``object`` clips, each [T, 3, H, W] in [0, 1], with seeded noise (the module doc)."""
    gen = torch.Generator().manual_seed(0)
    big, margin = clip_source(photo, width, height, frames)

    def noise() -> torch.Tensor:
        return torch.randn(frames, 3, height, width, generator=gen) * NOISE_LEVEL

    view = big[..., margin : margin + height, margin : margin + width]
    static = view.repeat(frames, 1, 1, 1)
    pan = torch.cat([big[..., margin : margin + height, PAN_PX * t : PAN_PX * t + width] for t in range(frames)])
    moving = static.clone()
    side = height // 4
    for t in range(frames):
        x = round(t * (width - side) / max(1, frames - 1))
        moving[t, :, height // 3 : height // 3 + side, x : x + side] *= 0.15
    return {name: (clip + noise()).clamp(0, 1) for name, clip in zip(CLIP_NAMES, (static, pan, moving), strict=True)}


@torch.no_grad()
def plain_flicker(model: TransformerNet, clips: dict[str, torch.Tensor],
                  margin: int = DEFAULT_MARGIN) -> dict[str, float]:
    """Each clip's flicker ratio with no remedy, ``margin`` px mirrored around every frame (0: the bare network;
    the default is what ``fastnst stylize in.mp4`` applies), frames in batches of ``FRAME_BATCH``."""
    ratios: dict[str, float] = {}
    with model_stylizer(model) as bare:
        stylize = with_margin(bare, margin)
        for name, clip in clips.items():
            styled = torch.cat([stylize(clip[i : i + FRAME_BATCH]) for i in range(0, clip.shape[0], FRAME_BATCH)])
            ratios[name] = round(flicker_ratio(clip, styled), 3)
    return ratios
