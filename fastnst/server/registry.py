"""The served models: found in a folder, loaded into backends, warmed up, and described for /v1/models.

Loading happens in the app's lifespan (on a worker thread) rather than at import, so ``import fastnst.server`` is
cheap, tests control when models load, and /healthz can answer while a large zoo is still loading. A model that
fails to load is reported on /readyz and skipped; the others are served.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from fastnst.model.files import METADATA_FILE, WEIGHTS_FILE, ModelInfo
from fastnst.model.mixing import style_entries
from fastnst.runtime.base import Backend
from fastnst.utils.errors import FastNSTError
from fastnst.utils.images import image_to_tensor, tensor_to_image

log = logging.getLogger("fastnst.server")

BackendFactory = Callable[..., tuple[Backend, ModelInfo]]
"""(weights file, device) -> (backend, model info); the app's seam for other runtimes and for tests. For a
multi-style model it is also called with ``mix=`` (style name -> weight) to load another style or blend."""
MAX_MIXES = 8
"""Styles or blends of one multi-style model kept loaded at once (each a baked copy of the network)."""

STATIC_DIR = Path(__file__).with_name("static")
THUMBNAIL_SOURCE = STATIC_DIR / "thumbnail_source.jpg"  # CC0 photo, see samples/CREDITS.md (castle.jpg)
THUMBNAIL_FILES = ("thumbnail.jpg", "thumbnail.png", "thumbnail.webp")  # optional, in a model's folder
# Facts from model.json worth showing clients; the training config is left out because it holds server paths.
PUBLIC_METADATA = ("spec", "parameters", "steps", "final_losses", "train_seconds", "hardware", "precision",
                   "torch", "fastnst_version", "sha256")


@dataclass
class ServedModel:
    """One loaded, warmed-up model."""

    name: str
    folder: Path
    info: ModelInfo
    backend: Backend
    load_seconds: float
    thumbnail: bytes = b""
    thumbnail_type: str = "image/jpeg"
    mixes: dict[tuple[float, ...], Backend] = field(default_factory=dict)

    def style(self) -> dict[str, Any]:
        meta = self.info.metadata
        image = meta.get("style_image")
        return {"name": str(meta.get("style_name") or self.name), "image": Path(image).name if image else None}

    def styles(self) -> list[dict[str, Any]]:
        """Every style the model holds, with its painting's file name when recorded."""
        entries = style_entries(self.info.metadata, self.name)
        if len(entries) < 2:
            return [self.style()]
        return [{"name": entry["name"], "image": Path(entry["image"]).name or None} for entry in entries]

    def backend_for(self, weights: tuple[float, ...], load: Callable[[dict[str, float]], Backend]) -> Backend:
        """The backend running the style mix ``weights`` (one per style): the loaded one for the first style,
        others loaded by ``load`` on first use and kept, the least recently used dropped beyond MAX_MIXES."""
        if len(weights) < 2 or weights == (1.0,) + (0.0,) * (len(weights) - 1):
            return self.backend
        backend = self.mixes.pop(weights, None)
        if backend is None:
            backend = load(dict(zip(self.info.styles, weights, strict=True)))
            while len(self.mixes) >= MAX_MIXES:
                self.mixes.pop(next(iter(self.mixes)))
        self.mixes[weights] = backend  # most recently used last
        return backend

    def public_metadata(self) -> dict[str, Any]:
        return {key: self.info.metadata[key] for key in PUBLIC_METADATA if key in self.info.metadata}


@dataclass
class Registry:
    """The state of model loading, read by the request handlers (written only by :meth:`load_all`)."""

    models: dict[str, ServedModel] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    expected: int = 0
    done: bool = False

    @property
    def ready(self) -> bool:
        return self.done and bool(self.models)

    def progress(self) -> str:
        if not self.done:
            return f"loading models ({len(self.models)} of {self.expected} loaded)"
        if not self.models:
            reasons = "; ".join(f"{name}: {why}" for name, why in self.failed.items()) or "none found"
            return f"no model could be loaded ({reasons})"
        return "ready"

    def load_all(self, folders: list[Path], device: str, factory: BackendFactory, *, warmup: bool,
                 on_loaded: Callable[[ServedModel], None] | None = None) -> None:
        """Load every model folder (blocking; run it on a thread). Failures are recorded, never raised."""
        self.expected = len(folders)
        try:
            for folder in folders:
                try:
                    model = load_served_model(folder, device, factory, warmup=warmup)
                except FastNSTError as exc:
                    log.error("fastnst: model %s skipped: %s", folder.name, exc)
                    self.failed = {**self.failed, folder.name: str(exc)}
                    continue
                except Exception as exc:
                    log.exception("fastnst: model %s failed to load", folder.name)
                    self.failed = {**self.failed, folder.name: f"{type(exc).__name__}: {exc}"}
                    continue
                self.models = {**self.models, model.name: model}  # swap, never mutate: the loop reads it
                if on_loaded is not None:
                    on_loaded(model)
                log.info("fastnst: model %s ready (%.2f s)", model.name, model.load_seconds)
        finally:
            self.done = True


def discover_models(root: str | Path) -> list[Path]:
    """Model folders under ``root`` (sorted), or ``root`` itself when it is one model's folder."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FastNSTError(f"models folder {root} does not exist")
    if (root / WEIGHTS_FILE).is_file():
        return [root]
    found = sorted(p.parent for p in root.glob(f"*/{WEIGHTS_FILE}") if not p.parent.name.startswith("."))
    if not found:
        raise FastNSTError(f"no models in {root}: expected sub-folders holding {WEIGHTS_FILE} and {METADATA_FILE}")
    return found


def load_served_model(folder: Path, device: str, factory: BackendFactory, *, warmup: bool) -> ServedModel:
    """Load one model, run it once (first calls allocate and pick kernels) and render its thumbnail."""
    started = time.perf_counter()
    backend, info = factory(folder / WEIGHTS_FILE, device)
    model = ServedModel(name=folder.name, folder=folder, info=info, backend=backend, load_seconds=0.0)
    own = next((folder / name for name in THUMBNAIL_FILES if (folder / name).is_file()), None)
    if own is not None:
        model.thumbnail = own.read_bytes()
        model.thumbnail_type = "image/" + ("jpeg" if own.suffix == ".jpg" else own.suffix[1:])
    if warmup or own is None:
        # The warm-up input is the thumbnail photo, so the thumbnail shows what the style does to a photo.
        with Image.open(THUMBNAIL_SOURCE) as photo:
            source = image_to_tensor(photo.convert("RGB"))  # [1, 3, 128, 128]
        result = backend.stylize(source)
        if tuple(result.shape) != tuple(source.shape) or not torch.isfinite(result).all():
            raise FastNSTError(f"model {folder.name} produced an invalid output during warm-up")
        if own is None:
            buffer = io.BytesIO()
            tensor_to_image(result).save(buffer, format="JPEG", quality=85)
            model.thumbnail = buffer.getvalue()
    model.load_seconds = time.perf_counter() - started
    return model
