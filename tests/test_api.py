"""The Python front door: ``import fastnst`` is cheap, and the API writes the CLI's pixels for the same options."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fastnst
from fastnst.cli import main
from fastnst.runtime.pipeline import Job, Reporter
from fastnst.runtime.select import have_onnxruntime
from fastnst.utils.errors import ConfigError, FastNSTError, ImageError

REPO = Path(__file__).resolve().parents[1]
STARRY = REPO / "models" / "starry_night"


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "photo.jpg"
    path.parent.mkdir()
    Image.effect_noise((70, 50), 60).convert("RGB").save(path, quality=90)
    return path


def cli_png(tmp_path: Path, source: Path, model: Path, *flags: str) -> bytes:
    target = tmp_path / "cli.png"
    assert main(["-q", "stylize", str(source), "-m", str(model), "-o", str(target), "--device", "cpu", *flags]) == 0
    return target.read_bytes()


def api_png(tmp_path: Path, image: Image.Image) -> bytes:
    target = tmp_path / "api.png"
    image.save(target)
    return target.read_bytes()


def test_import_does_not_load_torch() -> None:
    code = ("import sys, fastnst; assert 'torch' not in sys.modules, 'torch imported'; "
            "print(fastnst.__version__, sorted(set(fastnst.__all__) - set(dir(fastnst))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [fastnst.__version__, "[]"]


def test_lazy_names() -> None:
    from fastnst.api import Model, load
    from fastnst.utils.errors import FastNSTError as Base

    assert fastnst.load is load and fastnst.Model is Model and fastnst.FastNSTError is Base
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        fastnst.nope  # noqa: B018


# The CLI's flags and the API's keywords for the same result.
CASES = {
    "defaults": ([], {}),
    "strength_luminance": (["--strength", "0.8", "--preserve-color", "luminance"],
                           {"strength": 0.8, "preserve_color": "luminance"}),
    "tiles_histogram": (["--tile", "32", "--preserve-color", "histogram", "--margin", "8"],
                        {"tile": 32, "preserve_color": "histogram", "margin": 8}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_api_writes_the_cli_pixels(case: str, tmp_path: Path, tiny_model: Path, photo: Path) -> None:
    flags, keywords = CASES[case]
    expected = cli_png(tmp_path, photo, tiny_model, *flags)
    model = fastnst.load(tiny_model, device="cpu")
    assert api_png(tmp_path, model.stylize(photo, **keywords)) == expected
    if keywords:  # the options change the pixels, so equal files are no accident
        assert api_png(tmp_path, model.stylize(photo)) != expected


def test_path_pil_and_array_give_the_same_pixels(tiny_model: Path, photo: Path) -> None:
    model = fastnst.load(tiny_model, device="cpu")
    assert (model.name, model.style, model.backend, model.precision) == ("tiny", "tiny.jpg", "torch", "fp32")
    options = {"strength": 0.8, "preserve_color": "luminance"}
    from_path = np.asarray(model.stylize(photo, **options))
    with Image.open(photo) as opened:
        from_pil = np.asarray(model.stylize(opened, **options))
        from_array = np.asarray(model.stylize(np.asarray(opened.convert("RGB")), **options))
    assert from_path.shape == (50, 70, 3)
    np.testing.assert_array_equal(from_pil, from_path)
    np.testing.assert_array_equal(from_array, from_path)
    with pytest.raises(ImageError, match="uint8 array"):
        model.stylize(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(FastNSTError, match="strength must be between 0 and 1"):
        model.stylize(photo, strength=2)


def test_transparency_is_kept_like_the_cli(tmp_path: Path, tiny_model: Path) -> None:
    rgba = np.random.default_rng(0).integers(0, 256, (40, 52, 4), dtype=np.uint8)
    source = tmp_path / "clear.png"
    Image.fromarray(rgba, "RGBA").save(source)
    expected = cli_png(tmp_path, source, tiny_model)
    model = fastnst.load(tiny_model, device="cpu")
    for image in (source, Image.open(source), rgba):
        result = model.stylize(image)
        assert result.mode == "RGBA"
        assert api_png(tmp_path, result) == expected


@pytest.mark.skipif(not (STARRY / "model.onnx").is_file(), reason="models/starry_night is not here")
def test_starry_night_api_equals_cli(tmp_path: Path) -> None:
    """The real model on a sample photo: ONNX Runtime for the whole image, PyTorch for forced tiles."""
    photo = tmp_path / "castle.png"
    with Image.open(REPO / "samples" / "castle.jpg") as sample:
        sample.convert("RGB").resize((160, 107), Image.Resampling.LANCZOS).save(photo)
    model = fastnst.load("starry_night", device="cpu")
    assert model.info.spec.width == 32
    for flags, keywords in (CASES["strength_luminance"], (["--tile", "64"], {"tile": 64})):
        expected = cli_png(tmp_path, photo, Path("starry_night"), *flags)
        assert api_png(tmp_path, model.stylize(photo, **keywords)) == expected
    if have_onnxruntime():
        assert model.backend == "onnxruntime"  # the tiles ran on a PyTorch network loaded beside it
        assert model._torch is not None and model._torch.name == "torch"


class Recorder(Reporter):
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def job_started(self, job: Job, frames: int | None) -> None:
        self.events.append(("start", job.source.name))

    def job_failed(self, job: Job, error: FastNSTError) -> None:
        self.events.append(("failed", job.source.name))

    def job_finished(self, job: Job, written: Path | None) -> None:
        self.events.append(("done", written.name if written else "-"))


def test_folders_like_the_cli_with_failures_collected(tmp_path: Path, tiny_model: Path, photo: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    (photo.parent / "broken.png").write_bytes(b"not a picture")
    Image.new("L", (17, 9), 90).save(photo.parent / "gray.png")
    assert main(["-q", "stylize", str(photo.parent), "-m", str(tiny_model), "-o", str(tmp_path / "cli"),
                 "--format", "png", "--strength", "0.5"]) == 1
    assert "1 of 3 image(s) could not be stylized" in capsys.readouterr().err
    recorder = Recorder()
    summary = fastnst.load(tiny_model).stylize_paths(photo.parent, tmp_path / "api", out_format="png",
                                                     strength=0.5, progress=recorder)
    assert [job.source.name for job, _ in summary.failures] == ["broken.png"] and not summary.ok
    assert sorted(path.name for path in summary.written) == ["gray.png", "photo.png"]
    for path in summary.written:
        assert path.read_bytes() == (tmp_path / "cli" / path.name).read_bytes()
    assert ("failed", "broken.png") in recorder.events and ("done", "photo.png") in recorder.events
    assert len([kind for kind, _ in recorder.events if kind == "start"]) == 3
    with pytest.raises(ImageError, match="broken.png"):  # one input: the error is raised
        fastnst.load(tiny_model).stylize_file(photo.parent / "broken.png", tmp_path / "one.png")
    assert fastnst.load(tiny_model).stylize_file(photo, tmp_path / "one.png") == tmp_path / "one.png"


def test_video_like_the_cli(tmp_path: Path, tiny_model: Path) -> None:
    av = pytest.importorskip("av")
    source = tmp_path / "clip.mp4"
    texture = np.random.default_rng(0).integers(0, 255, (56, 72, 3), dtype=np.uint8)
    with av.open(str(source), "w") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(6):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(texture[i : i + 48, i : i + 64]), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))

    def frames(path: Path) -> np.ndarray:
        with av.open(str(path)) as container:
            return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])

    flags = ["--flicker-reduction", "0.5", "--batch-size", "4", "--preserve-color", "luminance"]
    assert main(["-q", "stylize", str(source), "-m", str(tiny_model), "-o", str(tmp_path / "cli.mp4"), *flags]) == 0
    counted: list[int] = []
    written = fastnst.load(tiny_model).stylize_video(source, tmp_path / "api.mp4", flicker=0.5, batch_size=4,
                                                     preserve_color="luminance", progress=counted.append)
    assert written == tmp_path / "api.mp4" and counted == [4, 2]
    api, cli = frames(written), frames(tmp_path / "cli.mp4")
    # Both run the same pipeline; H.264 is lossy, and in a long test session a float rounding difference of one
    # level in a stylized frame (seen once in the full suite, never alone) can change the encoder's choices, so
    # the decoded frames are compared closely rather than bit for bit. A different option (no colour
    # preservation) moves them far more than this bound.
    difference = np.abs(api.astype(np.int16) - cli.astype(np.int16))
    assert api.shape == cli.shape and difference.mean() < 0.5, difference.mean()
    plain = fastnst.load(tiny_model).stylize_video(source, tmp_path / "plain.mp4", flicker=0.5, batch_size=4)
    assert np.abs(frames(plain).astype(np.int16) - cli.astype(np.int16)).mean() > 4 * 0.5
    with pytest.raises(FastNSTError, match="not a video"):
        fastnst.load(tiny_model).stylize_video(tmp_path / "photo.jpg", tmp_path / "x.mp4")


def test_train_takes_a_dict_a_toml_file_or_a_config(shared_data: Path, tmp_path: Path) -> None:
    from fastnst.training.config import TrainConfig, load_config

    values = {"style_image": str(shared_data / "styles" / "van_gogh_starry_night.jpg"),
              "data_dir": str(shared_data / "photos"), "style_size": 64, "width": 8, "residual_blocks": 1,
              "image_size": 32, "batch_size": 1, "steps": 5, "num_workers": 0, "tensorboard": False,
              "preview_every": 0, "output_dir": str(tmp_path / "dict")}
    steps: list[int] = []
    result = fastnst.train(values, steps=2, on_step=lambda report: steps.append(report.step))
    assert result.steps == 2 and steps == [1, 2] and result.model_path.is_file()
    model = fastnst.load(result.model_path.parent)
    assert model.name == "van_gogh_starry_night" and model.stylize(Image.new("RGB", (20, 16))).size == (20, 16)

    toml = tmp_path / "style.toml"
    toml.write_text("".join(f"{key} = {value!r}\n".replace("'", '"').replace("False", "false")
                            for key, value in values.items()))
    from_file = fastnst.train(toml, steps=1, output_dir=str(tmp_path / "toml"))
    assert from_file.steps == 1 and from_file.model_path.parent == tmp_path / "toml"
    config = load_config(toml)
    assert isinstance(config, TrainConfig) and config.style_name == "style"
    assert fastnst.train(config, steps=1, output_dir=str(tmp_path / "config")).steps == 1


def test_train_bad_override_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"fastnst.train\(\): unknown key 'stepz'"):
        fastnst.train({"style_image": "s.jpg", "data_dir": "d"}, stepz=3)


def test_optimize_equals_the_cli(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not (shared_data / "vgg" / "vgg19_features_caffe.pth").is_file():
        pytest.skip("Caffe VGG19 weights not found")
    content = tmp_path / "content.png"
    with Image.open(shared_data / "photos" / "skimage_chelsea.jpg") as photo:
        photo.convert("RGB").resize((64, 48)).save(content)
    style = shared_data / "styles" / "van_gogh_starry_night.jpg"
    assert main(["-q", "optimize", "--content", str(content), "--style", str(style), "-o", str(tmp_path / "cli.png"),
                 "--sizes", "48", "--iterations", "6", "--amp", "none"]) == 0
    result = fastnst.optimize(content, style, tmp_path / "api.png", sizes=[48], iterations=[6], amp="none")
    assert (tmp_path / "api.png").read_bytes() == (tmp_path / "cli.png").read_bytes()
    assert result.image.size == (48, 36) and len(result.history) == 6
    in_memory = fastnst.optimize(Image.open(content), [Image.open(style)], sizes=[48], iterations=[6], amp="none")
    np.testing.assert_array_equal(np.asarray(in_memory.image), np.asarray(result.image))
