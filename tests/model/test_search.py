"""Model names resolve through the search path from any folder: explicit paths, $FASTNST_MODELS, ./models, the
user's model folder, then the shipped models; ``fastnst models`` lists what is there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from fastnst.cli import main
from fastnst.model.files import ONNX_FILES, WEIGHTS_FILE, find_model, model_search_path, save_model
from fastnst.model.search import list_models
from fastnst.model.transformer import TransformerNet, TransformerSpec
from fastnst.utils.errors import CheckpointError

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "models"


def put_model(folder: Path, style: str = "a.jpg") -> Path:
    torch.manual_seed(0)
    save_model(TransformerNet(TransformerSpec(width=8, residual_blocks=1)), folder, {"style_image": style})
    return folder / WEIGHTS_FILE


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """An empty working folder, two $FASTNST_MODELS folders and a user cache of our own."""
    work, env_a, env_b, cache = (tmp_path / name for name in ("work", "env_a", "env_b", "cache"))
    for folder in (work, env_a, env_b):
        folder.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("FASTNST_MODELS", os.pathsep.join([str(env_a), str(env_b)]))
    monkeypatch.setenv("FASTNST_CACHE", str(cache))
    return {"work": work, "env_a": env_a, "env_b": env_b, "user": cache / "models"}


def test_search_path_order(places: dict[str, Path]) -> None:
    roots = model_search_path()
    assert [root.origin for root in roots] == ["$FASTNST_MODELS", "$FASTNST_MODELS", "./models", "user", "shipped"]
    assert [root.folder.absolute() for root in roots[:4]] == [
        places["env_a"], places["env_b"], places["work"] / "models", places["user"]]
    assert roots[4].folder == SHIPPED


def test_names_resolve_through_env_and_user_folder(places: dict[str, Path]) -> None:
    env_weights = put_model(places["env_b"] / "second")
    user_weights = put_model(places["user"] / "mine")
    assert find_model("second") == env_weights
    assert find_model("mine") == user_weights


def test_order_is_respected(places: dict[str, Path]) -> None:
    user = put_model(places["user"] / "wave")
    assert find_model("wave") == user
    local = put_model(places["work"] / "models" / "wave")
    assert find_model("wave").resolve() == local.resolve()  # ./models before the user folder
    second = put_model(places["env_b"] / "wave")
    assert find_model("wave") == second  # $FASTNST_MODELS before ./models
    first = put_model(places["env_a"] / "wave")
    assert find_model("wave") == first  # and its entries in order
    explicit = put_model(places["work"] / "wave")
    assert find_model("wave").resolve() == explicit.resolve()  # a folder given as such wins over any name


@pytest.mark.skipif(not (SHIPPED / "starry_night" / WEIGHTS_FILE).is_file(), reason="no shipped models here")
def test_shipped_models_from_any_folder(places: dict[str, Path]) -> None:
    assert find_model("starry_night") == SHIPPED / "starry_night" / WEIGHTS_FILE
    mine = put_model(places["user"] / "starry_night")
    assert find_model("starry_night") == mine  # the user's own model of that name comes first


def test_a_miss_names_the_places_and_the_models(places: dict[str, Path]) -> None:
    put_model(places["env_a"] / "alpha")
    put_model(places["user"] / "beta")
    with pytest.raises(CheckpointError) as caught:
        find_model("gamma")
    message = str(caught.value)
    assert message.startswith("model 'gamma' not found") and "\n" not in message
    for folder, origin in ((places["env_a"], "$FASTNST_MODELS"), (places["env_b"], "$FASTNST_MODELS"),
                           (places["work"] / "models", "./models"), (places["user"], "user"), (SHIPPED, "shipped")):
        assert f"{folder} ({origin})" in message
    available = message.split("available: ")[1].split(", ")
    assert "alpha" in available and "beta" in available and "gamma" not in available


def test_a_name_never_walks_out_of_a_folder(places: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    put_model(places["env_a"] / "inner")
    (places["env_a"] / "sub").mkdir()
    deep = places["work"] / "deep"
    deep.mkdir()
    monkeypatch.chdir(deep)
    assert find_model("inner") == places["env_a"] / "inner" / WEIGHTS_FILE
    with pytest.raises(CheckpointError, match="not found"):
        find_model(os.path.join("..", "env_a", "inner"))  # would exist from env_b/, were it joined to a root
    with pytest.raises(CheckpointError, match="not found"):
        find_model(os.path.join("sub", "..", "inner"))


def test_models_command_lists_and_locates(places: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    put_model(places["env_a"] / "wave", style="hokusai.jpg")
    put_model(places["user"] / "wave")
    exported = put_model(places["user"] / "mosaic", style="mosaic.jpg").parent
    (exported / ONNX_FILES["fp32"]).write_bytes(b"onnx")
    (exported / ONNX_FILES["int8"]).write_bytes(b"onnx")

    entries = [entry for entry in list_models() if entry.origin != "shipped"]
    assert [(e.name, e.origin, e.shadowed) for e in entries] == [
        ("wave", "$FASTNST_MODELS", False), ("mosaic", "user", False), ("wave", "user", True)]
    assert entries[1].precisions == ("fp32", "int8") and entries[1].style == "mosaic.jpg"

    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "STYLE", "ONNX", "WHERE"]
    rows = {line.split()[0] + (" shadowed" if "(shadowed)" in line else ""): line for line in lines[1:]}
    assert rows["wave"].split()[1:] == ["hokusai.jpg", "-", str(places["env_a"] / "wave"), "($FASTNST_MODELS)"]
    assert rows["mosaic"].split()[1:] == ["mosaic.jpg", "fp32,int8", str(exported), "(user)"]
    assert str(places["user"] / "wave") in rows["wave shadowed"]
    if (SHIPPED / "starry_night" / WEIGHTS_FILE).is_file():
        assert "(shipped)" in rows["starry_night"]

    assert main(["models", "path", "wave"]) == 0
    assert capsys.readouterr().out.strip() == str(places["env_a"] / "wave")
    assert main(["models", "path", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fastnst: error: model 'nope' not found") and "available: " in err


def test_models_command_names_the_styles_of_a_multistyle_model(places: dict[str, Path],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    styles = [{"name": name, "image": f"{name}.jpg"} for name in ("night", "wave", "cafe")]
    save_model(TransformerNet(TransformerSpec(width=8, residual_blocks=1, styles=3)), places["user"] / "trio",
               {"style_name": "night+wave+cafe", "styles": styles})
    entry = next(entry for entry in list_models() if entry.name == "trio")
    assert entry.style == "3 styles: night,wave,…"
    assert main(["models"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("trio "))
    assert row.split()[1:4] == ["3", "styles:", "night,wave,…"]


def test_models_command_imports_no_torch_to_register() -> None:
    import subprocess
    import sys

    code = ("import argparse, sys; from fastnst.commands import models; "
            "models.register(argparse.ArgumentParser().add_subparsers()); assert 'torch' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
