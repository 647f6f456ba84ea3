"""fastnst: fast neural style transfer — train, stylize, export, serve.

.. code-block:: python

    import fastnst

    model = fastnst.load("starry_night")
    model.stylize("photo.jpg", strength=0.8, preserve_color="luminance").save("styled.png")

``import fastnst`` is cheap: :func:`load`, :class:`Model`, :func:`train`, :func:`optimize`, :func:`stylize_dataset`
(see :mod:`fastnst.api`) and :class:`FastNSTError` are imported, with PyTorch, on first use (Ray only when a
Ray job runs).
"""

from __future__ import annotations

import importlib
import types
from typing import TYPE_CHECKING, Any

from fastnst._version import __version__

if TYPE_CHECKING:
    from fastnst.api import Model, load, optimize, stylize_dataset, train
    from fastnst.utils.errors import FastNSTError

__all__ = ["FastNSTError", "Model", "__version__", "load", "optimize", "stylize_dataset", "train"]

_LAZY: dict[str, str] = {"load": "fastnst.api", "Model": "fastnst.api", "train": "fastnst.api",
                         "optimize": "fastnst.api", "stylize_dataset": "fastnst.api",
                         "FastNSTError": "fastnst.utils.errors"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'fastnst' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    """The public names, the dunders and the submodules imported so far (not this module's own helpers)."""
    submodules = {name for name, value in globals().items()
                  if isinstance(value, types.ModuleType) and value.__name__.startswith(f"{__name__}.")}
    return sorted(set(__all__) | submodules | {name for name in globals() if name.startswith("__")})
