"""The command line as a user meets it: every bad input gives one clear line, exit status 1, no output file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_one_clear_line
from PIL import Image

from fastnst.cli import main

REPO = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    err = capsys.readouterr().err
    return code, err


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


@pytest.mark.parametrize("argv", [
    ["-q", "train"], ["train", "-q"], ["train", "--quiet"], ["bench", "-q"], ["serve", "-q"],
    ["export", "-m", "m", "-q"], ["optimize", "--content", "c", "--style", "s", "-o", "o", "-q"],
    ["stylize", "photo.jpg", "-m", "m", "-o", "out.jpg", "-q"],
])
def test_quiet_before_or_after_the_command(argv: list[str]) -> None:
    from fastnst.cli import build_parser

    assert build_parser().parse_args(argv).quiet is True
    assert build_parser().parse_args([a for a in argv if a not in ("-q", "--quiet")]).quiet is False


def test_scripts_pass_quiet_and_every_argument_through(tmp_path: Path, tiny_model: Path, photo: Path) -> None:
    def script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(REPO / "scripts" / name), *args], capture_output=True, text=True,
                              timeout=300)

    loud = script("stylize.py", str(photo), "-m", str(tiny_model), "-o", str(tmp_path / "a.png"))
    quiet = script("stylize.py", str(photo), "-m", str(tiny_model), "-o", str(tmp_path / "b.png"), "-q")
    assert loud.returncode == quiet.returncode == 0, loud.stderr + quiet.stderr
    assert "wrote" in loud.stdout and quiet.stdout == ""
    assert (tmp_path / "b.png").is_file()
    resumed = script("train.py", "--output-dir", str(tmp_path / "no_run"), "--resume", "-q")
    assert resumed.returncode == 1 and "cannot resume" in resumed.stderr and "Traceback" not in resumed.stderr
    exported = script("export_onnx.py", "-m", str(tmp_path / "no_model"), "-q")
    assert exported.returncode == 1 and "no_model" in exported.stderr and "Traceback" not in exported.stderr


def test_train_resume_without_a_run_to_continue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "train", "-q", "--resume", "--output-dir", str(tmp_path / "missing"))
    assert_one_clear_line(code, err, "cannot resume", "missing", "does not exist")
    (tmp_path / "empty_run").mkdir()
    code, err = run(capsys, "train", "--resume", "--output-dir", str(tmp_path / "empty_run"))
    assert_one_clear_line(code, err, "cannot resume", "checkpoints/config.toml")
    code, err = run(capsys, "train", "--resume")
    assert_one_clear_line(code, err, "--resume needs", "--output-dir")


def git_repo_with(tmp_path: Path, name: str) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / name).write_text("committed results\n")
    subprocess.run(["git", "-C", str(repo), "add", name], check=True)
    return repo


def test_bench_refuses_to_overwrite_a_tracked_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = git_repo_with(tmp_path, "results.json")
    # A missing model makes the benchmark fail fast should the check ever let it start.
    code, err = run(capsys, "bench", "-q", "-m", str(tmp_path / "no_model"), "-o", str(repo / "results.json"))
    assert_one_clear_line(code, err, "results.json", "tracked by git")
    assert (repo / "results.json").read_text() == "committed results\n"


def test_bench_output_outside_tracked_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastnst.commands.bench import default_output, tracked_by_git

    repo = git_repo_with(tmp_path, "results.json")
    assert tracked_by_git(repo / "results.json")
    assert not tracked_by_git(repo / "new.json") and not tracked_by_git(repo / "no_folder" / "x.json")
    assert not tracked_by_git(tmp_path / "outside_any_repo.json")
    monkeypatch.chdir(repo)
    default = default_output()
    assert default.parent == Path(".") and default.name.startswith("fastnst-bench-") and default.suffix == ".json"
    assert not tracked_by_git(default)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert not tracked_by_git(repo / "results.json")  # no git: no check


@pytest.mark.parametrize("blocked", [("fastapi", "uvicorn", "starlette")])
def test_cli_works_without_the_server_dependencies(blocked: tuple[str, ...]) -> None:
    """GPU images used for training have no FastAPI: every other command works, serve says what to install."""
    code = ("import sys\n"
            + "".join(f"sys.modules[{name!r}] = None\n" for name in blocked)
            + "from fastnst.cli import main\n"
            "sys.argv = ['fastnst', 'train', '--help']\n"
            "sys.exit(main())\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--tv-weight" in result.stdout
    serve = code.replace("'train', '--help'", "'serve', '--models', 'models'")
    served = subprocess.run([sys.executable, "-c", serve], capture_output=True, text=True, cwd=REPO, timeout=120,
                            check=False)
    assert served.returncode == 1, served.stderr[-2000:]
    assert 'pip install "fastnst[serve]"' in served.stderr and "Traceback" not in served.stderr
