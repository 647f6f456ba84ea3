"""The CPU bf16 policy: bf16 autocast only where the CPU has bf16 instructions, not where oneDNN emulates it."""

from __future__ import annotations

import pytest
import torch

from fastnst.utils import device as device_module
from fastnst.utils.device import autocast_dtype, cpu_has_native_bf16, emulated_bf16

CPU = torch.device("cpu")


def fake_cpu(monkeypatch: pytest.MonkeyPatch, *, machine: str, onednn: bool, avx512_bf16: bool | None,
             amx: bool | None) -> None:
    """Make this CPU look like another: oneDNN's answer, the instruction probes (None: torch lacks the probe)."""
    monkeypatch.setattr(device_module.platform, "machine", lambda: machine)
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn)
    for name, answer in (("_is_avx512_bf16_supported", avx512_bf16), ("_is_amx_tile_supported", amx)):
        if answer is None:
            monkeypatch.delattr(torch.cpu, name, raising=False)
        else:
            monkeypatch.setattr(torch.cpu, name, lambda answer=answer: answer, raising=False)


@pytest.mark.parametrize(("avx512_bf16", "amx", "native"), [
    (False, False, False),  # Ice Lake / Cascade Lake: oneDNN says yes, but it emulates bf16
    (True, False, True),  # AMD Zen 4 and later, Cooper Lake
    (True, True, True),  # Sapphire Rapids and later
])
def test_x86_needs_bf16_instructions(monkeypatch: pytest.MonkeyPatch, avx512_bf16: bool, amx: bool,
                                     native: bool) -> None:
    fake_cpu(monkeypatch, machine="x86_64", onednn=True, avx512_bf16=avx512_bf16, amx=amx)
    assert cpu_has_native_bf16() is native
    assert autocast_dtype("auto", CPU) == (torch.bfloat16 if native else None)
    assert autocast_dtype("bf16", CPU) == torch.bfloat16  # an explicit choice is kept either way
    assert emulated_bf16(torch.bfloat16, CPU) is not native
    assert not emulated_bf16(None, CPU)
    assert not emulated_bf16(torch.bfloat16, torch.device("cuda"))


def test_onednn_refusing_bf16_wins_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cpu(monkeypatch, machine="x86_64", onednn=False, avx512_bf16=True, amx=True)
    assert not cpu_has_native_bf16()
    fake_cpu(monkeypatch, machine="aarch64", onednn=False, avx512_bf16=None, amx=None)
    assert not cpu_has_native_bf16()


def test_other_architectures_and_older_torch_keep_onednn_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cpu(monkeypatch, machine="aarch64", onednn=True, avx512_bf16=False, amx=False)
    assert cpu_has_native_bf16()  # Arm CPUs with bf16 (Neoverse V1/V2): the x86 probes do not apply
    fake_cpu(monkeypatch, machine="x86_64", onednn=True, avx512_bf16=None, amx=None)
    assert cpu_has_native_bf16()
