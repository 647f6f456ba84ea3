"""The command line as a user meets it: every bad input gives one clear line, exit status 1, no output file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from fastnst.cli import main
from fastnst.model.files import save_model
from fastnst.model.transformer import TransformerNet, TransformerSpec

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    folder = tmp_path / "tiny_model"
    save_model(TransformerNet(TransformerSpec(width=8, residual_blocks=1)), folder, {"style_name": "tiny"})
    return folder


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "photo.jpg"
    path.parent.mkdir()
    Image.effect_noise((40, 30), 50).convert("RGB").save(path, quality=90)
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    err = capsys.readouterr().err
    return code, err


def assert_one_clear_line(code: int, err: str, *words: str) -> None:
    assert code == 1, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("fastnst: error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_stylize_one_file_and_folder(tmp_path: Path, tiny_model: Path, photo: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.png"
    assert run(capsys, "stylize", str(photo), "-m", str(tiny_model), "-o", str(out))[0] == 0
    assert Image.open(out).size == (40, 30)
    Image.new("L", (17, 9)).save(photo.parent / "gray.png")
    assert run(capsys, "stylize", str(photo.parent), "-m", str(tiny_model), "-o", str(tmp_path / "dir"),
               "--format", "webp")[0] == 0
    assert sorted(p.name for p in (tmp_path / "dir").iterdir()) == ["gray.webp", "photo.webp"]
    assert Image.open(tmp_path / "dir" / "gray.webp").size == (17, 9)


@pytest.mark.parametrize("kind, words", [
    ("missing", ["does not exist"]),
    ("text", ["not an image"]),
    ("zero", ["empty"]),
    ("truncated", ["truncated"]),
])
def test_stylize_bad_inputs(kind: str, words: list[str], tmp_path: Path, tiny_model: Path, photo: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / f"bad_{kind}.jpg"
    if kind == "text":
        bad.write_text("hello, I am not a picture\n")
    elif kind == "zero":
        bad.write_bytes(b"")
    elif kind == "truncated":
        bad.write_bytes(photo.read_bytes()[: len(photo.read_bytes()) // 2])
    out = tmp_path / "out.jpg"
    code, err = run(capsys, "stylize", str(bad), "-m", str(tiny_model), "-o", str(out))
    assert_one_clear_line(code, err, *words)
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_decompression_bomb_cap(tmp_path: Path, tiny_model: Path, photo: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.jpg"
    code, err = run(capsys, "stylize", str(photo), "-m", str(tiny_model), "-o", str(out), "--max-pixels", "100")
    assert_one_clear_line(code, err, "1200 pixels", "over the limit of 100", "(raise it with --max-pixels)")
    assert not out.exists()


def test_tampered_or_unknown_model(tmp_path: Path, tiny_model: Path, photo: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    weights = tiny_model / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[200] ^= 0x55
    weights.write_bytes(bytes(data))
    out = tmp_path / "out.jpg"
    assert_one_clear_line(*run(capsys, "stylize", str(photo), "-m", str(tiny_model), "-o", str(out)), "SHA-256")
    assert_one_clear_line(*run(capsys, "stylize", str(photo), "-m", "no_such_model", "-o", str(out)), "not found")
    assert not out.exists()


def test_unknown_output_extension(tmp_path: Path, tiny_model: Path, photo: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "stylize", str(photo), "-m", str(tiny_model), "-o", str(tmp_path / "out.xyz"))
    assert code == 1 and "Traceback" not in err and "out.xyz" in err


def test_train_empty_dataset(tmp_path: Path, photo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    code, err = run(capsys, "-q", "train", "--style-image", str(photo), "--data-dir", str(tmp_path / "empty"),
                    "--output-dir", str(tmp_path / "run"))
    assert_one_clear_line(code, err, "holds no images")


def test_train_unknown_toml_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "style.toml"
    config.write_text('style_image = "s.jpg"\ndata_dir = "d"\nstyle_wieght = 1e9\n')
    code, err = run(capsys, "train", "-c", str(config))
    assert_one_clear_line(code, err, "style.toml", "unknown key 'style_wieght'")


def test_train_missing_vgg_weights(tmp_path: Path, photo: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("FASTNST_VGG_WEIGHTS", raising=False)
    monkeypatch.setenv("FASTNST_OFFLINE", "1")
    code, err = run(capsys, "-q", "train", "--style-image", str(photo), "--data-dir", str(photo.parent),
                    "--output-dir", str(tmp_path / "run"))
    assert_one_clear_line(code, err, "no VGG16 weights found", "FASTNST_VGG_WEIGHTS")


def test_train_resume_of_damaged_or_foreign_checkpoint(tmp_path: Path, photo: Path, shared_data: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    base = ["-q", "train", "--style-image", str(photo), "--data-dir", str(photo.parent), "--width", "8",
            "--residual-blocks", "1", "--image-size", "32", "--batch-size", "1", "--steps", "2",
            "--num-workers", "0", "--no-tensorboard", "--output-dir", str(tmp_path / "run")]
    assert run(capsys, *base)[0] == 0
    code, err = run(capsys, *base[:-2], "--output-dir", str(tmp_path / "run"), "--width", "16", "--resume")
    assert_one_clear_line(code, err, "cannot resume", "'width' was 8")
    (tmp_path / "run" / "checkpoints" / "last.pt").write_bytes(b"garbage" * 100)
    code, err = run(capsys, *base, "--resume")
    assert_one_clear_line(code, err, "damaged or not a fastnst checkpoint")


def test_real_process_exit_status_and_no_traceback(tmp_path: Path, tiny_model: Path) -> None:
    """The installed entry point, as a user runs it."""
    proc = subprocess.run([sys.executable, "-m", "fastnst.cli", "stylize", str(tmp_path / "nope.jpg"), "-m",
                           str(tiny_model), "-o", str(tmp_path / "o.jpg")], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("fastnst: error:") and "does not exist" in proc.stderr


def test_scripts_are_thin_wrappers(tmp_path: Path, tiny_model: Path, photo: Path) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "stylize.py"), str(photo), "-m", str(tiny_model),
                           "-o", str(tmp_path / "s.png")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "s.png").is_file()
