"""fastnst's cache folder, shared by downloaded VGG weights, user models, TensorRT engines and torch.compile."""

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


COMPILE_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


def keep_compile_cache() -> Path:
    """Point torch.compile's caches (generated kernels, autotuning results) at fastnst's cache folder, unless the
    user chose a folder: there they outlive /tmp, and a later process compiles an input size it has seen in seconds
    instead of half a minute or more (docs/benchmarks.md). Returns the folder in use."""
    return Path(os.environ.setdefault(COMPILE_CACHE_ENV, str(default_cache_dir() / "torch-compile")))
