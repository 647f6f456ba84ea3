import json
from pathlib import Path

import pytest
import torch

from fastnst.model.files import METADATA_FILE, WEIGHTS_FILE, find_model, load_model, save_model
from fastnst.model.transformer import TransformerNet, TransformerSpec
from fastnst.utils.errors import CheckpointError


def tiny(seed: int = 0, width: int = 8) -> TransformerNet:
    torch.manual_seed(seed)
    return TransformerNet(TransformerSpec(width=width, residual_blocks=1))


def test_round_trip_same_outputs(tmp_path: Path) -> None:
    model = tiny()
    save_model(model, tmp_path / "m", {"style_name": "test"})
    loaded, info = load_model(tmp_path / "m")
    x = torch.rand(1, 3, 20, 24)
    torch.testing.assert_close(model(x), loaded(x))
    assert info.name == "test" and info.spec == model.spec
    meta = json.loads((tmp_path / "m" / METADATA_FILE).read_text())
    assert len(meta["sha256"]) == 64 and meta["parameters"] == sum(p.numel() for p in model.parameters())


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    save_model(tiny(), tmp_path / "m", {"style_name": "test"})
    weights = tmp_path / "m" / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the SHA-256"):
        load_model(tmp_path / "m")


def test_garbage_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"this is not a safetensors file")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_model(bad)


def test_other_architecture_is_refused(tmp_path: Path) -> None:
    save_model(tiny(width=8), tmp_path / "m", {"style_name": "test"})
    # Claim another width in the metadata and the header: the tensors no longer fit.
    from safetensors.torch import load_file, save_file

    weights = tmp_path / "m" / WEIGHTS_FILE
    save_file(load_file(weights), str(weights), metadata={"spec": json.dumps({"width": 16, "residual_blocks": 1})})
    (tmp_path / "m" / METADATA_FILE).unlink()
    with pytest.raises(CheckpointError, match="different architecture"):
        load_model(weights)


def test_find_model_by_name_and_listing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_model(tiny(), tmp_path / "zoo" / "wave", {"style_name": "wave"})
    monkeypatch.setenv("FASTNST_MODELS", str(tmp_path / "zoo"))
    monkeypatch.chdir(tmp_path)  # no ./models here
    assert find_model("wave") == tmp_path / "zoo" / "wave" / WEIGHTS_FILE
    with pytest.raises(CheckpointError, match="not found") as caught:
        find_model("nope")
    # The shipped models are on the search path too, so "wave" is one of the names listed.
    assert "wave" in str(caught.value).split("available: ")[1].split(", ")
    assert f"{tmp_path / 'zoo'} ($FASTNST_MODELS)" in str(caught.value)
