"""PyTorch backend: CPU or CUDA, fp32 or bf16/fp16 autocast, channels_last where it pays.

It runs :class:`~fastnst.runtime.fused.FusedTransformer` (the same function as the trained network with fewer
multiply-adds) built from the model's weights and sharing its norm layers, so instance-norm statistics hooks set
on ``backend.model`` (tiling, video) apply here too.
"""

from __future__ import annotations

import contextlib

import torch

from fastnst.model.transformer import MIN_INTERNAL_SIDE, TransformerNet
from fastnst.runtime.base import check_batch
from fastnst.runtime.fused import FusedTransformer, pad_for_network
from fastnst.utils.cache import keep_compile_cache
from fastnst.utils.device import default_inference_precision, resolve_device
from fastnst.utils.errors import BackendError

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
TORCH_PRECISIONS = tuple(_DTYPES)
# torch.compile settings. On GPUs the eager network spends most of its time in memory-bound instance norm, padding
# and layout copies that the compiler fuses. The default mode compiles in about half a minute per input size;
# autotuning the convolutions too ("max-autotune-no-cudagraphs") took 2.5 times as long for a frame time within
# 3 %, which only pays back after hours of video. On CPUs "freezing" turns the weights into constants so the oneDNN
# convolutions get prepacked weights. Timings: docs/benchmarks.md.
COMPILE_SETTINGS: dict[str, dict] = {"cuda": {"mode": "default"},
                                     "cpu": {"options": {"freezing": True}}}


class TorchBackend:
    """Runs a TransformerNet with PyTorch. ``channels_last`` None means: on CUDA only (slower on CPUs;
    docs/benchmarks.md).

    ``compile`` runs the network through ``torch.compile`` (:data:`COMPILE_SETTINGS`): worth it for video and other
    runs of many frames of one size, since each new input size compiles again.
    """

    name = "torch"

    def __init__(self, model: TransformerNet, *, device: str = "auto", precision: str = "auto",
                 channels_last: bool | None = None, fused: bool = True, compile: bool = False) -> None:
        target = resolve_device(device)
        precision = default_inference_precision(target) if precision == "auto" else precision
        if precision == "int8":
            raise BackendError("int8 runs on the onnxruntime backend only (make the model with "
                               "`fastnst export --precision int8`)")
        if precision not in _DTYPES:
            raise BackendError(f"unknown precision {precision!r} for the torch backend; choose one of "
                               f"auto, {', '.join(TORCH_PRECISIONS)}")
        if precision == "fp16" and target.type == "cpu":
            raise BackendError("fp16 needs a CUDA device (CPUs have no fast fp16 convolutions); use bf16 or fp32")
        if precision == "bf16" and target.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise BackendError("this GPU does not support bf16; use fp16 or fp32")
        self.precision = precision
        self.device = str(target) if target.type == "cpu" else f"cuda:{target.index or 0}"
        self.channels_last = target.type == "cuda" if channels_last is None else channels_last
        self.model = model.to(target).eval()
        network = FusedTransformer(self.model) if fused else self.model
        if self.channels_last:
            network = network.to(memory_format=torch.channels_last)
        self.network = network.eval()
        self.compiled = compile
        if compile:
            keep_compile_cache()
            self.network = torch.compile(self.network, dynamic=False, **COMPILE_SETTINGS[target.type])
        self._dtype = _DTYPES[precision]

    def _autocast(self) -> contextlib.AbstractContextManager[None]:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=self._dtype)

    @torch.inference_mode()
    def stylize(self, batch: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] float in [0, 1] on any device → stylized on the CPU, same shape, clamped."""
        check_batch(batch)
        h, w = batch.shape[-2:]
        x = batch.to(self.device, torch.float32, non_blocking=True)
        if min(h, w) < MIN_INTERNAL_SIDE:
            x, h, w = pad_for_network(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            y = self.network(x)
        return y[..., :h, :w].float().clamp_(0.0, 1.0).contiguous().cpu()
