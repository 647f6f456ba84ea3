"""Batch stylization on Ray Data: ``fastnst stylize --ray`` writes a local run's files byte for byte, resumes with
``--skip-existing``, survives a killed actor, and ``stylize_dataset`` gives ``Model.stylize``'s pixels.

All Ray tests share the session's one local instance (``ray_instance`` in tests/conftest.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, assert_one_clear_line, make_image
from PIL import Image

import fastnst
from fastnst.cli import main


def files_under(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (hidden ones too: a temporary file left behind must show), by relative path."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def stylize_locally(photos: Path, model: Path, out: Path) -> dict[str, bytes]:
    code = main(["-q", "stylize", str(photos), "-m", str(model), "-o", str(out), "--device", "cpu"])
    assert code in (0, 1)
    return files_under(out)


@pytest.mark.ray
def test_cli_on_ray_writes_the_local_files_and_reports_a_bad_one(ray_instance, tmp_path: Path, tiny_model: Path,
                                                                   photo_dir: Path) -> None:
    (photo_dir / "broken.jpg").write_bytes(b"not a picture")
    make_image(photo_dir / "nested" / "flat.png", (50, 34))
    expected = stylize_locally(photo_dir, tiny_model, tmp_path / "local")
    address = ray_instance.get_runtime_context().gcs_address
    done = subprocess.run([sys.executable, "-m", "fastnst.cli", "stylize", str(photo_dir), "-m", str(tiny_model),
                           "-o", str(tmp_path / "ray"), "--device", "cpu", "--ray", "--address", address,
                           "--workers", "2"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "fastnst: skipped:" in done.stderr and "broken.jpg" in done.stderr, done.stderr[-3000:]
    assert "fastnst: error: 1 of 8 image(s) could not be stylized" in done.stderr
    assert "Traceback" not in done.stderr
    written = files_under(tmp_path / "ray")
    assert len(expected) == 7 and "broken.jpg" not in expected
    assert written.keys() == expected.keys()
    assert written == expected  # byte-identical: the actors run the local pipeline's run_job


@pytest.mark.ray
def test_skip_existing_resumes_on_ray_and_locally(ray_instance, tmp_path: Path, tiny_model: Path, photo_dir: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    args = ["stylize", str(photo_dir), "-m", str(tiny_model), "-o", str(out), "--device", "cpu"]
    assert main([*args, "--ray", "--workers", "2"]) == 0
    first = {path: path.stat() for path in out.rglob("*.jpg")}
    assert len(first) == 6
    capsys.readouterr()

    assert main([*args, "--ray", "--skip-existing"]) == 0  # everything is there: nothing is written again
    assert "skipped 6 input(s) whose output already exists" in capsys.readouterr().out
    for path, stat in first.items():
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)

    redo = sorted(first)[2]
    expected = redo.read_bytes()
    redo.unlink()  # the API's way to the same job
    summary = fastnst.load(tiny_model, device="cpu").stylize_paths_on_ray(photo_dir, out, skip_existing=True)
    assert summary.ok and summary.written == [redo] and len(summary.skipped) == 5
    assert redo.read_bytes() == expected
    for path, stat in first.items():  # the others were not touched; the removed one is a new file (whose inode
        # number the file system may reuse, so its time tells it apart)
        unchanged = (path.stat().st_ino, path.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
        assert unchanged == (path != redo)

    redo.unlink()  # the same without Ray
    assert main([*args, "--skip-existing"]) == 0
    assert "skipped 5 input(s)" in capsys.readouterr().out
    assert redo.read_bytes() == expected
    assert main([*args, "--workers", "2"]) == 1
    assert "--workers only apply with --ray" in capsys.readouterr().err


def file_job_actors() -> dict[str, dict]:
    """The file-job actors Ray knows, by actor id, from the GCS (no dashboard needed): state, pid, restarts."""
    from ray._private import state

    return {actor_id: info for actor_id, info in state.actors().items()
            if "_FileJobRunner" in info.get("ActorClassName", "")}


@pytest.mark.ray
def test_a_killed_actor_is_replaced_and_every_output_written_once(ray_instance, tmp_path: Path, tiny_model: Path,
                                                                   photo_dir: Path) -> None:
    from fastnst.batch.ray_data import JOB_DELAY_ENV, stylize_paths_on_ray
    from fastnst.runtime.pipeline import StylizeOptions

    expected = stylize_locally(photo_dir, tiny_model, tmp_path / "local")
    out = tmp_path / "ray"
    result: dict[str, object] = {}

    def run() -> None:
        try:  # each job waits 2 s in its actor first, so the kill below lands inside a job
            result["summary"] = stylize_paths_on_ray(
                tiny_model, [photo_dir], out, options=StylizeOptions(), device="cpu", workers=2,
                map_options={"runtime_env": {"env_vars": {JOB_DELAY_ENV: "2"}}})
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            result["error"] = exc

    earlier = set(file_job_actors())  # pools of earlier tests, perhaps still being stopped
    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 240
    while not any(out.rglob("*.jpg")) and time.monotonic() < deadline and worker.is_alive():
        time.sleep(0.1)
    # One job is done, so both actors of this pool are inside their next job's wait (or its work).
    alive = {actor_id: info for actor_id, info in file_job_actors().items()
             if actor_id not in earlier and info["State"] == "ALIVE" and info["Pid"]}
    assert alive, "no live actor of this job found"
    assert len(list(out.rglob("*.jpg"))) < 6, "every job was over before the kill"
    victim, info = next(iter(alive.items()))
    os.kill(info["Pid"], signal.SIGKILL)
    worker.join(timeout=300)
    assert not worker.is_alive()
    assert "error" not in result, result.get("error")
    summary = result["summary"]
    assert summary.ok and len(summary.written) == 6
    assert files_under(out) == expected  # every output once, complete, and no temporary file left behind
    assert file_job_actors()[victim]["NumRestarts"] >= 1  # Ray replaced the killed actor and retried its batch


@pytest.mark.ray
def test_stylize_dataset_gives_model_stylize_pixels(ray_instance, tiny_model: Path) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (30 + 6 * index, 40, 3), dtype=np.uint8) for index in range(3)]
    images.append(rng.integers(0, 256, (24, 28, 4), dtype=np.uint8))  # transparency is kept
    dataset = ray_instance.data.from_items([{"image": image, "id": index} for index, image in enumerate(images)])
    styled = fastnst.stylize_dataset(dataset, tiny_model, strength=0.7, margin=8, workers=2, batch_size=2,
                                     device="cpu")
    rows = sorted(styled.take_all(), key=lambda row: row["id"])
    model = fastnst.load(tiny_model, device="cpu")
    assert [row["id"] for row in rows] == [0, 1, 2, 3]
    for row, image in zip(rows, images, strict=True):
        expected = np.asarray(model.stylize(image, strength=0.7, margin=8))
        assert row["image"].shape == image.shape
        assert np.array_equal(row["image"], expected)
        assert not np.array_equal(row["image"], image)


def test_without_ray_one_line_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    photo = make_image(tmp_path / "in" / "photo.png")
    code = main(["stylize", str(photo), "-m", str(tiny_model), "-o", str(tmp_path / "out" / "x.png"), "--ray"])
    assert_one_clear_line(code, capsys.readouterr().err, "--ray needs Ray", 'pip install "fastnst[ray]"')
    assert not (tmp_path / "out").exists()  # refused before anything was planned or written
    with pytest.raises(fastnst.FastNSTError, match=r'stylize_dataset needs Ray.*pip install "fastnst\[ray\]"'):
        fastnst.stylize_dataset(object(), tiny_model)


def test_dataset_stylizer_refuses_what_is_no_image(tiny_model: Path) -> None:
    """The actor's step, run here without Ray: a wrong column or array is a one-line ImageError."""
    from fastnst.batch.ray_data import _DatasetStylizer
    from fastnst.runtime.pipeline import StylizeOptions
    from fastnst.utils.errors import ImageError

    step = _DatasetStylizer(options=StylizeOptions(), column="image", model=str(tiny_model), backend="auto",
                            precision="auto", device="cpu", compile=False, threads=1)
    grey = np.full((20, 24), 128, dtype=np.uint8)
    assert step({"image": np.stack([grey])})["image"].shape == (1, 20, 24, 3)
    with pytest.raises(ImageError, match="no column 'image'"):
        step({"pixels": np.stack([grey])})
    with pytest.raises(ImageError, match="uint8 images"):
        step({"image": np.zeros((1, 8, 8, 3), dtype=np.float32)})
    assert isinstance(Image.fromarray(step({"image": np.stack([grey])})["image"][0]), Image.Image)
