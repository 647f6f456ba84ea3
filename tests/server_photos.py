"""A tiny encoded photo for the server tests' requests."""

from __future__ import annotations

import io

from PIL import Image


def photo(size: tuple[int, int] = (32, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 40, 200)).save(buffer, format="PNG")
    return buffer.getvalue()
