"""What hardware a measurement ran on, named the way benchmark reports and model cards print it."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def cpu_model() -> str:
    """The CPU's marketing name (e.g. 'AMD EPYC 9R14'), or the architecture when the OS does not say."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_details() -> str:
    """The CPU's name with family/model numbers and native-bf16 support: virtual machines often report only
    'AMD EPYC', and bf16 support decides which precision a benchmark's fastest row uses."""
    try:
        fields: dict[str, str] = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
        bf16 = ", avx512_bf16" if "avx512_bf16" in fields.get("flags", "").split() else ""
        return f"{fields['model name']} (family {fields['cpu family']}, model {fields['model']}{bf16})"
    except (OSError, KeyError):
        return cpu_model()


def device_name(device: torch.device | str) -> str:
    """'NVIDIA H200' for a CUDA device, the CPU's details otherwise (cpu_details: VMs often name only the vendor)."""
    import torch  # here, so the CPU's name is known without loading torch

    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_details()
