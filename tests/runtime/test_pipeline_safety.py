"""``fastnst stylize`` and ``Model.stylize_paths`` never destroy or lose a user's data (issue #12).

Every case goes through the command line (one ``fastnst: error:`` line, exit 1) and through the Python API (a
FastNSTError), because both run the one file pipeline in :mod:`fastnst.runtime.pipeline`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import assert_one_clear_line
from PIL import Image

import fastnst
from fastnst.cli import main
from fastnst.runtime.pipeline import Job, Reporter
from fastnst.utils.errors import FastNSTError


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (links followed) by its relative path: what a refused run must leave alone."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


class Started(Reporter):
    def __init__(self) -> None:
        self.started: list[str] = []

    def job_started(self, job: Job, frames: int | None) -> None:
        self.started.append(job.source.name)


# ------------------------------------------------------------------------------------ output = an input


def _alias(kind: str, photo: Path, tmp_path: Path) -> Path:
    """An output path that is the photo itself, a symbolic link to it, or a hard link to it."""
    if kind == "same":
        return photo
    alias = tmp_path / f"{kind}.jpg"
    if kind == "symlink":
        alias.symlink_to(photo)
    else:
        os.link(photo, alias)
    return alias


@pytest.mark.parametrize("kind", ["same", "symlink", "hardlink"])
def test_output_that_is_the_input_is_refused(kind: str, tmp_path: Path, tiny_model: Path, photo: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    original = photo.read_bytes()
    target = _alias(kind, photo, tmp_path)
    code, _, err = run(capsys, "stylize", str(photo), "-m", str(tiny_model), "-o", str(target))
    assert_one_clear_line(code, err, str(photo), "(allow it with --overwrite)")
    assert photo.read_bytes() == original
    with pytest.raises(FastNSTError, match="photo.jpg") as refused:
        fastnst.load(tiny_model).stylize_file(photo, target)
    assert refused.value.setting == "overwrite"
    assert photo.read_bytes() == original and target.read_bytes() == original


def test_output_folder_holding_the_input_file_is_refused(tmp_path: Path, tiny_model: Path, photo: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(photo.parent)
    code, _, err = run(capsys, "stylize", str(photo), "-m", str(tiny_model), "-o", f"{photo.parent}/")
    assert_one_clear_line(code, err, "photo.jpg", "--overwrite")
    with pytest.raises(FastNSTError, match="photo.jpg"):
        fastnst.load(tiny_model).stylize_paths([photo], photo.parent)
    assert snapshot(photo.parent) == before


def test_overwrite_replaces_a_named_input_file(tmp_path: Path, tiny_model: Path, photo: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    original = photo.read_bytes()
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(original)
    assert run(capsys, "stylize", str(photo), "-m", str(tiny_model), "-o", str(photo), "--overwrite")[0] == 0
    assert photo.read_bytes() != original and Image.open(photo).size == (40, 30)
    assert fastnst.load(tiny_model).stylize_file(copy, copy, overwrite=True) == copy
    assert copy.read_bytes() != original


@pytest.mark.parametrize("overwrite", [False, True])
def test_folder_run_into_its_own_folder_never_overwrites_an_input(overwrite: bool, tmp_path: Path, tiny_model: Path,
                                                                  photo: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    Image.new("L", (17, 9), 90).save(photo.parent / "gray.png")
    before = snapshot(photo.parent)
    flag = ["--overwrite"] if overwrite else []
    for extra in ([], ["--format", "png"]):  # same name and format; or photo.jpg → photo.png beside gray.png
        code, _, err = run(capsys, "stylize", str(photo.parent), "-m", str(tiny_model), "-o", str(photo.parent),
                           *extra, *flag)
        assert_one_clear_line(code, err, "gray.png", "input")
        assert "--overwrite" not in err  # it would not help: a folder's files are never overwritten
        with pytest.raises(FastNSTError, match="gray.png"):
            fastnst.load(tiny_model).stylize_paths(photo.parent, photo.parent,
                                                   out_format=extra[-1] if extra else None, overwrite=overwrite)
    assert snapshot(photo.parent) == before


@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_folder_run_never_writes_through_a_link_to_an_input(kind: str, tmp_path: Path, tiny_model: Path,
                                                            photo: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    if kind == "symlink":  # the output folder is a link to the input folder
        out.symlink_to(photo.parent, target_is_directory=True)
    else:  # a result from an earlier run that is a hard link of the input
        out.mkdir()
        os.link(photo, out / "photo.jpg")
    original = photo.read_bytes()
    started = Started()
    code, _, err = run(capsys, "stylize", str(photo.parent), "-m", str(tiny_model), "-o", str(out))
    assert_one_clear_line(code, err, "photo.jpg")
    with pytest.raises(FastNSTError, match="photo.jpg"):
        fastnst.load(tiny_model).stylize_paths(photo.parent, out, progress=started)
    assert started.started == [] and photo.read_bytes() == original


# ------------------------------------------------------------------------------------ formats and clashes


def test_unwritable_input_formats_are_written_as_png(tmp_path: Path, tiny_model: Path, photo: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    Image.effect_noise((20, 16), 40).convert("P").save(photo.parent / "anim.gif")
    Image.effect_noise((18, 14), 40).convert("RGB").save(photo.parent / "pixels.ppm")
    Image.effect_noise((16, 12), 40).save(photo.parent / "gray.pgm")
    code, out, err = run(capsys, "stylize", str(photo.parent), "-m", str(tiny_model), "-o", str(tmp_path / "cli"))
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "cli").iterdir()) == ["anim.png", "gray.png", "photo.jpg",
                                                                    "pixels.png"]
    assert Image.open(tmp_path / "cli" / "pixels.png").size == (18, 14)
    notes = [line for line in (out + err).splitlines() if "PNG" in line]
    assert len(notes) == 1 and "3" in notes[0] and ".gif" in notes[0] and ".pgm" in notes[0], out + err

    summary = fastnst.load(tiny_model).stylize_paths(photo.parent, tmp_path / "api")
    assert summary.ok and sorted(job.source.name for job in summary.as_png) == ["anim.gif", "gray.pgm", "pixels.ppm"]
    assert sorted(path.name for path in summary.written) == ["anim.png", "gray.png", "photo.jpg", "pixels.png"]
    for path in summary.written:  # the same pixels as the command line, and nothing else left in the folder
        assert path.read_bytes() == (tmp_path / "cli" / path.name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "api").iterdir()) == sorted(p.name for p in summary.written)
    assert fastnst.load(tiny_model).stylize_file(photo.parent / "anim.gif", tmp_path / "one") == \
        tmp_path / "one" / "anim.png"


def test_clashing_outputs_name_the_inputs_and_the_output(tmp_path: Path, tiny_model: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for suffix in (".bmp", ".tiff", ".webp"):
        Image.effect_noise((12, 10), 40).convert("RGB").save(folder / f"image{suffix}")
    out = tmp_path / "out"
    code, _, err = run(capsys, "stylize", str(folder), "-m", str(tiny_model), "-o", str(out), "--format", "png")
    assert_one_clear_line(code, err, "image.bmp", "image.tiff", "image.webp", str(out / "image.png"))
    with pytest.raises(FastNSTError, match=r"image\.bmp.*image\.tiff.*image\.webp.*image\.png"):
        fastnst.load(tiny_model).stylize_paths(folder, out, out_format="png")
    assert not out.exists()


# ------------------------------------------------------------------------------------ the output folder


@pytest.mark.parametrize("output", ["e4.png", "clip.mp4"])
def test_folder_input_with_a_file_name_as_output_is_refused(output: str, tmp_path: Path, tiny_model: Path,
                                                            photo: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / output
    code, _, err = run(capsys, "stylize", str(photo.parent), "-m", str(tiny_model), "-o", str(target))
    assert_one_clear_line(code, err, output, "folder")
    with pytest.raises(FastNSTError, match="folder"):
        fastnst.load(tiny_model).stylize_paths(photo.parent, target)
    assert not target.exists()
    assert run(capsys, "stylize", str(photo.parent), "-m", str(tiny_model), "-o", f"{target}/")[0] == 0  # explicit
    assert (target / "photo.jpg").is_file()


def test_format_that_contradicts_a_single_output_file_is_refused(tmp_path: Path, tiny_model: Path, photo: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out.png"
    code, _, err = run(capsys, "stylize", str(photo), "-m", str(tiny_model), "-o", str(target), "--format", "webp")
    assert_one_clear_line(code, err, "out.png", "webp")
    with pytest.raises(FastNSTError, match="webp"):
        fastnst.load(tiny_model).stylize_paths(photo, target, out_format="webp")
    assert not target.exists()
    for name, fmt in (("out.webp", "webp"), ("out.jpeg", "jpg"), ("out.tiff", "tif")):  # agreeing: honoured
        assert run(capsys, "stylize", str(photo), "-m", str(tiny_model), "-o", str(tmp_path / name),
                   "--format", fmt)[0] == 0
        assert Image.open(tmp_path / name).format == {"webp": "WEBP", "jpg": "JPEG", "tif": "TIFF"}[fmt]


def test_read_only_output_folder_is_refused_before_any_work(tmp_path: Path, tiny_model: Path, photo: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root, which ignores folder modes: "
                        "test_uncreatable_output_folder_is_refused_before_any_work covers this")
        for output in (locked, locked / "sub"):  # an existing read-only folder, and one that cannot be created
            code, _, err = run(capsys, "stylize", str(photo.parent), "-m", str(tiny_model), "-o", str(output))
            assert_one_clear_line(code, err, str(output))
            started = Started()
            with pytest.raises(FastNSTError, match="locked"):
                fastnst.load(tiny_model).stylize_paths(photo.parent, output, progress=started)
            assert started.started == []
        assert list(locked.iterdir()) == []  # the probe file is gone too
    finally:
        locked.chmod(0o755)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc, where no one can create a file")
@pytest.mark.parametrize("existing", [True, False])
def test_uncreatable_output_folder_is_refused_before_any_work(existing: bool, tmp_path: Path, tiny_model: Path,
                                                              photo: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """The root-proof twin of the read-only test: even root can create no file or folder at the top of /proc,
    an existing folder (the probe file fails) and one that cannot be made (mkdir fails)."""
    Image.new("L", (17, 9), 90).save(photo.parent / "gray.png")
    output = Path("/proc") if existing else Path("/proc") / f"fastnst-test-{os.getpid()}" / "out"
    code, out, err = run(capsys, "stylize", str(photo.parent), "-m", str(tiny_model), "-o", str(output))
    assert_one_clear_line(code, err, f"output folder {output}")
    assert out == ""
    started = Started()
    with pytest.raises(FastNSTError, match="output folder"):
        fastnst.load(tiny_model).stylize_paths(photo.parent, output, progress=started)
    assert started.started == []
