import torch

from fastnst.perceptual.losses import (
    ContentLoss,
    LossWeights,
    PerceptualLoss,
    StyleLoss,
    gram_matrix,
    total_variation,
)


def test_gram_matches_hand_computation() -> None:
    # One item, 2 channels, 1×3 pixels: F = [[1, 2, 3], [0, 1, -1]].
    features = torch.tensor([[[[1.0, 2.0, 3.0]], [[0.0, 1.0, -1.0]]]])
    c, h, w = 2, 1, 3
    expected = torch.tensor([[1 + 4 + 9, 0 + 2 - 3], [0 + 2 - 3, 0 + 1 + 1]]) / (c * h * w)
    assert torch.allclose(gram_matrix(features)[0], expected)


def test_gram_is_fp32_under_autocast() -> None:
    features = torch.randn(2, 4, 5, 5).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gram = gram_matrix(features)
    assert gram.dtype == torch.float32 and gram.shape == (2, 4, 4)


def test_total_variation_by_hand() -> None:
    image = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    # vertical diffs: 2, 3 → mean of squares 6.5; horizontal diffs: 1, 2 → 2.5
    assert torch.isclose(total_variation(image), torch.tensor(6.5 + 2.5))
    assert total_variation(torch.ones(1, 3, 8, 8)) == 0


def test_style_loss_zero_for_style_itself_and_weighted() -> None:
    torch.manual_seed(0)
    feats = {"a": torch.randn(1, 4, 6, 6), "b": torch.randn(1, 8, 3, 3)}
    loss = StyleLoss(feats, {"a": 1.0, "b": 3.0})
    assert loss(feats).item() < 1e-12
    other = {"a": torch.randn(2, 4, 6, 6), "b": torch.randn(2, 8, 3, 3)}
    parts = loss.per_layer(other)
    assert torch.isclose(loss(other), parts["a"] + 3.0 * parts["b"])


def test_perceptual_loss_parts_and_gradients() -> None:
    torch.manual_seed(0)
    target = {"c": torch.randn(1, 4, 6, 6)}
    loss = PerceptualLoss(ContentLoss("c"), StyleLoss(target, {"c": 1.0}), LossWeights(2.0, 3.0, 4.0))
    image = torch.rand(1, 3, 8, 8, requires_grad=True)
    feats = {"c": torch.randn(1, 4, 6, 6, requires_grad=True)}
    total, parts = loss(image, feats, {"c": torch.zeros(1, 4, 6, 6)})
    assert set(parts) == {"content", "style", "tv"}
    assert torch.isclose(total, sum(parts.values()))
    total.backward()
    assert image.grad is not None and feats["c"].grad is not None


def test_gram_of_channels_last_features_equals_contiguous_and_backpropagates_alike() -> None:
    features = torch.randn(2, 8, 5, 7)
    nchw = features.clone().requires_grad_(True)
    nhwc = features.clone().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    weights = torch.randn(2, 8, 8)
    (gram_matrix(nchw) * weights).sum().backward()
    (gram_matrix(nhwc) * weights).sum().backward()
    assert torch.allclose(gram_matrix(nhwc.detach()), gram_matrix(nchw.detach()), atol=1e-6)
    assert torch.allclose(nhwc.grad, nchw.grad, atol=1e-6)
    assert nhwc.grad.is_contiguous(memory_format=torch.channels_last)  # no layout change on the way back


def test_bf16_gram_products_are_close_and_only_for_bf16_features() -> None:
    features = torch.rand(1, 16, 12, 10) * 50  # activation-like magnitudes
    exact = gram_matrix(features)
    low = gram_matrix(features.to(torch.bfloat16), bf16_products=True)
    assert low.dtype == torch.float32
    assert torch.allclose(low, exact, rtol=2e-2)
    assert torch.equal(gram_matrix(features, bf16_products=True), exact)  # fp32 features: the exact path
