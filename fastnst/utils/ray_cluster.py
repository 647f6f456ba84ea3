"""Joining Ray for the scale-out paths (``serve --ray``, ``stylize --ray``): one place that imports Ray, names the
extra when it is missing, and starts or joins an instance the same way for both."""

from __future__ import annotations

import logging
from types import ModuleType

from fastnst.utils.errors import FastNSTError, first_line

RAY_EXTRA = 'pip install "fastnst[ray]"'


def require_ray(feature: str = "--ray") -> ModuleType:
    """``import ray``, or one line naming the extra that brings it."""
    try:
        import ray
    except ImportError:
        raise FastNSTError(f"{feature} needs Ray, which is not installed; {RAY_EXTRA}") from None
    return ray


def connect(address: str | None = None, *, num_cpus: int | None = None) -> ModuleType:
    """Join the Ray instance at ``address`` ("auto", "HOST:PORT" or "ray://HOST:PORT"), or start a local one when
    ``address`` is None; reuse the connection this process already has. ``num_cpus`` bounds a local instance."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    try:
        ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=True, configure_logging=True)
    except ConnectionError as exc:
        raise FastNSTError(f"cannot reach the Ray cluster at {address}: {first_line(exc)}",
                           setting="address") from None
    return ray

