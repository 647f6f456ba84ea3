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
    """Each style is named like the single-style model of its painting, so cards, the gallery and
    scripts/evaluate_models.py set them side by side."""
    config = load_config(REPO / "configs" / "multistyle" / "zoo.toml")
    shipped = {json.loads((folder / "model.json").read_text())["style_image"]: folder.name
               for folder in sorted((REPO / "models").iterdir()) if (folder / "model.json").is_file()
               and not json.loads((folder / "model.json").read_text()).get("styles")}
    assert {name: Path(image).name for name, image in config.paintings} == {v: k for k, v in shipped.items()}
