"""Model file integrity: model.json records a SHA-256 for every file of the folder, a lone .safetensors carries a
digest of its tensors, and every backend checks them before it opens a file. Older files without digests load,
said once in the log."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from fastnst.model.files import (
    FILE_DIGESTS,
    METADATA_FILE,
    WEIGHTS_FILE,
    load_model,
    record_file_digest,
    save_model,
    verify_model_file,
)
from fastnst.model.transformer import TransformerNet, TransformerSpec
from fastnst.runtime.select import load_backend
from fastnst.utils.errors import BackendError, CheckpointError, first_line, shorten
from fastnst.utils.hashing import sha256_file

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p for p in (REPO / "models").iterdir() if (p / WEIGHTS_FILE).is_file())

onnx_available = pytest.mark.skipif(
    not all(__import__("importlib").util.find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript")),
    reason="onnx, onnxruntime and onnxscript are needed")


def tiny(seed: int = 0) -> TransformerNet:
    torch.manual_seed(seed)
    return TransformerNet(TransformerSpec(width=8, residual_blocks=1))


def flip_byte(path: Path, offset_from_end: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0x01  # one bit in the last tensor's data
    path.write_bytes(bytes(data))


def warnings_about(caplog: pytest.LogCaptureFixture, path: Path) -> list[str]:
    return [r.getMessage() for r in caplog.records if str(path) in r.getMessage() and "no recorded SHA-256" in
            r.getMessage()]


# ------------------------------------------------------------------------------------------------ ONNX in a folder

@pytest.fixture
def exported(tmp_path: Path) -> Path:
    """A copy of the tiny exported model folder (model.safetensors, model.json, model.onnx)."""
    from onnx_helpers import tiny_export

    folder = tmp_path / "tiny"
    shutil.copytree(tiny_export().folder, folder)
    return folder


@onnx_available
def test_export_records_the_onnx_digest_in_model_json(exported: Path) -> None:
    meta = json.loads((exported / METADATA_FILE).read_text())
    assert meta[FILE_DIGESTS] == {WEIGHTS_FILE: sha256_file(exported / WEIGHTS_FILE),
                                  "model.onnx": sha256_file(exported / "model.onnx")}
    assert meta["sha256"] == meta[FILE_DIGESTS][WEIGHTS_FILE] and meta["style_name"] == "tiny"


@onnx_available
def test_tampered_onnx_in_a_folder_is_refused_by_the_onnxruntime_backend(exported: Path) -> None:
    from fastnst.runtime.onnx_backend import OnnxBackend

    backend, _ = load_backend(exported, device="cpu")  # auto picks ONNX Runtime on a CPU
    assert backend.name == "onnxruntime"
    flip_byte(exported / "model.onnx")
    for attempt in (lambda: load_backend(exported, device="cpu"), lambda: OnnxBackend(exported / "model.onnx")):
        with pytest.raises(CheckpointError, match=r"model\.onnx does not match the SHA-256 recorded in") as caught:
            attempt()
        assert "\n" not in str(caught.value)
    torch_backend, _ = load_backend(exported, backend="torch", device="cpu")  # the weights are intact
    assert torch_backend.name == "torch"


@onnx_available
def test_onnx_without_a_recorded_digest_loads_and_says_so_once(exported: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    from fastnst.runtime.onnx_backend import OnnxBackend

    meta = json.loads((exported / METADATA_FILE).read_text())
    del meta[FILE_DIGESTS]  # as written before digests were recorded
    (exported / METADATA_FILE).write_text(json.dumps(meta, indent=2))
    with caplog.at_level(logging.INFO, logger="fastnst"):
        for _ in range(2):
            backend = OnnxBackend(exported / "model.onnx", device="cpu")
            assert backend.stylize(torch.rand(1, 3, 20, 20)).shape == (1, 3, 20, 20)
        load_model(exported)  # the weights are still checked against the "sha256" key
    assert len(warnings_about(caplog, exported / "model.onnx")) == 1
    assert not warnings_about(caplog, exported / WEIGHTS_FILE)
    assert record_file_digest(exported / "model.onnx")
    assert verify_model_file(exported / "model.onnx")


@onnx_available
def test_foreign_onnx_error_keeps_ort_reason_and_whole_words(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    from fastnst.runtime.onnx_backend import OnnxBackend

    value = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 4, 4])
    out = helper.make_tensor_value_info("stylized", TensorProto.FLOAT, [1, 3, 4, 4])
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["stylized"])], "g", [value], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 99  # ONNX Runtime refuses it with a C++ location and signature in the message
    path = tmp_path / "foreign.onnx"
    onnx.save_model(model, str(path))
    with pytest.raises(BackendError, match="is not a readable ONNX model") as caught:
        OnnxBackend(path, device="cpu")
    message = str(caught.value)
    assert "IR version" in message and "model.cc" not in message and "\n" not in message


def test_messages_are_cut_at_word_boundaries() -> None:
    text = "Load model failed: /onnxruntime_src/core/graph/model.cc:256 onnxruntime::Model::Model(onnx::ModelProto)"
    cut = shorten(text, 60)
    assert len(cut) <= 60 and cut.endswith("…") and text.startswith(cut[:-1])
    assert text[len(cut) - 1] == " "  # the cut falls on a space: no word is split
    assert shorten("short", 60) == "short"
    assert shorten("x" * 300, 60) == "x" * 300  # one word: kept whole rather than split
    assert first_line(ValueError(text + "\nsecond line"), 60) == cut


# ---------------------------------------------------------------------------------------------- lone safetensors

def test_lone_safetensors_carries_a_tensor_digest_and_tampering_is_refused(tmp_path: Path) -> None:
    save_model(tiny(), tmp_path / "m", {"style_name": "test"})
    lone = tmp_path / "lone.safetensors"
    shutil.copyfile(tmp_path / "m" / WEIGHTS_FILE, lone)  # no model.json beside it
    net, _ = load_model(lone)
    backend, _ = load_backend(lone, backend="torch", device="cpu")
    flip_byte(lone)
    with pytest.raises(CheckpointError, match="digest of its tensors") as caught:
        load_model(lone)
    assert "\n" not in str(caught.value)
    with pytest.raises(CheckpointError, match="digest of its tensors"):
        load_backend(lone, device="cpu")


def test_older_lone_safetensors_without_digest_loads_and_says_so_once(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    model = tiny()
    old = tmp_path / "old.safetensors"
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(old), metadata={"format": "fastnst-transformer", "spec": json.dumps(model.spec.to_dict())})
    with caplog.at_level(logging.INFO, logger="fastnst"):
        first, _ = load_model(old)
        load_model(old)
    x = torch.rand(1, 3, 20, 20)
    torch.testing.assert_close(first(x), model.eval()(x))
    assert len(warnings_about(caplog, old)) == 1


# ------------------------------------------------------------------------------------------------- shipped models

@pytest.mark.parametrize("folder", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_models_record_a_matching_digest_for_every_file(folder: Path) -> None:
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".onnx"))
    meta = json.loads((folder / METADATA_FILE).read_text())
    assert sorted(meta[FILE_DIGESTS]) == sorted(p.name for p in files)
    for path in files:
        assert verify_model_file(path), path  # read-only: the shipped files are never modified here
