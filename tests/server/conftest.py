"""Fixtures shared by the server tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fastnst.model.files import save_model
from fastnst.model.transformer import TransformerNet, TransformerSpec


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding one tiny seeded network, ``tiny``."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    save_model(TransformerNet(TransformerSpec(width=8, residual_blocks=1)), root / "tiny", {"style_name": "tiny"})
    return root
