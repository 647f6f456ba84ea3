"""A mirrored margin around each image, stylized and cropped away, so no result shows a network's edge effect.

A trained network may treat the pixels next to its input's edge differently (it learns from crops whose edges
VGG sees zero-padded); ``starry_night`` darkens them into a visible frame. That belongs to the edge of the
network's input, not to the image: mirroring the image outward by a margin before the network and cropping the
margin off afterwards moves it out of the result. Measured on the 17 held-out photos
(``benchmarks/border_margin.py``): the same pixels stylized at an input edge vs inside a larger image differ by
−0.066 luma in the outermost 2 px for ``starry_night`` without a margin, −0.007 with 16 px, and +0.001 with 32
px, against −0.012 in the interior (its first model, before the recipe change: −0.104, −0.021, −0.004).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from fastnst.utils.defaults import DEFAULT_MARGIN as DEFAULT_MARGIN  # the runtime's default, kept torch-free


def margin_for(height: int, width: int, margin: int) -> int:
    """The margin an image can take: reflection needs fewer pixels than the side it mirrors."""
    if margin < 0:
        raise ValueError(f"margin must be 0 or more pixels, got {margin}")
    return max(0, min(margin, height - 1, width - 1))


def add_margin(batch: torch.Tensor, margin: int) -> tuple[torch.Tensor, int]:
    """[N, C, H, W] mirrored outward by ``margin`` px per side (less for tiny images); returns the margin used."""
    used = margin_for(batch.shape[-2], batch.shape[-1], margin)
    if not used:
        return batch, 0
    return F.pad(batch, (used,) * 4, mode="reflect"), used


def crop_margin(batch: torch.Tensor, margin: int) -> torch.Tensor:
    """Undo :func:`add_margin` on a result of the padded size."""
    if not margin:
        return batch
    return batch[..., margin:-margin, margin:-margin]


def with_margin(stylize: Callable[[torch.Tensor], torch.Tensor],
                margin: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """A batch stylizer that runs ``stylize`` on the mirrored batch and returns the input's size."""
    if margin <= 0:
        return stylize

    def run(batch: torch.Tensor) -> torch.Tensor:
        padded, used = add_margin(batch, margin)
        return crop_margin(stylize(padded), used)

    return run


def add_image_margin(image: Image.Image, margin: int) -> tuple[Image.Image, int]:
    """The PIL form of :func:`add_margin`, for the tiled path (which reads the image, not a tensor)."""
    used = margin_for(image.height, image.width, margin)
    if not used:
        return image, 0
    pixels = np.pad(np.asarray(image.convert("RGB")), ((used, used), (used, used), (0, 0)), mode="reflect")
    return Image.fromarray(pixels), used


def crop_image_margin(image: Image.Image, margin: int) -> Image.Image:
    """Undo :func:`add_image_margin`."""
    if not margin:
        return image
    return image.crop((margin, margin, image.width - margin, image.height - margin))
