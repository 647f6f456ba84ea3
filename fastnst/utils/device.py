"""One device and precision policy for training, inference, the optimizer and the server.

Every entry point takes a device string (``auto``, ``cpu``, ``cuda`` or ``cuda:N``); this module is the only place
that turns it into a :class:`torch.device` and decides what "auto" means, so they all agree.
"""

from __future__ import annotations

import platform
from typing import Literal

import torch

from fastnst.utils.errors import DeviceError

Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
X86_MACHINES = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})  # platform.machine(), lower-cased


def cuda_available() -> bool:
    return bool(torch.cuda.is_available())


def resolve_device(name: str, index: int | None = None) -> torch.device:
    """``auto`` → CUDA when present, else the CPU; ``cuda`` without a GPU and unknown names are refused.

    ``index`` picks the GPU of a ``cuda``/``auto`` device (one per process under torchrun).
    """
    if name == "auto":
        name = "cuda" if cuda_available() else "cpu"
    try:
        resolved = torch.device(name)
    except (RuntimeError, TypeError):
        raise DeviceError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}",
                          setting="device") from None
    if resolved.type not in ("cpu", "cuda"):
        raise DeviceError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}", setting="device")
    if resolved.type == "cuda":
        if not cuda_available():
            raise DeviceError("device cuda was asked for but no CUDA device is available; use cpu or auto",
                              setting="device")
        if index is not None and resolved.index is None:
            resolved = torch.device("cuda", index)
    return resolved


def cpu_has_native_bf16() -> bool:
    """Whether this CPU runs bf16 convolutions natively; elsewhere oneDNN emulates them, slower than fp32.

    oneDNN's own check also says yes on x86 CPUs with plain AVX-512 (Intel Ice Lake, Cascade Lake), where it
    emulates bf16: a VGG16 step there took 3.4× its fp32 time (docs/benchmarks.md). On x86 this therefore also
    asks for the AVX512-BF16 or AMX instructions; other architectures keep oneDNN's answer."""
    try:
        if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            return False
    except (AttributeError, RuntimeError):
        return False
    if platform.machine().lower() not in X86_MACHINES:
        return True
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if all(probe is None for probe in probes):
        return True  # a torch without the probes: oneDNN's answer is all there is
    return any(bool(probe()) for probe in probes if probe is not None)


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 is fast on ``device``: supported GPUs, and CPUs with native bf16 instructions."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return cpu_has_native_bf16()


def emulated_bf16(dtype: torch.dtype | None, device: torch.device) -> bool:
    """Whether autocast in ``dtype`` on ``device`` would run bf16 that oneDNN emulates (slower than fp32)."""
    return dtype == torch.bfloat16 and device.type == "cpu" and not cpu_has_native_bf16()


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The training autocast precision for ``amp`` on ``device``; None means full fp32.

    'auto' picks bf16 where it is native (no loss scaling needed), fp16 on older GPUs, fp32 on CPUs that would
    emulate bf16 (slower than fp32 there; see docs/benchmarks.md).
    """
    if amp == "none":
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else None


def default_inference_precision(device: torch.device) -> str:
    """fp16 on GPUs (tensor cores; the models were trained under bf16 autocast), fp32 on CPUs."""
    return "fp16" if device.type == "cuda" else "fp32"
