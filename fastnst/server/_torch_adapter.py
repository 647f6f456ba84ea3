"""A minimal PyTorch implementation of the runtime ``Backend`` protocol, private to the server.

The project's real backends (``fastnst.runtime``: PyTorch and ONNX Runtime, precisions, devices) are being built
separately; until they land the server wraps :func:`fastnst.model_io.load_model` itself so it depends only on the
protocol in ``fastnst/runtime/base.py`` and can switch by changing :func:`load_backend` alone.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..model_io import ModelInfo, load_model
from ..runtime.base import Backend
from ..transformer import TransformerNet


class TorchAdapter:
    """Runs a :class:`TransformerNet` in inference mode; output clamped to [0, 1] and returned on the CPU."""

    name = "torch"
    precision = "fp32"

    def __init__(self, model: TransformerNet, device: str) -> None:
        self.model = model.to(device).eval()
        self.device = str(device)

    def stylize(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            out = self.model(batch.to(self.device, non_blocking=True))
            return out.float().clamp_(0.0, 1.0).cpu()


def resolve_device(device: str) -> str:
    """``auto`` picks CUDA when present; an explicit ``cuda`` without a GPU is the caller's error to report."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_backend(weights: Path, device: str) -> tuple[Backend, ModelInfo]:
    """Load one model file into a backend (the default ``backend_factory`` of the app)."""
    model, info = load_model(weights, device=device)
    return TorchAdapter(model, device), info
