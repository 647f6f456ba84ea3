"""``fastnst serve``: settings from TOML and flags, clear errors, and a real process that shuts down cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fastnst.cli import build_parser, main
from fastnst.model.files import save_model
from fastnst.model.transformer import TransformerNet, TransformerSpec
from fastnst.utils.errors import ConfigError

httpx = pytest.importorskip("httpx")
from fastnst.server.settings import SCHEMA, ServerSettings, load_settings


def test_settings_from_toml_flags_and_env(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text('models = "zoo"\nmax_batch = 4\nmax_wait_ms = 2\ncors_origins = ["https://a.example"]\n')
    settings = load_settings(config, {"port": 9000}, environ={"FASTNST_API_KEY": "from-env"})
    assert settings.models == str((tmp_path / "zoo").resolve())  # relative to the file
    assert (settings.max_batch, settings.max_wait_ms, settings.port) == (4, 2.0, 9000)
    assert settings.cors_origins == ("https://a.example",)
    assert settings.api_key == "from-env"
    assert load_settings(None, {"api_key": "flag"}, environ={"FASTNST_API_KEY": "env"}).api_key == "flag"


@pytest.mark.parametrize(("text", "message"), [
    ("max_bacth = 4\n", "unknown server setting 'max_bacth'"),
    ('max_batch = "4"\n', "'max_batch' must be int"),
    ('device = "tpu"\n', "'device' must be one of"),
    ("queue_size = 0\n", "'queue_size' must be at least 1"),
    ("max_side = 4096\n", "exceeds 'max_side_limit'"),
    ("port = = 1\n", "not valid TOML"),
])
def test_bad_settings_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "server.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(config, environ={})
    assert "\n" not in str(info.value)


def test_serve_flags_mirror_the_settings() -> None:
    args = build_parser().parse_args(["serve", "--models", "zoo", "--max-batch", "1", "--no-warmup",
                                      "--cors-origins", "https://a", "https://b"])
    given = SCHEMA.overrides_from(args)
    assert (given["models"], given["max_batch"], given["warmup"], given["cors_origins"]) == (
        "zoo", 1, False, ("https://a", "https://b"))
    assert args.port is None  # unset flags leave the dataclass default in charge
    assert ServerSettings().port == 8000


def test_serve_refuses_a_folder_without_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--models", str(tmp_path)]) == 1
    assert "no models in" in capsys.readouterr().err
    assert main(["serve", "--models", str(tmp_path / "missing")]) == 1
    assert "does not exist" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_process_answers_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    torch.manual_seed(0)
    save_model(TransformerNet(TransformerSpec(width=8, residual_blocks=1)), tmp_path / "tiny", {"style_name": "tiny"})
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "fastnst.cli", "serve", "--models", str(tmp_path), "--port",
                                str(port), "--device", "cpu", "--threads", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[0]
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.2)
        response = httpx.post(f"{url}/v1/stylize", content=(tmp_path / "tiny" / "model.json").read_bytes(),
                              timeout=20)
        assert response.status_code == 415  # JSON is not an image
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    # uvicorn finishes the graceful shutdown, then re-raises SIGTERM so the exit status says how it stopped.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output and "Traceback" not in output
