"""Trained model files: ``model.safetensors`` (weights) plus ``model.json`` (style, architecture, recipe, losses).

safetensors cannot run code when loaded. ``model.json`` records the SHA-256 of every file of the folder (the
weights and each ONNX export), and the weights carry a digest of their tensors in their own header for when they
travel without the JSON, so a damaged or truncated file is refused with a clear message before a backend opens it
instead of producing subtly wrong images. The digests detect corruption, not forgery: whoever can change a file
can change its recorded digest too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as serialize_safetensors

from fastnst._version import __version__
from fastnst.model.mixing import Mix, model_styles, style_weights
from fastnst.model.transformer import TransformerNet, TransformerSpec, bake
from fastnst.utils.atomic import atomic_write_bytes, atomic_write_text
from fastnst.utils.cache import default_cache_dir
from fastnst.utils.errors import CheckpointError
from fastnst.utils.hashing import sha256_file

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "model.json"
ONNX_FILES: dict[str, str] = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}
"""File names of the ONNX exports inside a model folder, by precision."""
ONNX_FORMAT = "fastnst-transformer-onnx"
"""``fastnst.format`` metadata value of an ONNX export: what the runtime checks before it trusts a file."""
ONNX_INPUT, ONNX_OUTPUT = "image", "stylized"
"""Names of the exported graph's input and output."""
FILE_DIGESTS = "files"
"""``model.json`` key: file name -> SHA-256 of each file of the folder."""
TENSORS_DIGEST = "tensors_sha256"
"""safetensors header key: :func:`tensors_sha256` of the file's tensors, checked at load."""
MODEL_SEARCH_ENV = "FASTNST_MODELS"
"""Folders of model folders searched first for a model name (``os.pathsep``-separated)."""


@dataclass
class ModelInfo:
    """What a model file says about itself."""

    name: str
    spec: TransformerSpec
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def styles(self) -> list[str]:
        """The styles the model holds (one for a single-style model), in the order of its norm rows."""
        return model_styles(self.metadata, self.name)


def save_model(model: TransformerNet, folder: str | os.PathLike[str], metadata: dict[str, Any]) -> Path:
    """Write weights and metadata into ``folder`` atomically; returns the weights path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights_path = folder / WEIGHTS_FILE
    state = {key: value.detach().float().contiguous().cpu() for key, value in model.state_dict().items()}
    header = {"format": "fastnst-transformer", "spec": json.dumps(model.spec.to_dict()),
              TENSORS_DIGEST: tensors_sha256(state)}
    atomic_write_bytes(weights_path, serialize_safetensors(state, metadata=header))
    digest = sha256_file(weights_path)
    meta = {
        "format": "fastnst-transformer",
        "fastnst_version": __version__,
        "spec": model.spec.to_dict(),
        "parameters": sum(v.numel() for v in state.values()),
        **metadata,
        "sha256": digest,
        FILE_DIGESTS: {WEIGHTS_FILE: digest},
    }
    atomic_write_text(folder / METADATA_FILE, json.dumps(meta, indent=2, sort_keys=False) + "\n")
    return weights_path


def tensors_sha256(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors' names, dtypes, shapes and bytes, in name order: the same for a state however
    the file holding it is laid out."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}\0{tensor.dtype}\0{list(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def read_metadata_file(meta_path: Path) -> dict[str, Any]:
    """``model.json`` as a dict; unreadable JSON is a CheckpointError."""
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{meta_path} is not valid JSON ({exc})") from None
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{meta_path} is not a fastnst model description (a JSON object expected)")
    return metadata


def recorded_sha256(path: Path, metadata: dict[str, Any]) -> str | None:
    """The SHA-256 that ``model.json`` records for ``path``, if any."""
    files = metadata.get(FILE_DIGESTS)
    expected = files.get(path.name) if isinstance(files, dict) else None
    if expected is None and path.name == WEIGHTS_FILE:
        expected = metadata.get("sha256")
    return expected if isinstance(expected, str) else None


_noted_unchecked: set[Path] = set()


def note_unchecked(path: Path) -> None:
    """Say once per file that it has no recorded digest (made before fastnst recorded them): used unchecked."""
    resolved = path.resolve()
    if resolved not in _noted_unchecked:
        _noted_unchecked.add(resolved)
        log.warning("%s has no recorded SHA-256 (no model.json beside it records one, as for files made before "
                    "fastnst recorded them): it is used without an integrity check", path)


def verify_model_file(path: str | os.PathLike[str], *, note_missing: bool = True,
                      metadata: dict[str, Any] | None = None) -> bool:
    """Check ``path`` against the SHA-256 that the ``model.json`` beside it records, before anything opens it.

    Returns whether a digest was checked; a file without one is noted once in the log (``note_missing``). Raises
    CheckpointError naming the file when it does not match. ``metadata``: that ``model.json`` when the caller has
    read it already.
    """
    path = Path(path)
    meta_path = path.with_name(METADATA_FILE)
    if metadata is None and meta_path.is_file():
        metadata = read_metadata_file(meta_path)
    expected = recorded_sha256(path, metadata) if metadata else None
    if expected is None:
        if note_missing:
            note_unchecked(path)
        return False
    if sha256_file(path) != expected:
        raise CheckpointError(f"{path} does not match the SHA-256 recorded in {meta_path}: the file is damaged "
                              "or incomplete")
    return True


def record_file_digest(path: str | os.PathLike[str]) -> bool:
    """Record ``path``'s SHA-256 in the ``model.json`` beside it (rewritten atomically, other keys kept as they
    are); returns False when there is no ``model.json`` to record it in."""
    path = Path(path)
    meta_path = path.with_name(METADATA_FILE)
    if not meta_path.is_file():
        return False
    metadata = read_metadata_file(meta_path)
    files = metadata.get(FILE_DIGESTS)
    metadata[FILE_DIGESTS] = {**(files if isinstance(files, dict) else {}), path.name: sha256_file(path)}
    atomic_write_text(meta_path, json.dumps(metadata, indent=2, sort_keys=False) + "\n")
    return True


@dataclass(frozen=True)
class SearchRoot:
    """A folder whose sub-folders are models looked up by name, and why it is searched."""

    folder: Path
    origin: str  # "$FASTNST_MODELS", "./models", "user" or "shipped"


def user_models_dir() -> Path:
    """Where a user keeps models of their own: ``<cache>/models`` (``$FASTNST_CACHE``, else ~/.cache/fastnst)."""
    return default_cache_dir() / "models"


def shipped_models_dir() -> Path:
    """The installation's own models: the ``models/`` folder beside the package in a source or editable install."""
    return Path(__file__).resolve().parents[2] / "models"


def model_search_path() -> list[SearchRoot]:
    """Where model names are looked up, in order: ``$FASTNST_MODELS`` (``os.pathsep``-separated), ./models, the
    user's model folder, then the shipped models. A folder listed twice is searched once, at its first place."""
    roots = [SearchRoot(Path(entry).expanduser(), f"${MODEL_SEARCH_ENV}")
             for entry in os.environ.get(MODEL_SEARCH_ENV, "").split(os.pathsep) if entry.strip()]
    roots += [SearchRoot(Path("models"), "./models"), SearchRoot(user_models_dir(), "user"),
              SearchRoot(shipped_models_dir(), "shipped")]
    unique: dict[Path, SearchRoot] = {}
    for root in roots:
        unique.setdefault(root.folder.resolve(), root)
    return list(unique.values())


def find_model(name_or_path: str | os.PathLike[str]) -> Path:
    """Resolve a model argument to its weights file: a folder or a .safetensors file as given, else the name of a
    model folder on :func:`model_search_path` (the first that holds it)."""
    candidate = Path(name_or_path)
    if candidate.is_dir():
        candidate = candidate / WEIGHTS_FILE
    if candidate.is_file():
        return candidate
    name = str(name_or_path)
    roots = model_search_path()
    if name and candidate.name == name and name not in (".", ".."):  # a plain name, never a path out of a root
        for root in roots:
            weights = root.folder / name / WEIGHTS_FILE
            if weights.is_file():
                return weights
    places = ", ".join(f"{root.folder.absolute()} ({root.origin})" for root in roots)
    available = sorted({p.parent.name for root in roots if root.folder.is_dir()
                        for p in root.folder.glob(f"*/{WEIGHTS_FILE}")})
    raise CheckpointError(f"model '{name_or_path}' not found: no such folder or file, and no model of that name in "
                          f"{places}; available: {', '.join(available) or 'none'}")


def load_model(name_or_path: str | os.PathLike[str],
               device: str | torch.device = "cpu") -> tuple[TransformerNet, ModelInfo]:
    """Load a trained transform network, verifying its integrity and architecture."""
    weights_path = find_model(name_or_path)
    meta_path = weights_path.with_name(METADATA_FILE)
    metadata = read_metadata_file(meta_path) if meta_path.is_file() else {}
    file_checked = verify_model_file(weights_path, note_missing=False, metadata=metadata)
    try:
        with safe_open(str(weights_path), framework="pt") as handle:  # tensors and header in one read
            header = handle.metadata() or {}
            state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - not a dict
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights_path} is not a readable safetensors file ({exc})") from None
    expected_tensors = header.get(TENSORS_DIGEST)
    if expected_tensors is not None and tensors_sha256(state) != expected_tensors:
        raise CheckpointError(f"{weights_path} does not match the digest of its tensors recorded in its header: "
                              "the file is damaged")
    if expected_tensors is None and not file_checked:
        note_unchecked(weights_path)
    spec_source = header.get("spec") or json.dumps(metadata.get("spec", {}))
    try:
        spec = TransformerSpec(**json.loads(spec_source))
    except (TypeError, json.JSONDecodeError):
        raise CheckpointError(f"{weights_path} does not describe a fastnst transform network") from None
    model = build_from_state(state, spec, str(weights_path))
    name = str(metadata.get("style_name") or weights_path.parent.name)
    return model.to(device).eval(), ModelInfo(name=name, spec=spec, metadata=metadata)


def load_styled_model(name_or_path: str | os.PathLike[str], device: str | torch.device = "cpu", *,
                      style: str | None = None, mix: Mix | None = None) -> tuple[TransformerNet, ModelInfo]:
    """:func:`load_model`, with a multi-style network baked for ``style`` or ``mix`` (default: its first style)
    into a single-style one; a single-style network is returned as it is (a ``style`` other than its own is
    refused)."""
    network, info = load_model(name_or_path, device)
    return bake(network, style_weights(info.styles, style=style, mix=mix)), info


def build_from_state(state: dict[str, torch.Tensor], spec: TransformerSpec, source: str) -> TransformerNet:
    """Instantiate the network and load ``state`` strictly; a mismatch means another architecture."""
    model = TransformerNet(spec)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        detail = (missing or unexpected or wrong)[:3]
        raise CheckpointError(
            f"{source} holds a different architecture than width={spec.width}, "
            f"residual_blocks={spec.residual_blocks} (mismatched keys such as {', '.join(detail)})"
        )
    model.load_state_dict(state)
    return model
