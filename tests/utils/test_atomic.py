"""The atomic write helper every output goes through: one file mode for all outputs, and a full disk as one line."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from fastnst.model.files import METADATA_FILE, WEIGHTS_FILE, save_model
from fastnst.model.transformer import TransformerNet, TransformerSpec
from fastnst.training.checkpoint import save_checkpoint
from fastnst.utils import atomic
from fastnst.utils.atomic import atomic_path, atomic_write_bytes, atomic_write_text, current_umask
from fastnst.utils.errors import OutputError
from fastnst.utils.images import save_image


@pytest.fixture(params=[0o022, 0o027])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_umask_is_read_without_changing_it(umask: int) -> None:
    assert current_umask() == umask
    assert os.umask(umask) == umask  # unchanged by the read


def test_every_output_gets_the_mode_open_would_give(tmp_path: Path, umask: int) -> None:
    """Images, checkpoints, model weights (safetensors recreates its file) and JSON all end 0o666 & ~umask."""
    expected = 0o666 & ~umask
    reference = tmp_path / "plain.txt"
    reference.write_text("x")  # what an ordinary open() makes under this umask
    assert mode(reference) == expected

    image = save_image(Image.new("RGB", (8, 8)), tmp_path / "out.png")
    checkpoint = save_checkpoint(tmp_path / "ckpt" / "last.pt", {"step": 1})
    save_checkpoint(tmp_path / "ckpt" / "last.pt", {"step": 2}, previous=tmp_path / "ckpt" / "previous.pt")
    weights = save_model(TransformerNet(TransformerSpec(width=8, residual_blocks=1)), tmp_path / "m", {})
    atomic_write_text(tmp_path / "notes.txt", "y")
    outputs = [image, checkpoint, tmp_path / "ckpt" / "previous.pt", weights, tmp_path / "m" / METADATA_FILE,
               tmp_path / "notes.txt"]
    assert {path.name: oct(mode(path)) for path in outputs} == {path.name: oct(expected) for path in outputs}
    assert weights.name == WEIGHTS_FILE


def test_mode_is_set_after_a_writer_that_recreates_the_file(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "w.bin") as tmp:
        tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)  # as safetensors does
        os.close(fd)
    assert mode(tmp_path / "w.bin") == 0o666 & ~current_umask()


def test_full_disk_is_one_line_naming_the_file_and_leaves_the_old_one(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def full(fd: int) -> None:  # where a file system with delayed allocation reports a full disk
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(OutputError) as caught:
        atomic_write_bytes(target, b"new")
    assert str(caught.value) == f"cannot write {target}: no space left on device"
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no temporary file left behind


def test_full_disk_inside_a_library_writer_is_the_same_error(tmp_path: Path) -> None:
    with (pytest.raises(OutputError, match=r"cannot write .*img\.png: no space left on device"),
          atomic_path(tmp_path / "img.png")):
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(PermissionError), atomic_path(tmp_path / "img.png"):  # other failures keep their type
        raise PermissionError(errno.EACCES, "denied")
    assert not list(tmp_path.iterdir())


def test_leftover_temporaries_of_a_killed_writer_are_removed_and_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "photo1.jpg"
    writers = [atomic_path(target) for _ in range(2)]  # entered and never left, as by a killed writer
    left = [writer.__enter__() for writer in writers]
    keep = [tmp_path / name for name in ("photo1.jpg", ".photo1.jpg", ".photo1.notours.tmp.jpg",
                                          ".photo12.abcdefgh.tmp.jpg", ".photo1.abcdefgh.tmp.png")]
    for path in keep:
        path.write_bytes(b"x")
    assert all(path.is_file() for path in left)
    assert sorted(atomic.remove_leftover_temporaries([target, tmp_path / "photo2.jpg"])) == sorted(left)
    assert sorted(tmp_path.iterdir()) == sorted(keep)
