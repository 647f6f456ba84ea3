"""Trainer tests with real VGG16 weights on real photos (skipped when ../shared/data is absent)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_train_overrides
from safetensors.torch import load_file

from fastnst.training.config import load_config
from fastnst.training.trainer import StepReport, Trainer, export_checkpoint, get_lr
from fastnst.utils.errors import CheckpointError, ConfigError
from fastnst.utils.machine import cpu_details

REPO = Path(__file__).resolve().parents[2]


def cli_args(values: dict[str, object]) -> list[str]:
    args = []
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + key.replace("_", "-"))
        else:
            args += [flag, str(value)]
    return args


def run_cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fastnst.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def test_lr_schedule() -> None:
    assert get_lr(99, load_config(None, {"style_image": "s.jpg", "data_dir": "d", "steps": 100})) == 2e-3  # default
    config = load_config(None, {"style_image": "s.jpg", "data_dir": "d", "steps": 100, "warmup_steps": 10,
                                "learning_rate": 1.0, "min_lr_ratio": 0.1, "schedule": "cosine"})
    assert get_lr(0, config) == pytest.approx(0.1)
    assert get_lr(9, config) == pytest.approx(1.0)
    assert get_lr(10, config) == pytest.approx(1.0)
    assert get_lr(99, config) == pytest.approx(0.1, abs=1e-3)
    assert get_lr(55, config) == pytest.approx(0.55, abs=1e-6)


def test_cooldown_schedule_holds_the_rate_then_decays_linearly_over_the_last_share() -> None:
    config = load_config(None, {"style_image": "s.jpg", "data_dir": "d", "steps": 100, "learning_rate": 1.0,
                                "min_lr_ratio": 0.1, "schedule": "cooldown", "cooldown_fraction": 0.2})
    assert [get_lr(step, config) for step in (0, 50, 79)] == [1.0, 1.0, 1.0]
    assert get_lr(80, config) == pytest.approx(1.0 - 0.9 / 20)
    assert get_lr(89, config) == pytest.approx(0.55)
    assert get_lr(99, config) == pytest.approx(0.1)  # the last step runs at the floor
    assert all(get_lr(step, config) > get_lr(step + 1, config) for step in range(79, 99))
    with pytest.raises(ConfigError, match="cooldown_fraction"):
        load_config(None, {"style_image": "s.jpg", "data_dir": "d", "cooldown_fraction": 0.0})


def test_forced_bf16_on_a_cpu_that_emulates_it_says_so(shared_data: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fastnst.utils.device.cpu_has_native_bf16", lambda: False)  # a CPU like Ice Lake
    said: list[str] = []
    for amp in ("bf16", "auto"):
        trainer = Trainer(load_config(None, tiny_train_overrides(shared_data, tmp_path / amp, amp=amp, device="cpu")),
                          log=said.append)
        assert trainer.amp_dtype == (torch.bfloat16 if amp == "bf16" else None)
    assert len([line for line in said if "oneDNN emulates it" in line]) == 1, said


def test_style_loss_falls_and_logs(shared_data: Path, tmp_path: Path) -> None:
    """40 steps at 64 px with real VGG16 on real photos: the style loss falls by well over a third.

    Measured on the 2-core CI machine: the last five steps average 0.44 of the first three.
    """
    config = load_config(None, tiny_train_overrides(
        shared_data, tmp_path / "run", width=16, residual_blocks=2, batch_size=4, steps=40, seed=0,
        learning_rate=5e-3, schedule="constant", checkpoint_every=20, log_every=5, preview_every=20,
        tensorboard=True, holdout_every=10))
    reports: list[StepReport] = []
    result = Trainer(config, on_step=reports.append).run()
    style = [r.losses["style"] for r in reports]
    assert all(torch.isfinite(torch.tensor(r.losses["total"])) for r in reports)
    first, last = sum(style[:3]) / 3, sum(style[-5:]) / 5
    assert last < 0.6 * first, f"style loss {first:.4g} → {last:.4g}"
    assert result.model_path.is_file() and (tmp_path / "run" / "model.json").is_file()
    assert (tmp_path / "run" / "checkpoints" / "config.toml").is_file()
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["hardware"] == f"{cpu_details()} × 1"  # the CPU it trained on, not just "cpu"

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tb")).Reload()
    tags = events.Tags()
    assert {"loss/total", "loss/style", "loss/content", "loss/tv", "lr", "images_per_second"} <= set(tags["scalars"])
    assert any(tag.startswith("preview/") for tag in tags["images"])


def test_snapshot_of_a_constant_schedule_run_is_the_shorter_run(shared_data: Path, tmp_path: Path) -> None:
    """``write_model`` from ``on_step`` at step 5 of a 12-step constant-rate run gives the 5-step run's weights
    (what lets benchmarks/quality_vs_reference.py train once for several lengths)."""
    long = load_config(None, tiny_train_overrides(shared_data, tmp_path / "long", steps=12, schedule="constant"))

    def snapshot(report: StepReport) -> None:
        if report.step == 5:
            trainer.write_model(tmp_path / "snapshot")

    trainer = Trainer(long, on_step=snapshot)
    trainer.run()
    Trainer(long.replace(steps=5, output_dir=str(tmp_path / "short"))).run()
    a = load_file(tmp_path / "snapshot" / "model.safetensors")
    b = load_file(tmp_path / "short" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    final = load_file(tmp_path / "long" / "model.safetensors")  # the snapshot is not the finished run's model
    assert any(not torch.equal(a[key], final[key]) for key in a)
    assert json.loads((tmp_path / "snapshot" / "model.json").read_text())["steps"] == 5


def test_sigkill_and_resume_gives_identical_weights(shared_data: Path, tmp_path: Path) -> None:
    """Killed mid-run and resumed with nothing but ``--output-dir RUN --resume``: the weights of a straight run."""
    straight = tiny_train_overrides(shared_data, tmp_path / "straight", steps=30)
    assert run_cli("-q", "train", *cli_args(straight)).returncode == 0

    killed = tiny_train_overrides(shared_data, tmp_path / "killed", steps=30)
    checkpoint = tmp_path / "killed" / "checkpoints" / "last.pt"
    proc = subprocess.Popen([sys.executable, "-m", "fastnst.cli", "-q", "train", *cli_args(killed)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    step = 0
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if checkpoint.is_file():
            step = torch.load(checkpoint, weights_only=True)["step"]
            if step >= 8:
                proc.send_signal(signal.SIGKILL)
                break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert 8 <= step < 30
    assert not (tmp_path / "killed" / "model.safetensors").exists()

    # Only the run folder: the run's saved config says the rest.
    resumed = run_cli("train", "--output-dir", str(tmp_path / "killed"), "--resume", "-q")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == ""  # -q after the command is quiet too
    a = load_file(tmp_path / "straight" / "model.safetensors")
    b = load_file(tmp_path / "killed" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)


def test_sigterm_checkpoints_then_resume_finishes(shared_data: Path, tmp_path: Path) -> None:
    values = tiny_train_overrides(shared_data, tmp_path / "run", steps=400, checkpoint_every=3)
    proc = subprocess.Popen([sys.executable, "-m", "fastnst.cli", "-q", "train", *cli_args(values)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while not (tmp_path / "run" / "checkpoints" / "last.pt").is_file() and time.time() < deadline:
        time.sleep(0.05)  # the loop is running once the first checkpoint exists
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "checkpoint" in err and "--resume" in err
    step = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["step"]
    assert 0 < step < 400
    exported = export_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt", tmp_path / "partial")
    assert exported.is_file()
    done = run_cli("-q", "train", *cli_args({**values, "steps": step + 2}), "--resume")
    assert done.returncode == 0, done.stderr


def test_refuses_to_overwrite_or_resume_another_config(shared_data: Path, tmp_path: Path) -> None:
    values = tiny_train_overrides(shared_data, tmp_path / "run", steps=2)
    Trainer(load_config(None, values)).run()
    with pytest.raises(CheckpointError, match="already holds a run"):
        Trainer(load_config(None, values))
    with pytest.raises(CheckpointError, match="'seed' was 1"):
        Trainer(load_config(None, {**values, "seed": 2}), resume=True)


def test_resuming_with_more_steps_says_the_schedule_follows_the_new_length(shared_data: Path,
                                                                           tmp_path: Path) -> None:
    values = tiny_train_overrides(shared_data, tmp_path / "run", steps=2, schedule="cooldown")
    Trainer(load_config(None, values)).run()
    lines: list[str] = []
    Trainer(load_config(None, {**values, "steps": 3}), resume=True, log=lines.append).run()
    assert any("steps changed from 2 to 3" in line and "from step 3 it is the schedule of a 3-step run" in line
               for line in lines), lines
    constant = tiny_train_overrides(shared_data, tmp_path / "constant", steps=2, schedule="constant")
    Trainer(load_config(None, constant)).run()
    lines.clear()
    Trainer(load_config(None, {**constant, "steps": 3}), resume=True, log=lines.append).run()
    assert lines and not any("steps changed" in line for line in lines)  # a constant rate does not depend on it


@pytest.mark.ddp
def test_torchrun_two_cpu_processes(shared_data: Path, tmp_path: Path) -> None:
    values = tiny_train_overrides(shared_data, tmp_path / "ddp", steps=6, device="cpu")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
         "fastnst.cli", "-q", "train", *cli_args(values)],
        capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    payload = torch.load(tmp_path / "ddp" / "checkpoints" / "last.pt", weights_only=True)
    assert payload["step"] == 6
    assert not any(key.startswith("module.") for key in payload["model"])
    assert (tmp_path / "ddp" / "model.safetensors").is_file()


def _free_port() -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", 0))
        except OSError as exc:
            pytest.skip(f"cannot bind a local port for the rendezvous: {exc}")
        return sock.getsockname()[1]


@pytest.mark.ddp
def test_torchrun_two_nodes_rendezvous_and_resume(shared_data: Path, tmp_path: Path) -> None:
    """Two torchrun agents on this machine, as two nodes of one process each (c10d rendezvous, gloo): the run
    trains and saves a model, and a second launch resumes it from its checkpoint."""
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def launch(steps: int, *extra: str) -> None:
        values = tiny_train_overrides(shared_data, tmp_path / "multinode", steps=steps, device="cpu")
        agents = [subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
             "--node_rank", str(rank), "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}",
             "--rdzv_id", f"fastnst-test-{steps}", "-m", "fastnst.cli", "-q", "train", *cli_args(values), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env) for rank in (0, 1)]
        for agent in agents:
            _, err = agent.communicate(timeout=300)
            assert agent.returncode == 0, err[-2000:]

    launch(4)
    first = torch.load(tmp_path / "multinode" / "checkpoints" / "last.pt", weights_only=True)
    assert first["step"] == 4
    assert (tmp_path / "multinode" / "model.safetensors").is_file()
    launch(8, "--resume")
    resumed = torch.load(tmp_path / "multinode" / "checkpoints" / "last.pt", weights_only=True)
    assert resumed["step"] == 8
    assert not any(key.startswith("module.") for key in resumed["model"])
    assert any(not torch.equal(resumed["model"][key], first["model"][key]) for key in first["model"])
