"""Output controls: style strength (blend with the original) and colour preservation.

Colour preservation follows Gatys, Bethge, Hertzmann, Shechtman, "Preserving Color in Neural Artistic Style
Transfer" (2016), applied after the feed-forward network instead of inside an optimisation:

* ``luminance``: keep the stylized image's luma and the original's chroma (YCbCr, ITU-R BT.601 full range, as in
  JPEG). Brush strokes and texture come through, the photo's colours stay.
* ``histogram``: match each RGB channel's histogram of the stylized image to the original's (exact CDF matching
  on 256 levels). Keeps the painting's local colour variation but the photo's overall palette.

Everything works on float [N, 3, H, W] tensors in [0, 1]; histogram matching also comes as separate
"count, build a lookup table, apply it" steps so tiled and streamed callers can gather counts over a whole image
that never sits in memory as floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch

from fastnst.utils.errors import FastNSTError

PreserveColor = Literal["none", "luminance", "histogram"]
PRESERVE_COLOR_CHOICES: tuple[str, ...] = get_args(PreserveColor)
LEVELS = 256  # histogram bins: the 8-bit levels results are saved with

# BT.601 full-range RGB → YCbCr (JPEG's); only its luma row is used, and the inverse's luma column is all ones.
_RGB_TO_YCC = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


@dataclass(frozen=True)
class Controls:
    """How the network's output is mixed with the original photo."""

    strength: float = 1.0  # 1 = fully stylized, 0 = the original; a linear blend in between
    preserve_color: PreserveColor = "none"  # keep the original's colours: "luminance" or "histogram"

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise FastNSTError(f"strength must be between 0 and 1, got {self.strength}")
        if self.preserve_color not in PRESERVE_COLOR_CHOICES:
            raise FastNSTError(
                f"unknown colour preservation {self.preserve_color!r}; choose one of "
                f"{', '.join(PRESERVE_COLOR_CHOICES)}"
            )

    @property
    def is_identity(self) -> bool:
        """True when the output is the network's output unchanged."""
        return self.strength == 1.0 and self.preserve_color == "none"


def blend(stylized: torch.Tensor, original: torch.Tensor, strength: float) -> torch.Tensor:
    """``strength * stylized + (1 - strength) * original`` (a new tensor)."""
    if strength == 1.0:
        return stylized.clone()
    return torch.lerp(original, stylized, strength)


def transfer_luminance(stylized: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Luma (Y) of ``stylized`` with the chroma (Cb, Cr) of ``original``, clamped to [0, 1].

    YCbCr → RGB has coefficient 1 on Y in every channel, so swapping the luma is adding the luma difference to each
    channel of the original: one weighted sum instead of two colour-space conversions.
    """
    luma = _RGB_TO_YCC[0].to(stylized).view(1, 3, 1, 1)
    difference = ((stylized - original) * luma).sum(dim=1, keepdim=True)  # [N, 1, H, W]
    return (original + difference).clamp_(0.0, 1.0)


def channel_histograms(image: torch.Tensor) -> torch.Tensor:
    """Counts of the 8-bit levels of each channel: int64 [3, 256]; add them up over tiles, strips or frames."""
    levels = image.detach().float().clamp(0, 1).mul(LEVELS - 1).round_().long()  # [N, 3, H, W]
    offsets = torch.arange(3, device=levels.device).view(1, 3, 1, 1) * LEVELS
    return torch.bincount((levels + offsets).flatten(), minlength=3 * LEVELS).view(3, LEVELS).cpu()


def histogram_lut(source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-channel level mapping [3, 256] (float, 0..1) that gives ``source`` counts the ``reference`` histogram.

    Classic CDF matching: each source level goes to the first reference level whose cumulative share reaches the
    source level's (taken at the middle of its bin, so a level is not pushed up by its own mass).
    """
    src = source.double()
    ref = reference.double()
    src_cdf = (src.cumsum(1) - src / 2) / src.sum(1, keepdim=True).clamp_min(1)
    ref_cdf = ref.cumsum(1) / ref.sum(1, keepdim=True).clamp_min(1)
    index = torch.searchsorted(ref_cdf.contiguous(), src_cdf.contiguous()).clamp_(0, LEVELS - 1)
    return index.float() / (LEVELS - 1)


def apply_lut(image: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """Map each channel's 8-bit level through ``lut`` [3, 256]; returns a new float tensor in [0, 1]."""
    levels = image.float().clamp(0, 1).mul(LEVELS - 1).round_().long()
    lut = lut.to(image.device)
    return torch.stack([lut[c][levels[:, c]] for c in range(3)], dim=1)


def match_histograms(stylized: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """``stylized`` with each RGB channel's histogram matched to ``original``'s (over the whole batch)."""
    return apply_lut(stylized, histogram_lut(channel_histograms(stylized), channel_histograms(original)))


def apply_controls(stylized: torch.Tensor, original: torch.Tensor, controls: Controls) -> torch.Tensor:
    """Colour preservation, then the strength blend; both tensors [N, 3, H, W] in [0, 1] of the same shape.

    The order matters only for histogram matching: matching first keeps the blend a plain mix of two images.
    """
    if stylized.shape != original.shape:
        raise ValueError(f"stylized {list(stylized.shape)} and original {list(original.shape)} differ in shape")
    out = stylized
    if controls.preserve_color == "luminance":
        out = transfer_luminance(out, original)
    elif controls.preserve_color == "histogram":
        out = match_histograms(out, original)
    return blend(out, original, controls.strength)


def apply_lut_u8(pixels: np.ndarray, lut: torch.Tensor) -> None:
    """Map an 8-bit [H, W, 3] array through ``lut`` [3, 256] in place (the tiled path's last step)."""
    table = (lut.clamp(0, 1) * (LEVELS - 1)).round().to(torch.uint8).numpy()
    for c in range(3):
        pixels[..., c] = table[c][pixels[..., c]]
