"""Checkpoint integrity: damaged checkpoints are refused, --resume falls back to previous.pt exactly, and a full
disk ends a run with one line and the previous checkpoint intact."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import tiny_train_overrides

from fastnst.cli import main
from fastnst.training.checkpoint import load_checkpoint, save_checkpoint
from fastnst.training.config import load_config
from fastnst.training.trainer import StepReport, Trainer
from fastnst.utils import atomic
from fastnst.utils.errors import CheckpointError

REPO = Path(__file__).resolve().parents[2]


def tiny_run(shared: Path, out: Path, **extra: object) -> dict[str, object]:
    """The training tests' tiny run, 12 steps by default."""
    return tiny_train_overrides(shared, out, **{"steps": 12, **extra})


def flip_inside_record(path: Path, record_suffix: str = "data/0", count: int = 64) -> None:
    """Overwrite ``count`` bytes in the middle of a zip record's data (what the issue's reproduction did)."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(record_suffix))
    data = bytearray(path.read_bytes())
    name_len, extra_len = (int.from_bytes(data[info.header_offset + k:info.header_offset + k + 2], "little")
                           for k in (26, 28))
    start = info.header_offset + 30 + name_len + extra_len + info.file_size // 2 - count // 2
    for index in range(start, start + min(count, info.file_size)):
        data[index] ^= 0x5A
    path.write_bytes(bytes(data))


def test_flipped_bytes_in_a_tensor_record_are_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "last.pt", {"model": {"w": torch.arange(4096, dtype=torch.float32)}})
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.arange(4096, dtype=torch.float32))
    flip_inside_record(path)
    torch.load(path, weights_only=True)  # torch itself reads it without complaint
    with pytest.raises(CheckpointError, match=r"last\.pt is damaged: its record .*data/0 fails its CRC-32") as caught:
        load_checkpoint(path)
    assert "\n" not in str(caught.value)


def test_truncated_and_foreign_checkpoints_are_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "last.pt", {"step": 3})
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="not a complete zip archive"):
        load_checkpoint(path)


class _CallsSystem:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_malicious_checkpoint_is_refused_without_torch_advice(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": 1, "x": _CallsSystem(marker)}, evil)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(evil)
    message = str(caught.value)
    assert "evil.pt" in message and "system" in message
    assert "weights_only" not in message and "False" not in message and "\n" not in message
    assert not marker.exists()


def test_rotation_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    last, previous = tmp_path / "last.pt", tmp_path / "previous.pt"
    save_checkpoint(last, {"step": 1}, previous=previous)
    assert not previous.exists()
    save_checkpoint(last, {"step": 2}, previous=previous)
    save_checkpoint(last, {"step": 3}, previous=previous)
    assert load_checkpoint(last)["step"] == 3 and load_checkpoint(previous)["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "previous.pt"]


class Killed(Exception):
    """Stands in for SIGKILL right after a checkpoint."""


def stop_at(step: int) -> Any:
    def on_step(report: StepReport) -> None:
        if report.step == step:
            raise Killed

    return on_step


def test_resume_falls_back_to_previous_and_ends_exactly_as_a_straight_run(shared_data: Path,
                                                                           tmp_path: Path) -> None:
    straight = Trainer(load_config(None, tiny_run(shared_data, tmp_path / "straight"))).run()

    values = tiny_run(shared_data, tmp_path / "run")
    with pytest.raises(Killed):
        Trainer(load_config(None, values), on_step=stop_at(8)).run()
    checkpoints = tmp_path / "run" / "checkpoints"
    assert torch.load(checkpoints / "last.pt", weights_only=True)["step"] == 8
    assert torch.load(checkpoints / "previous.pt", weights_only=True)["step"] == 4
    flip_inside_record(checkpoints / "last.pt", "data/0", count=1024)

    lines: list[str] = []
    trainer = Trainer(load_config(None, values), resume=True, log=lines.append)
    fallback = [line for line in lines if "previous.pt" in line and "last.pt" in line]
    assert len(fallback) == 1 and "CRC-32" in fallback[0] and "falling back" in fallback[0], lines
    assert trainer.step == 4
    resumed = trainer.run()
    assert (checkpoints / "last.pt.damaged").is_file()  # kept, and never rotated into previous.pt
    assert load_checkpoint(checkpoints / "previous.pt")["step"] == 8

    from safetensors.torch import load_file

    a, b = load_file(straight.model_path), load_file(resumed.model_path)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)


def test_damaged_last_without_previous_is_refused(shared_data: Path, tmp_path: Path) -> None:
    values = tiny_run(shared_data, tmp_path / "run", steps=4)
    Trainer(load_config(None, values)).run()
    checkpoints = tmp_path / "run" / "checkpoints"
    assert not (checkpoints / "previous.pt").exists()
    flip_inside_record(checkpoints / "last.pt")
    with pytest.raises(CheckpointError, match="CRC-32"):
        Trainer(load_config(None, {**values, "steps": 8}), resume=True)


def test_full_disk_ends_training_with_one_line_and_keeps_the_checkpoint(
        shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The disk fills up while last.pt is written: fsync reports ENOSPC (as delayed-allocation file systems do)."""
    values = tiny_run(shared_data, tmp_path / "run", steps=4)
    Trainer(load_config(None, values)).run()
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    before = last.read_bytes()
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if Path(os.readlink(f"/proc/self/fd/{fd}")).name.startswith(".last."):  # previous.pt is a link: no space
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    capsys.readouterr()
    code = main(["-q", "train", "--output-dir", str(tmp_path / "run"), "--resume", "--steps", "8"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip().splitlines() == [f"fastnst: error: cannot write {last}: no space left on device"]
    assert last.read_bytes() == before and load_checkpoint(last)["step"] == 4


def _can_mount_tmpfs(where: Path) -> str | None:
    if not shutil.which("unshare"):
        return "no unshare command"
    probe = subprocess.run(["unshare", "-rm", "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
                           capture_output=True, text=True)
    return None if probe.returncode == 0 else f"cannot mount a tmpfs in a user namespace ({probe.stderr.strip()})"


def test_full_disk_on_a_real_tmpfs(shared_data: Path, tmp_path: Path) -> None:
    """A real full file system (a small tmpfs in an unprivileged user+mount namespace): one line, exit 1, the
    previous checkpoint intact."""
    disk = tmp_path / "disk"
    disk.mkdir()
    reason = _can_mount_tmpfs(disk)
    if reason:
        pytest.skip(reason)
    values = tiny_run(shared_data, disk / "run", steps=4)
    args = [f"--{key.replace('_', '-')}={value}" for key, value in values.items() if not isinstance(value, bool)]
    args += ["--no-tensorboard"]
    script = textwrap.dedent(f"""
        import os, subprocess, sys
        from pathlib import Path
        disk = Path({str(disk)!r})
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], check=True)
        from fastnst.cli import main
        assert main(["-q", "train", *{args!r}]) == 0
        stats = os.statvfs(disk)
        free = stats.f_bavail * stats.f_frsize
        (disk / "filler").write_bytes(bytes(free - 16 * 1024))  # room for config.toml, not for a checkpoint
        last = disk / "run" / "checkpoints" / "last.pt"
        before = last.read_bytes()
        sys.stderr.flush()
        print("---", file=sys.stderr, flush=True)
        code = main(["-q", "train", "--output-dir", str(disk / "run"), "--resume", "--steps", "8"])
        from fastnst.training.checkpoint import load_checkpoint
        print(code, last.read_bytes() == before, load_checkpoint(last)["step"])
    """)
    done = subprocess.run(["unshare", "-rm", sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "True", "4"], done.stdout
    err = done.stderr.split("---\n", 1)[1]
    last = disk / "run" / "checkpoints" / "last.pt"
    assert err.strip().splitlines() == [f"fastnst: error: cannot write {last}: no space left on device"]
