"""Training checkpoints: everything needed to continue a run exactly where it stopped.

Written atomically (temp file, fsync, rename) so a run killed mid-write leaves the previous checkpoint intact,
and read with ``torch.load(weights_only=True)`` so a checkpoint from elsewhere cannot execute code.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import torch

from fastnst._version import __version__
from fastnst.utils.atomic import atomic_path
from fastnst.utils.errors import CheckpointError, first_line

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


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` (model, optimizer, scaler, step, rng, config, …) atomically; returns the path."""
    payload = {"format": CHECKPOINT_FORMAT, "version": __version__, **state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint safely; any damage becomes a one-line CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for damaged or foreign files
        raise CheckpointError(f"checkpoint {path} is damaged or not a fastnst checkpoint "
                              f"({first_line(exc)})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a fastnst checkpoint (format {CHECKPOINT_FORMAT} expected)")
    return payload
