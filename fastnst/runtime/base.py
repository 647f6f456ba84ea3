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
