"""Training checkpoints: everything needed to continue a run exactly where it stopped.

Written atomically (temp file, fsync, rename) so a run killed mid-write leaves the previous checkpoint intact,
and read with ``torch.load(weights_only=True)`` so a checkpoint from elsewhere cannot execute code. torch's
checkpoint is a zip archive whose records carry CRC-32s that torch itself never checks; :func:`load_checkpoint`
checks every one before unpickling, so a damaged file is refused instead of resuming with corrupted weights.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import zipfile
from pathlib import Path
from typing import Any

import torch

from fastnst._version import __version__
from fastnst.utils.atomic import atomic_path, atomic_write_bytes
from fastnst.utils.errors import CheckpointError, first_line, load_failure

CHECKPOINT_FORMAT = 1


def rng_state() -> dict[str, Any]:
    """Global RNG states (torch CPU, CUDA, Python); data order and crops are seeded separately."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any], *,
                    previous: str | os.PathLike[str] | None = None) -> Path:
    """Write ``state`` (model, optimizer, scaler, step, rng, config, …) atomically; returns the path.

    With ``previous``, the checkpoint already at ``path`` first becomes ``previous`` (a hard link, or a copy where
    the file system has none), replaced atomically: at every moment both names hold a complete checkpoint or are
    absent, so a damaged ``path`` always leaves one to fall back to.
    """
    payload = {"format": CHECKPOINT_FORMAT, "version": __version__, **state}
    buffer = io.BytesIO()  # serialized before any file is touched: a full disk fails in one place, on one write
    torch.save(payload, buffer)
    path = Path(path)
    if previous is not None and path.is_file():
        with atomic_path(previous) as tmp:
            tmp.unlink()
            try:
                os.link(path, tmp)
            except OSError:
                shutil.copyfile(path, tmp)
    atomic_write_bytes(path, buffer.getbuffer())
    return path


def verify_checkpoint(data: bytes, path: Path) -> None:
    """Refuse ``data`` unless it is a complete zip archive whose every record matches its CRC-32."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} is damaged or not a fastnst checkpoint (not a complete zip "
                              f"archive: {first_line(exc)})") from None
    if damaged is not None:
        raise CheckpointError(f"checkpoint {path} is damaged: its record {damaged} fails its CRC-32 check")


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint safely, verified first; any damage becomes a one-line CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path} ({first_line(exc)})") from None
    verify_checkpoint(data, path)
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for damaged or foreign files
        raise CheckpointError(f"checkpoint {path} is damaged or not a fastnst checkpoint "
                              f"({load_failure(exc)})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a fastnst checkpoint (format {CHECKPOINT_FORMAT} expected)")
    return payload
