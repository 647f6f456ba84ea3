"""How the server turns a model file into a runtime backend: the same choice ``fastnst stylize`` makes.

ONNX Runtime when the model folder has its fp32 export and onnxruntime is installed (the faster one on the CPUs
measured, docs/benchmarks.md), else the PyTorch backend; fp16 on GPUs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from fastnst.model.files import ModelInfo
from fastnst.runtime.base import Backend
from fastnst.runtime.select import load_backend as load_runtime_backend
from fastnst.server.admission import ServiceEstimate
from fastnst.server.registry import BackendFactory


def load_backend(weights: Path, device: str, threads: int = 0,
                 mix: dict[str, float] | None = None) -> tuple[Backend, ModelInfo]:
    """Load one model file into a backend (the default ``backend_factory`` of the app); ``threads`` 0 = every
    core; ``mix`` picks a multi-style model's style or blend (default: its first style)."""
    return load_runtime_backend(weights, backend="auto", precision="auto", device=device, threads=threads or None,
                                mix=mix)


class WarmupTimed:
    """A backend whose first call (the registry's warm-up run) seeds the service-time estimate.

    That call pays one-time costs (allocation, kernel selection, engine builds), so it is run a second time and
    the second run is timed: an estimate seeded too high would refuse everything and never be corrected. Once the
    model is loaded (:meth:`loaded`), calls are requests' batches and pass straight through.
    """

    def __init__(self, backend: Any, model: str, estimate: ServiceEstimate) -> None:
        self._backend, self._model, self._estimate, self._timed = backend, model, estimate, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def loaded(self) -> None:
        self._timed = True

    def stylize(self, batch: torch.Tensor) -> torch.Tensor:
        result = self._backend.stylize(batch)
        if not self._timed:
            self._timed = True
            started = time.perf_counter()
            self._backend.stylize(batch)
            self._estimate.observe(self._model, time.perf_counter() - started, batch.shape[0] * batch.shape[-2] *
                                   batch.shape[-1])
        return result


def server_backends(factory: BackendFactory, estimate: ServiceEstimate) -> BackendFactory:
    """The factory as the server uses it: working memory returned after each run, warm-up timed."""

    def load(weights: Path, device: str, **style: Any) -> tuple[Any, Any]:
        backend, info = factory(weights, device, **style)
        release_memory = getattr(backend, "disable_memory_arena", None)
        if callable(release_memory):
            release_memory()
        return WarmupTimed(backend, weights.parent.name, estimate), info

    return load
