"""Every config under configs/ loads, and points at paintings and photos that exist in ../shared/data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO, requires_shared

from fastnst.training.config import load_config

CONFIGS = sorted((REPO / "configs").glob("*/*.toml"))


@requires_shared
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_config_loads_and_its_files_exist(path: Path) -> None:
    config = load_config(path)
    assert Path(config.data_dir).is_dir(), config.data_dir
    for name, image in config.paintings:
        assert Path(image).is_file(), (name, image)


def test_the_multistyle_zoo_holds_the_shipped_styles_under_their_names() -> None:
    """Each style is named like a single-style model of its painting, so cards, the gallery and
    scripts/evaluate_models.py set them side by side (a painting may have several, e.g. one trained for video)."""
    config = load_config(REPO / "configs" / "multistyle" / "zoo.toml")
    shipped: dict[str, set[str]] = {}
    for folder in sorted((REPO / "models").iterdir()):
        meta = json.loads((folder / "model.json").read_text()) if (folder / "model.json").is_file() else {}
        if meta and not meta.get("styles"):
            shipped.setdefault(meta["style_image"], set()).add(folder.name)
    styles = {Path(image).name: name for name, image in config.paintings}
    assert styles.keys() == shipped.keys()
    for image, name in styles.items():
        assert name in shipped[image], (name, shipped[image])
