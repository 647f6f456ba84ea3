"""Encoding the response image (strength and colour preservation come from fastnst.runtime.color).

This runs on the request's worker thread after the batched inference, so one batch can serve requests that ask
for different strengths, colour handling or formats.
"""

from __future__ import annotations

import io
from typing import Literal

from PIL import Image

OutputFormat = Literal["jpeg", "png", "webp"]
MEDIA_TYPES: dict[str, str] = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
EXTENSIONS: dict[str, str] = {"jpeg": "jpg", "png": "png", "webp": "webp"}
_PIL_FORMATS: dict[str, str] = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}

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
