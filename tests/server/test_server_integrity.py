"""A damaged model file is refused at load (its SHA-256 does not match model.json), reported in the log and on
/readyz, while the other models keep serving."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

fastapi_testclient = pytest.importorskip("fastapi.testclient")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
from test_server_api import assert_error, encode, write_tiny_model  # noqa: E402

from fastnst.server import ServerSettings, create_app  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def damaged_onnx_model(folder: Path) -> Path:
    """A copy of the tiny exported model (served by ONNX Runtime on a CPU) whose model.onnx has one byte changed."""
    from onnx_helpers import tiny_export

    shutil.copytree(tiny_export().folder, folder)
    onnx_file = folder / "model.onnx"
    data = bytearray(onnx_file.read_bytes())
    data[-200] ^= 0x01
    onnx_file.write_bytes(bytes(data))
    return folder


def test_damaged_model_is_refused_and_reported_while_another_serves(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    write_tiny_model(tmp_path / "good", "good")
    damaged_onnx_model(tmp_path / "damaged")
    settings = ServerSettings(models=str(tmp_path), background_load=False, warmup=False, device="cpu")
    app = create_app(settings)
    with caplog.at_level(logging.INFO, logger="fastnst"), fastapi_testclient.TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["models"] == ["good"]
        assert "SHA-256" in ready.json()["failed"]["damaged"]
        assert client.post("/v1/stylize?model=good", content=encode()).status_code == 200
        assert_error(client.post("/v1/stylize?model=damaged", content=encode()), 404, "not_found")
    reason = app.state.fastnst.registry.failed["damaged"]
    assert "model.onnx does not match the SHA-256 recorded in" in reason and "\n" not in reason
    logged = [r.getMessage() for r in caplog.records if r.name == "fastnst.server" and "damaged" in r.getMessage()]
    assert len(logged) == 1 and "SHA-256" in logged[0] and logged[0].count("\n") == 0


def test_only_damaged_models_is_not_ready_and_readyz_says_why(tmp_path: Path) -> None:
    damaged_onnx_model(tmp_path / "damaged")
    settings = ServerSettings(models=str(tmp_path), background_load=False, warmup=False, device="cpu")
    with fastapi_testclient.TestClient(create_app(settings)) as client:
        body = assert_error(client.get("/readyz"), 503, "unavailable")
        assert "damaged" in body["detail"] and "does not match the SHA-256" in body["detail"]
