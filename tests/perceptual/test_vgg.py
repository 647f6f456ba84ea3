import pytest
import torch

from fastnst.perceptual.vgg import VGGFeatures, layer_names, validate_layers


def test_vgg16_layer_indices_match_torchvision() -> None:
    names = layer_names("vgg16")
    # Johnson et al.'s layers and the conv indices given in ../shared/data/README.md.
    assert [names[n] for n in ("relu1_2", "relu2_2", "relu3_3", "relu4_3")] == [3, 8, 15, 22]
    convs = [v for k, v in names.items() if k.startswith("conv")]
    assert convs == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    assert names["pool5"] == 30 and "relu5_4" not in names


def test_vgg19_layer_indices_match_torchvision() -> None:
    names = layer_names("vgg19")
    assert [names[n] for n in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")] == [1, 6, 11, 20, 29]
    assert names["relu4_2"] == 22 and names["relu5_4"] == 35 and names["pool5"] == 36
    convs = [v for k, v in names.items() if k.startswith("conv")]
    assert convs == [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]


def test_unknown_layer_lists_valid_choices() -> None:
    with pytest.raises(ValueError, match="unknown vgg16 layer.*relu9_9.*valid relu layers: relu1_1"):
        validate_layers("vgg16", ["relu9_9"])


def test_truncated_frozen_and_input_untouched() -> None:
    vgg = VGGFeatures(("relu1_2", "relu2_2"), weights="vgg16", pretrained=False)
    assert len(vgg.features) == 9  # stops after relu2_2
    assert not any(p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training
    image = torch.rand(1, 3, 32, 32)
    before = image.clone()
    out = vgg(image)
    assert set(out) == {"relu1_2", "relu2_2"} and out["relu2_2"].shape == (1, 128, 16, 16)
    assert torch.equal(image, before)
    assert set(vgg(image, layers=("relu1_2",))) == {"relu1_2"}


def test_too_small_input_is_a_clear_error() -> None:
    vgg = VGGFeatures(("relu1_2",), pretrained=False)
    with pytest.raises(ValueError, match="too small for VGG"):
        vgg(torch.rand(1, 3, 8, 8))


def test_real_weights_match_shared_sanity_stats(shared_data) -> None:
    """relu1_2 statistics of the real VGG16 on a real photo agree with ../shared/data/vgg/vgg_sanity.json."""
    import json

    from fastnst.utils.images import image_to_tensor, load_rgb

    sanity = json.loads((shared_data / "vgg" / "vgg_sanity.json").read_text())["activations"]
    photo = "photos/skimage_chelsea.jpg"
    expected = sanity[photo]["vgg16"]["relu1_2"]
    vgg = VGGFeatures(("relu1_2",), weights="vgg16")
    with torch.no_grad():
        act = vgg(image_to_tensor(load_rgb(shared_data / photo)))["relu1_2"]
    assert abs(act.mean().item() - expected["mean"]) < 0.05 * expected["mean"] + 0.01
    assert abs((act == 0).float().mean().item() - expected["frac_zero"]) < 0.03
