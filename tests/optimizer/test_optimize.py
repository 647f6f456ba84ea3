"""The classic per-image optimizer: option validation (no weights needed) and convergence on real images.

The convergence tests use the genuine Caffe VGG19 on a real photo and real paintings at ≤ 64 px with a few
dozen iterations, so they run in seconds yet fail if the optimisation stops working.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from PIL import Image

from fastnst.cli import main
from fastnst.optimizer.config import DEFAULT_LOSS_WEIGHTS, GATYS_STYLE_LAYERS, OptimizeOptions
from fastnst.optimizer.loop import load_loss_network, optimize, optimize_files, scale_sizes, use_bf16
from fastnst.perceptual.losses import StyleLoss
from fastnst.perceptual.vgg import VGGFeatures
from fastnst.runtime.color import transfer_luminance
from fastnst.utils.device import cpu_has_native_bf16
from fastnst.utils.errors import ConfigError, ImageError
from fastnst.utils.images import image_to_tensor, load_rgb

PHOTO = "photos/skimage_chelsea.jpg"
STYLE_A = "styles/van_gogh_starry_night.jpg"
STYLE_B = "styles/kandinsky_composition_viii.jpg"
CAFFE_VGG = Path(os.environ.get("FASTNST_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"),
                 "vgg", "vgg19_features_caffe.pth")


def make_image(path: Path, size: tuple[int, int], color: tuple[int, int, int] = (200, 120, 40)) -> Path:
    Image.new("RGB", size, color).save(path)
    return path

# ----------------------------------------------------------------------------------------- option validation


def test_defaults_follow_gatys() -> None:
    options = OptimizeOptions()
    assert options.vgg == "vgg19_caffe"
    assert options.content_layer == "relu4_2"
    assert options.style_layers == GATYS_STYLE_LAYERS == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert options.optimizer == "lbfgs" and options.init == "content" and options.amp == "auto"
    assert options.loss_weights == DEFAULT_LOSS_WEIGHTS["vgg19_caffe"]
    # The torchvision weights see 0..1 inputs, so their default weights differ (activations ~100× smaller).
    assert OptimizeOptions(vgg="vgg16").loss_weights == DEFAULT_LOSS_WEIGHTS["vgg16"]
    assert OptimizeOptions(vgg="vgg16").loss_weights.style < DEFAULT_LOSS_WEIGHTS["vgg19_caffe"].style * 1e6
    assert OptimizeOptions(style_weight=7.0).loss_weights.style == 7.0
    assert OptimizeOptions().lr == 1.0 and OptimizeOptions(optimizer="adam").lr == 0.02


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"iterations": (0,)}, "iterations must be at least 1"),
        ({"iterations": ()}, "iterations must be given"),
        ({"iterations": (10, 20, 30), "sizes": (64, 128)}, "iterations has 3 entries but sizes has 2"),
        ({"style_layers": ("relu1_1", "relu9_9"), "style_layer_weights": (1.0, 1.0)},
         "unknown vgg19 layer(s) relu9_9; valid relu layers: relu1_1, relu1_2"),
        ({"content_layer": "conv4_9"}, "unknown vgg19 layer(s) conv4_9"),
        ({"vgg": "vgg16", "style_layers": ("relu3_4",), "style_layer_weights": (1.0,)},
         "unknown vgg16 layer(s) relu3_4"),
        ({"style_layer_weights": (1.0, 1.0)}, "style_layer_weights has 2 entries but style_layers has 5"),
        ({"style_layers": (), "style_layer_weights": ()}, "style_layers must name at least one layer"),
        ({"style_layers": ("relu1_1", "relu1_1"), "style_layer_weights": (1.0, 1.0)}, "lists a layer twice"),
        ({"style_blend_weights": (0.5, -0.5)}, "style_blend_weights must be finite numbers ≥ 0"),
        ({"style_blend_weights": (0.0, 0.0)}, "must not all be 0"),
        ({"style_weight": float("nan")}, "style_weight must be finite"),
        ({"tv_weight": -1.0}, "tv_weight must be finite"),
        ({"learning_rate": 0.0}, "learning_rate must be a finite number > 0"),
        ({"sizes": ()}, "sizes must name at least one scale"),
        ({"sizes": (512, 256)}, "sizes must grow from coarse to fine"),
        ({"sizes": (0, 256)}, "only the last scale may be 0"),
        ({"sizes": (8,)}, "sizes must be at least 16 px"),
        ({"sizes": (-5,)}, "sizes must be positive"),
        ({"style_scale": 0.0}, "style_scale must be a finite number > 0"),
        ({"save_every": -1}, "save_every must be ≥ 0"),
        ({"max_pixels": 0}, "max_pixels must be positive"),
        ({"optimizer": "sgd"}, "optimizer must be one of lbfgs, adam"),
        ({"init": "zeros"}, "init must be one of content, style, noise"),
        ({"vgg": "resnet"}, "vgg must be one of vgg16, vgg19, vgg19_caffe"),
    ],
)
def test_bad_options_raise_one_clear_line(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        OptimizeOptions(**changes)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_valid_multiscale_options() -> None:
    options = OptimizeOptions(sizes=(128, 256, 0), iterations=(300, 200, 100))
    assert [options.iterations_at(i) for i in range(3)] == [300, 200, 100]
    assert OptimizeOptions(sizes=(128, 256), iterations=(50,)).iterations_at(1) == 50


def test_blend_weights_normalised_and_counted() -> None:
    assert OptimizeOptions().blend_weights(2) == (0.5, 0.5)
    assert OptimizeOptions(style_blend_weights=(3.0, 1.0)).blend_weights(2) == (0.75, 0.25)
    with pytest.raises(ConfigError, match="3 style blend weights were given for 2 style image"):
        OptimizeOptions(style_blend_weights=(1.0, 1.0, 1.0)).blend_weights(2)


def test_scale_sizes_keep_aspect() -> None:
    assert scale_sizes((400, 300), (200, 0)) == [(200, 150), (400, 300)]
    assert scale_sizes((300, 400), (800,)) == [(600, 800)]


def test_transfer_luminance_keeps_content_colours() -> None:
    gen = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, 8, 8, generator=gen) * 0.5 + 0.25
    styled = torch.rand(1, 3, 8, 8, generator=gen) * 0.5 + 0.25
    out = transfer_luminance(styled, content)
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    torch.testing.assert_close((out * luma).sum(1), (styled * luma).sum(1))  # luminance of the result
    # chrominance (differences between channels) of the content
    torch.testing.assert_close(out[:, 0] - out[:, 1], content[:, 0] - content[:, 1])


def test_bf16_resolution() -> None:
    cpu = torch.device("cpu")
    assert use_bf16("bf16", cpu) and not use_bf16("none", cpu)
    assert use_bf16("auto", cpu) == cpu_has_native_bf16()


def test_tiny_image_refused_before_loading_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FASTNST_VGG_WEIGHTS", raising=False)  # nothing heavy may be touched
    tiny, style = Image.new("RGB", (200, 10)), Image.new("RGB", (50, 50))
    with pytest.raises(ImageError, match="content image would be 64×3 px"):
        optimize(tiny, [style], OptimizeOptions(sizes=(64,)))
    with pytest.raises(ImageError, match="style image would be"):
        optimize(Image.new("RGB", (64, 64)), [Image.new("RGB", (300, 10))], OptimizeOptions(sizes=(64,)))
    with pytest.raises(ConfigError, match="at least one style image"):
        optimize(Image.new("RGB", (64, 64)), [], OptimizeOptions(sizes=(64,)))


# ----------------------------------------------------------------------------------------- CLI errors


@pytest.fixture
def style_file(tmp_path: Path) -> Path:
    return make_image(tmp_path / "style.png", (64, 64), (30, 60, 200))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--content", "missing.jpg"], "missing.jpg does not exist"),
        (["--content", "{corrupt}"], "corrupt"),
        (["--content", "{big}", "--max-pixels", "1000"], "over the limit of 1000"),
        (["--content", "{big}", "--iterations", "0"], "iterations must be at least 1"),
        (["--content", "{big}", "--style-layers", "relu1_1,relu6_1"], "valid relu layers: relu1_1"),
        (["--content", "{big}", "--style-layer-weights", "1,2"], "style_layer_weights has 2 entries"),
        (["--content", "{big}", "--style-weights", "0.7,0.3"], "2 style blend weights were given for 1"),
    ],
)
def test_cli_bad_input_exits_1_with_one_line_and_no_output(
    tmp_path: Path, style_file: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    big = make_image(tmp_path / "big.png", (100, 80))
    args = [a.format(corrupt=corrupt, big=big) for a in extra]
    out = tmp_path / "out.png"
    code = main(["-q", "optimize", *args, "--style", str(style_file), "-o", str(out), "--sizes", "32"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert message in err and err.startswith("fastnst: error:") and "\n" not in err
    assert not out.exists() and list(tmp_path.glob("out*")) == []


def test_cli_missing_style_file_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    content = make_image(tmp_path / "c.png", (64, 64))
    code = main(["-q", "optimize", "--content", str(content), "--style", str(tmp_path / "nope.png"),
                 "-o", str(tmp_path / "out.png")])
    assert code == 1 and "nope.png does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()


# ----------------------------------------------------------------------------------------- real optimisation


@pytest.fixture(scope="module")
def caffe_vgg() -> VGGFeatures:
    """The genuine Caffe VGG19 through relu5_1, loaded once for the module (loading takes seconds)."""
    if not CAFFE_VGG.is_file():
        pytest.skip(f"Caffe VGG19 weights not found at {CAFFE_VGG} (set FASTNST_SHARED_DATA)")
    return VGGFeatures(("relu4_2", *GATYS_STYLE_LAYERS), "vgg19_caffe", CAFFE_VGG)


def _style_distance(vgg: VGGFeatures, image: Image.Image, style: Image.Image, options: OptimizeOptions) -> float:
    """Unweighted Gram distance of ``image`` to ``style`` (resized as optimize resizes it)."""
    style = style.resize(scale_sizes(style.size, (max(image.size),))[0], Image.Resampling.LANCZOS)
    with torch.no_grad():
        target = StyleLoss(vgg(image_to_tensor(style)),
                           dict(zip(options.style_layers, options.style_layer_weights, strict=False)))
        return float(target(vgg(image_to_tensor(image))))


def test_content_init_loss_falls(shared_data: Path, caffe_vgg: VGGFeatures) -> None:
    content, style = load_rgb(shared_data / PHOTO), load_rgb(shared_data / STYLE_A)
    # fp32 here; the other convergence tests run the default precision (bf16 on CPUs with native bf16).
    options = OptimizeOptions(sizes=(64,), iterations=(20,), amp="none")
    result = optimize(content, [style], options, vgg=caffe_vgg)
    assert result.precision == "fp32"
    first, history = result.history[0], result.history
    assert result.image.size == scale_sizes(content.size, (64,))[0]
    assert first["content"] == 0.0  # starts at the content image
    assert len(history) == 20 and not result.stopped
    totals = [h["total"] for h in history]
    assert min(totals[-5:]) < 0.25 * totals[0]
    assert result.losses["total"] == min(totals)  # the lowest-loss image is returned
    assert result.losses["style"] < 0.15 * first["style"]


def test_noise_init_converges_like_content_init(shared_data: Path, caffe_vgg: VGGFeatures) -> None:
    content, style = load_rgb(shared_data / PHOTO), load_rgb(shared_data / STYLE_A)
    options = OptimizeOptions(sizes=(64,), iterations=(20,))
    from_noise = optimize(content, [style], options.replace(init="noise", seed=3), vgg=caffe_vgg)
    from_content = optimize(content, [style], options, vgg=caffe_vgg)
    first = from_noise.history[0]
    assert first["content"] > 0.0
    assert from_noise.losses["total"] < 0.1 * first["total"]
    assert from_noise.losses["style"] < 0.05 * first["style"]
    # Both starts reach losses of the same order (the noise start has no head start on the content term).
    assert from_noise.losses["total"] < 2.0 * from_content.losses["total"]


def test_same_seed_same_result(shared_data: Path, caffe_vgg: VGGFeatures) -> None:
    content, style = load_rgb(shared_data / PHOTO), load_rgb(shared_data / STYLE_A)
    options = OptimizeOptions(sizes=(40,), iterations=(4,), init="noise", seed=7)
    first = optimize(content, [style], options, vgg=caffe_vgg)
    again = optimize(content, [style], options, vgg=caffe_vgg)
    other = optimize(content, [style], options.replace(seed=8), vgg=caffe_vgg)
    assert first.image.tobytes() == again.image.tobytes()
    assert first.image.tobytes() != other.image.tobytes()


def test_blend_weights_move_the_style_between_two_paintings(shared_data: Path, caffe_vgg: VGGFeatures) -> None:
    content = load_rgb(shared_data / PHOTO)
    style_a, style_b = load_rgb(shared_data / STYLE_A), load_rgb(shared_data / STYLE_B)
    options = OptimizeOptions(sizes=(48,), iterations=(10,))
    to_a, to_b = [], []
    for weights in ((1.0, 0.0), (0.5, 0.5), (0.0, 1.0)):
        result = optimize(content, [style_a, style_b], options.replace(style_blend_weights=weights), vgg=caffe_vgg)
        to_a.append(_style_distance(caffe_vgg, result.image, style_a, options))
        to_b.append(_style_distance(caffe_vgg, result.image, style_b, options))
    assert to_a[0] < to_a[1] < to_a[2], to_a
    assert to_b[0] > to_b[1] > to_b[2], to_b


def test_adam_with_bf16_and_a_stop_request(shared_data: Path, caffe_vgg: VGGFeatures) -> None:
    content, style = load_rgb(shared_data / PHOTO), load_rgb(shared_data / STYLE_A)
    options = OptimizeOptions(sizes=(48,), iterations=(40,), optimizer="adam", amp="bf16")
    result = optimize(content, [style], options, vgg=caffe_vgg,
                      on_progress=lambda progress: progress.iteration >= 12)
    assert result.stopped and len(result.history) == 12
    assert result.losses["total"] < 0.7 * result.history[0]["total"]


def test_mismatched_network_refused(caffe_vgg: VGGFeatures) -> None:
    image = Image.new("RGB", (32, 32))
    with pytest.raises(ConfigError, match="does not match the options"):
        optimize(image, [image], OptimizeOptions(vgg="vgg16", sizes=(32,)), vgg=caffe_vgg)


def test_cli_multiscale_with_snapshots_colours_and_tensorboard(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "result.png"
    code = main(["optimize", "--content", str(shared_data / PHOTO), "--style", str(shared_data / STYLE_A),
                 "--style", str(shared_data / STYLE_B), "--style-weights", "0.7,0.3", "-o", str(out),
                 "--sizes", "32,48", "--iterations", "4,3", "--save-every", "2", "--original-colors",
                 "--tensorboard", str(tmp_path / "tb"), "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    assert f"wrote {out}" in capsys.readouterr().out
    result = Image.open(out)
    assert max(result.size) == 48
    snapshots = sorted(p.name for p in tmp_path.glob("result_*px_*.png"))
    assert snapshots == ["result_32px_00002.png", "result_32px_00004.png", "result_48px_00002.png"]
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    # Original colours: the result's chrominance is the content's (up to 8-bit rounding of both images).
    content = image_to_tensor(load_rgb(shared_data / PHOTO).resize(result.size, Image.Resampling.LANCZOS))
    styled = image_to_tensor(result)
    inside = (content > 0.05).all(1) & (content < 0.95).all(1)  # unclipped pixels
    chroma = (styled[:, 0] - styled[:, 1]) - (content[:, 0] - content[:, 1])
    assert chroma[inside].abs().max() < 0.02


def test_optimize_files_writes_only_on_success(shared_data: Path, tmp_path: Path, caffe_vgg: VGGFeatures) -> None:
    out = tmp_path / "nested" / "out.jpg"
    with pytest.raises(ImageError):
        optimize_files(shared_data / PHOTO, [tmp_path / "missing.jpg"], out, OptimizeOptions(sizes=(32,)))
    assert not out.exists()
    assert load_loss_network(OptimizeOptions()).layers == caffe_vgg.layers
