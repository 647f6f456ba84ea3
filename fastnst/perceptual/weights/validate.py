"""Check VGG ``features`` state dicts against torchvision's own layout, save them reproducibly and digest them.

The expected keys and shapes come from torchvision itself (built on the meta device), so they can never drift
from the model the weights are loaded into. Saving is deterministic and the digest ignores torch's file format,
so a converted file can be compared with the known weights bit for bit.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from fastnst.utils.atomic import atomic_path
from fastnst.utils.errors import WeightsError


@functools.cache
def _reference_features(arch: str) -> torch.nn.Module:
    """torchvision's ``features`` module for ``arch``, built on the meta device (no memory, no random init)."""
    import torchvision  # deferred: importing torchvision costs seconds and most callers never get here

    with torch.device("meta"):
        return getattr(torchvision.models, arch)().features


def _expected_shapes(arch: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of torchvision's ``<arch>().features`` state dict, in its order."""
    return {key: tuple(t.shape) for key, t in _reference_features(arch).state_dict().items()}


def conv_indices(arch: str) -> list[int]:
    """Indices of the Conv2d layers inside ``<arch>().features`` (0, 2, 5, 7, ...)."""
    return [int(key.split(".")[0]) for key in _expected_shapes(arch) if key.endswith(".weight")]


def _state_dict_metadata(arch: str) -> Any:
    """The ``_metadata`` torchvision's ``features.state_dict()`` carries (module versions); a fresh copy."""
    metadata = _reference_features(arch).state_dict()._metadata  # type: ignore[attr-defined]
    return collections.OrderedDict((key, dict(value)) for key, value in metadata.items())


def validate_state(state: Mapping[str, Any], arch: str, source: str, *, hint: str = "") -> dict[str, torch.Tensor]:
    """Check keys, shapes, dtype and finiteness against torchvision's layout; return float32 tensors in its order.

    A wrong or damaged file otherwise surfaces much later as a cryptic ``load_state_dict`` error or as NaN
    losses; failing here names the file.
    """
    expected = _expected_shapes(arch)
    suffix = f"; {hint}" if hint else ""
    missing = [key for key in expected if key not in state]
    unexpected = [str(key) for key in state if key not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}")
        raise WeightsError(f"{source} is not a torchvision {arch} features state dict ({'; '.join(parts)}){suffix}")
    out: dict[str, torch.Tensor] = {}
    for key, shape in expected.items():
        value = state[key]
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"{source}: {key} is a {type(value).__name__}, not a tensor{suffix}")
        if tuple(value.shape) != shape:
            raise WeightsError(
                f"{source}: {key} has shape {tuple(value.shape)}, torchvision {arch} needs {shape} "
                f"(weights of another network?){suffix}"
            )
        if not value.is_floating_point():
            raise WeightsError(f"{source}: {key} has dtype {value.dtype}, expected floating point{suffix}")
        tensor = value.detach().to(device="cpu", dtype=torch.float32, copy=True).contiguous()
        if not bool(torch.isfinite(tensor).all()):
            raise WeightsError(f"{source}: {key} contains NaN or infinite values (corrupted file?){suffix}")
        out[key] = tensor
    return out


def _infer_architecture(state: Mapping[str, Any]) -> str:
    """'vgg16' or 'vgg19', from the number of parameter tensors (26 vs 32)."""
    for arch in ("vgg16", "vgg19"):
        if set(state) == set(_expected_shapes(arch)):
            return arch
    raise WeightsError(
        f"cannot save VGG features: {len(state)} tensors match neither torchvision vgg16 nor vgg19 features"
    )


# --------------------------------------------------------------------------------------------------------------
# Saving (deterministic) and content digests.


def features_state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over keys, shapes and float32 little-endian bytes, in the given order.

    Independent of torch's file format and platform, unlike the hash of a saved ``.pth``; used to verify that a
    conversion reproduced the known weights bit for bit.
    """
    digest = hashlib.sha256()
    for key, tensor in state.items():
        array = tensor.detach().to(device="cpu", dtype=torch.float32).contiguous().numpy()
        digest.update(f"{key}:{tuple(array.shape)}\n".encode())
        digest.update(array.astype("<f4", copy=False).tobytes())
    return digest.hexdigest()


def save_features_state(state: Mapping[str, torch.Tensor], path: str | os.PathLike[str]) -> None:
    """Save a VGG ``features`` state dict atomically and reproducibly.

    The file is what ``torch.save(torchvision.models.vggNN().features.state_dict(), path)`` writes: an
    OrderedDict in torchvision's key order with its ``_metadata``, contiguous float32 tensors with their own
    storages. torch names the archive's records after the file name and derives ``.data/serialization_id`` from
    the record names and CRCs, so saving under the final file name (in a private temp folder, then renamed over
    the target) makes the bytes a function of the tensors only: the shared ``vgg16_features.pth`` and
    ``vgg19_features_caffe.pth`` are reproduced byte for byte (torch 2.x on Linux).
    """
    target = Path(path)
    arch = _infer_architecture(state)
    checked = validate_state(state, arch, f"state to save to {target}")
    ordered: collections.OrderedDict[str, torch.Tensor] = collections.OrderedDict(checked)  # fresh storages
    ordered._metadata = _state_dict_metadata(arch)  # type: ignore[attr-defined]
    with atomic_path(target) as tmp, tempfile.TemporaryDirectory(prefix=".fastnst-save-", dir=tmp.parent) as scratch:
        staged = Path(scratch) / target.name
        torch.save(ordered, staged)
        os.replace(staged, tmp)
