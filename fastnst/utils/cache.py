"""fastnst's cache folder, shared by downloaded VGG weights, user models and TensorRT engines."""

from __future__ import annotations

import os
from pathlib import Path

ENV_CACHE = "FASTNST_CACHE"


def default_cache_dir() -> Path:
    """fastnst's cache folder: ``$FASTNST_CACHE``, else ``$XDG_CACHE_HOME/fastnst``, else ``~/.cache/fastnst``."""
    explicit = os.environ.get(ENV_CACHE, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    if xdg:
        return Path(xdg).expanduser() / "fastnst"
    return Path.home() / ".cache" / "fastnst"
