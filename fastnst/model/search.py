"""Every model on the search path (:func:`fastnst.model.files.model_search_path`): what ``fastnst models`` lists.

Reading a listing costs no weights: only each folder's ``model.json`` and the names of its ONNX exports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fastnst.model.files import METADATA_FILE, ONNX_FILES, WEIGHTS_FILE, find_model, model_search_path

__all__ = ["ModelEntry", "find_model", "list_models", "model_path"]


@dataclass(frozen=True)
class ModelEntry:
    """One model folder found on the search path."""

    name: str
    """The folder's name: what ``load`` / ``--model`` take."""
    style: str
    """The style image it learned (``model.json``'s ``style_image``), or its style name; for a multi-style model
    the number of styles and the first names (the full list is its ``model.json``'s ``styles``)."""
    folder: Path
    origin: str
    """Why the folder's parent is searched: ``$FASTNST_MODELS``, ``./models``, ``user`` or ``shipped``."""
    precisions: tuple[str, ...]
    """Precisions with an ONNX export beside the weights (``fastnst export``), in :data:`ONNX_FILES` order."""
    shadowed: bool = False
    """True when a folder earlier on the search path has the same name (that one is loaded)."""


def list_models() -> list[ModelEntry]:
    """Every model folder on the search path, in search order, names sorted within each folder."""
    entries: list[ModelEntry] = []
    seen: set[str] = set()
    for root in model_search_path():
        if not root.folder.is_dir():
            continue
        for weights in sorted(root.folder.glob(f"*/{WEIGHTS_FILE}")):
            folder = weights.parent
            entries.append(ModelEntry(name=folder.name, style=_style(folder), folder=folder, origin=root.origin,
                                      precisions=tuple(p for p, f in ONNX_FILES.items() if (folder / f).is_file()),
                                      shadowed=folder.name in seen))
            seen.add(folder.name)
    return entries


def model_path(name_or_path: str) -> Path:
    """The folder a model argument resolves to (CheckpointError naming the places searched when none)."""
    return find_model(name_or_path).parent


def _style(folder: Path) -> str:
    try:
        metadata = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    if not isinstance(metadata, dict):
        return ""
    styles = metadata.get("styles")
    if isinstance(styles, list) and len(styles) > 1:  # a long "+"-joined name would widen the whole table
        names = [str(entry.get("name", "?")) if isinstance(entry, dict) else "?" for entry in styles]
        return f"{len(names)} styles: " + ",".join(names[:2]) + (",…" if len(names) > 2 else "")
    return str(metadata.get("style_image") or metadata.get("style_name") or "")
