"""fastnst.training.quality: the artifact statistics flag what they should (a grid pattern, a dark frame) and pass a
real photo; the loss meter uses the trainer's definitions."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import REPO, VGG_DIR

from fastnst.model.transformer import TransformerNet, TransformerSpec
from fastnst.perceptual.vgg import VGGFeatures
from fastnst.training.config import TrainConfig
from fastnst.training.data import find_photos
from fastnst.training.quality import (
    JUDGE_STYLE_LAYERS,
    ArtifactReport,
    GatysJudge,
    LossMeter,
    artifact_report,
    border_stats,
    checkerboard_score,
    grid_pattern,
    heldout_photos,
    load_eval_image,
    style_meters,
    style_network,
    untrained_network,
)
from fastnst.training.trainer import load_style_tensor
from fastnst.utils.errors import ConfigError

PHOTO = REPO / "samples" / "castle.jpg"


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    return load_eval_image(PHOTO, 128)


def test_eval_image_has_the_requested_shorter_side(photo: torch.Tensor) -> None:
    assert photo.shape[0] == 1 and photo.shape[1] == 3 and min(photo.shape[-2:]) == 128
    assert float(photo.min()) >= 0 and float(photo.max()) <= 1


def test_checkerboard_score_flags_grid_patterns_and_passes_a_photo(photo: torch.Tensor) -> None:
    h, w = photo.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    period2 = photo + 0.03 * (((yy + xx) % 2) * 2 - 1)
    period4 = photo + 0.03 * ((((yy // 2) + (xx // 2)) % 2) * 2 - 1)
    assert checkerboard_score(photo, 2) < 0.05 and checkerboard_score(photo, 4) < 0.1
    assert checkerboard_score(period2, 2) > 0.3
    assert checkerboard_score(period4, 4) > 0.3 and checkerboard_score(period4, 2) < 0.05
    assert grid_pattern(period4, 4)[1] > 5  # grey levels


def test_checkerboard_score_ignores_shifted_content(photo: torch.Tensor) -> None:
    """Image content has no fixed phase: shifting the photo by one pixel barely changes the score."""
    assert abs(checkerboard_score(photo[..., 1:, 1:], 4) - checkerboard_score(photo, 4)) < 0.05


def test_border_stats_flag_a_dark_frame(photo: torch.Tensor) -> None:
    framed = photo.clone()
    band = 8
    framed[..., :band, :] *= 0.7
    framed[..., -band:, :] *= 0.7
    framed[..., :, :band] *= 0.7
    framed[..., :, -band:] *= 0.7
    assert border_stats(framed).luma_offset < border_stats(photo).luma_offset - 0.05
    report = artifact_report([framed], [photo])
    assert isinstance(report, ArtifactReport) and report.border and not report.checkerboard
    clean = artifact_report([photo], [photo])
    assert not clean.border and not clean.checkerboard and clean.border_luma_shift == 0


def test_artifact_report_needs_matching_lists(photo: torch.Tensor) -> None:
    with pytest.raises(ValueError):
        artifact_report([photo], [])


def test_untrained_network_is_the_trainers_step_zero() -> None:
    config = TrainConfig(style_image="x.jpg", data_dir=".", width=8, residual_blocks=1, seed=3)
    a, b = untrained_network(config), untrained_network(config)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=False):
        assert torch.equal(pa, pb)


def test_heldout_photos_are_every_nth(tmp_path: Path, photo_dir: Path) -> None:
    files = find_photos(photo_dir)
    held = heldout_photos(photo_dir, 3)
    assert held == [files[2], files[5]]


def _random_vgg(config: TrainConfig) -> VGGFeatures:
    """Random VGG weights: the losses' plumbing (which painting, which layers) does not need ImageNet features."""
    torch.manual_seed(0)
    return VGGFeatures(tuple(dict.fromkeys((config.content_layer, *config.style_layers))), pretrained=False).eval()


def test_loss_meter_measures_the_painting_it_is_given() -> None:
    """Each painting of a multi-style config is its own meter's target: the painting itself scores zero style loss
    there and a clearly positive one on the other painting's meter."""
    castle, macaw = REPO / "samples" / "castle.jpg", REPO / "samples" / "macaw.jpg"
    config = TrainConfig(style_images=(str(castle), str(macaw)), style_names=("castle", "macaw"), data_dir=".",
                         style_size=64)
    vgg = _random_vgg(config)
    meters = style_meters(config, vgg)
    assert list(meters) == ["castle", "macaw"] and meters["macaw"].image == str(macaw)
    painting = load_style_tensor(config, str(macaw))
    own = meters["macaw"](painting, meters["macaw"].features(painting))
    other = meters["castle"](painting, meters["castle"].features(painting))
    assert own["style"] < 1e-6 * other["style"] and other["style"] > 0 and own["content"] == 0
    shared = meters["castle"].features(painting)  # one VGG pass reused: the same numbers
    assert meters["castle"](painting, meters["castle"].features(painting), shared) == other
    with pytest.raises(ConfigError, match="castle, macaw"):
        LossMeter(config, vgg)  # several paintings: the meter must be told which
    single = TrainConfig(style_image=str(macaw), data_dir=".", style_size=64)
    assert LossMeter(single, vgg)(painting, meters["macaw"].features(painting))["style"] == own["style"]


def test_style_network_is_the_multi_style_network_at_that_style() -> None:
    torch.manual_seed(0)
    network = TransformerNet(TransformerSpec(width=4, residual_blocks=1, styles=3)).eval()
    for norm in network.conditional_norms().values():  # distinct rows, so picking the wrong one would show
        torch.nn.init.normal_(norm.weight, 1.0, 0.3)
        torch.nn.init.normal_(norm.bias, 0.0, 0.3)
    image = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        outputs = [style_network(network, style)(image) for style in range(3)]
        for style, out in enumerate(outputs):
            expected = network(image, torch.nn.functional.one_hot(torch.tensor(style), 3).float())
            assert torch.allclose(out, expected, atol=1e-5)
    assert not torch.allclose(outputs[0], outputs[1], atol=1e-3)
    assert style_network(network, 2).spec.styles == 1
    with pytest.raises(ConfigError):
        style_network(network, 3)


def test_gatys_judge_scores_the_painting_and_the_photo() -> None:
    """The judge's style target is the painting at 512 px: the painting scores ~0 style loss, a photo clearly more;
    content is 0 for the photo itself and grows with a change of the photo; other VGG weights are refused."""
    torch.manual_seed(0)
    layers = ("relu4_2", *JUDGE_STYLE_LAYERS)
    vgg = VGGFeatures(layers, weights="vgg19_caffe", pretrained=False).eval()
    painting = REPO / "samples" / "macaw.jpg"
    judge = GatysJudge(painting, vgg=vgg)
    assert set(judge.targets) == set(JUDGE_STYLE_LAYERS)
    image = load_style_tensor(TrainConfig(style_image=str(painting), data_dir=".", style_size=512), str(painting))
    assert max(image.shape[-2:]) == 512
    photo = load_eval_image(PHOTO, 96)
    own = judge(image, judge.content_features(image))
    scores = judge(photo, judge.content_features(photo))
    assert own["content"] == 0 and scores["content"] == 0
    assert own["style"] < 1e-3 * scores["style"] and scores["style"] > 0
    brighter = judge((photo * 1.3).clamp(0, 1), judge.content_features(photo))
    assert brighter["content"] > 0
    with pytest.raises(ConfigError, match="vgg19_caffe"):
        GatysJudge(painting, vgg=VGGFeatures(layers, weights="vgg19", pretrained=False))


@pytest.mark.skipif(not (VGG_DIR / "vgg19_features_caffe.pth").is_file(), reason=f"no Caffe VGG19 in {VGG_DIR}")
def test_gatys_judge_on_the_real_caffe_vgg19_ranks_the_shipped_model_above_the_photo() -> None:
    """On the real weights: the shipped starry_night model's output is closer to the painting's style than the
    photo is, and farther from the photo's content than the photo itself (0)."""
    painting = VGG_DIR.parent / "styles" / "van_gogh_starry_night.jpg"
    if not painting.is_file():
        pytest.skip(f"{painting} not found")
    from fastnst.model.files import load_model

    model, _ = load_model(REPO / "models" / "starry_night")
    judge = GatysJudge(painting, VGG_DIR / "vgg19_features_caffe.pth")
    photo = load_eval_image(PHOTO, 128)
    features = judge.content_features(photo)
    with torch.no_grad():
        stylized = judge(model(photo).clamp(0, 1), features)
    plain = judge(photo, features)
    assert stylized["style"] < 0.5 * plain["style"] and stylized["content"] > plain["content"] == 0
