"""Per-request work around the network: style strength, colour preservation and encoding the response image.

These run on the request's worker thread after the batched inference, so one batch can serve requests that ask
for different strengths or colour handling.
"""

from __future__ import annotations

import io
from typing import Literal

import torch
from PIL import Image

OutputFormat = Literal["jpeg", "png", "webp"]
MEDIA_TYPES: dict[str, str] = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
EXTENSIONS: dict[str, str] = {"jpeg": "jpg", "png": "png", "webp": "webp"}
_PIL_FORMATS: dict[str, str] = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}

# ITU-R BT.601 full-range RGB <-> YCbCr (the JPEG/JFIF convention); offsets dropped since they cancel out.
_TO_YCBCR = torch.tensor([[0.299, 0.587, 0.114],
                          [-0.168736, -0.331264, 0.5],
                          [0.5, -0.418688, -0.081312]])
_FROM_YCBCR = torch.linalg.inv(_TO_YCBCR)


def preserve_color(original: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
    """Stylized luminance with the original's chroma (Gatys et al. 2016, "Preserving color", luminance-only).

    Both are [3, H, W] in [0, 1]; the result is clamped to [0, 1].
    """
    y = torch.einsum("ij,jhw->ihw", _TO_YCBCR, stylized)[:1]
    cbcr = torch.einsum("ij,jhw->ihw", _TO_YCBCR, original)[1:]
    return torch.einsum("ij,jhw->ihw", _FROM_YCBCR, torch.cat([y, cbcr])).clamp_(0.0, 1.0)


def blend_strength(original: torch.Tensor, stylized: torch.Tensor, strength: float) -> torch.Tensor:
    """Linear blend: 0 gives the original photo, 1 the fully stylized image."""
    if strength >= 1.0:
        return stylized
    return torch.lerp(original, stylized, float(strength))


def encode_image(rgb: Image.Image, alpha: Image.Image | None, fmt: OutputFormat, quality: int) -> bytes:
    """Encode for the response; alpha is kept for PNG/WebP (resized to the result when it was downscaled)."""
    image = rgb
    if alpha is not None and fmt in ("png", "webp"):
        if alpha.size != rgb.size:
            alpha = alpha.resize(rgb.size, Image.Resampling.LANCZOS)
        image = rgb.copy()
        image.putalpha(alpha)
    params: dict[str, object] = {}
    if fmt in ("jpeg", "webp"):
        params["quality"] = quality
    buffer = io.BytesIO()
    image.save(buffer, format=_PIL_FORMATS[fmt], **params)
    return buffer.getvalue()
