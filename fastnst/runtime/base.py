"""The interface every inference backend implements, so tiling, video and the server never care which runs."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Backend(Protocol):
    """Runs one style network. Input and output: float32 [N, 3, H, W] in [0, 1] on the CPU, any H and W."""

    name: str  # "torch" or "onnxruntime"
    device: str  # where it actually runs, e.g. "cpu", "cuda:0", "CUDAExecutionProvider"
    precision: str  # "fp32", "fp16", "bf16" or "int8"

    def stylize(self, batch: torch.Tensor) -> torch.Tensor:
        """Stylize a batch; the output has the input's shape and is clamped to [0, 1]."""
        ...


def check_batch(batch: torch.Tensor) -> None:
    """Refuse, with one line, anything but a floating [N, 3, H, W] batch (before any backend touches it)."""
    from fastnst.utils.errors import BackendError

    if not isinstance(batch, torch.Tensor):
        raise BackendError(f"expected a torch.Tensor batch [N, 3, H, W], got {type(batch).__name__}")
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise BackendError(f"expected an RGB batch of shape [N, 3, H, W], got shape {list(batch.shape)}")
    if not batch.is_floating_point():
        raise BackendError(f"expected float values in [0, 1], got {batch.dtype}")
    if min(batch.shape) == 0:
        raise BackendError(f"the batch is empty (shape {list(batch.shape)})")
