"""How the server turns a model file into a runtime backend: the same choice ``fastnst stylize`` makes.

ONNX Runtime when the model folder has its fp32 export and onnxruntime is installed (the faster one on the CPUs
measured, docs/benchmarks.md), else the PyTorch backend; fp16 on GPUs.
"""

from __future__ import annotations

from pathlib import Path

from fastnst.model.files import ModelInfo
from fastnst.runtime.base import Backend
from fastnst.runtime.select import load_backend as load_runtime_backend


def load_backend(weights: Path, device: str) -> tuple[Backend, ModelInfo]:
    """Load one model file into a backend (the default ``backend_factory`` of the app)."""
    return load_runtime_backend(weights, backend="auto", precision="auto", device=device)
