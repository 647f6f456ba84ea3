"""The losses' own backward passes (Gram matrix, feature MSE) and the loss network's in-place ReLUs."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fastnst.perceptual.losses as losses
from fastnst.perceptual.losses import feature_mse, gram_matrix
from fastnst.perceptual.vgg import VGGFeatures, layer_names

CL = torch.channels_last


def plain_gram(features: torch.Tensor) -> torch.Tensor:
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


@pytest.mark.parametrize("layout", [torch.contiguous_format, CL])
def test_gram_gradient_equals_autograd_of_the_formula(layout: torch.memory_format) -> None:
    torch.manual_seed(0)
    features = torch.randn(2, 5, 4, 6, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_()
    target = torch.randn(1, 5, 5, dtype=torch.float64)
    mine = gram_matrix(features)
    plain = plain_gram(features.float())
    assert mine.dtype == torch.float32 and torch.allclose(mine, plain, rtol=1e-6, atol=1e-7)
    (got,) = torch.autograd.grad(((mine.double() - target) ** 2).sum(), features)
    (want,) = torch.autograd.grad(((plain_gram(features) - target) ** 2).sum(), features)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)
    assert got.stride() == features.stride()  # the gradient comes back in the features' layout


def test_bf16_gram_is_exact_in_fp32_chunk_by_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(losses, "_WIDEN_CHUNK_ELEMENTS", 40)  # 5 rows per chunk: 13 chunks, the last one partial
    torch.manual_seed(0)
    features = torch.randn(2, 4, 7, 9).bfloat16().contiguous(memory_format=CL)
    exact = plain_gram(features.double())
    assert torch.allclose(gram_matrix(features).double(), exact, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("layout", [torch.contiguous_format, CL])
def test_bf16_gram_gradient_is_the_fp32_gradient_to_bf16_rounding(layout: torch.memory_format) -> None:
    torch.manual_seed(0)
    features = torch.randn(2, 32, 12, 12).relu().bfloat16().contiguous(memory_format=layout).requires_grad_()
    target = plain_gram(features.detach().double()) * 1.5
    (got,) = torch.autograd.grad(((gram_matrix(features).double() - target) ** 2).sum(), features)
    wide = features.detach().double().requires_grad_()
    (want,) = torch.autograd.grad(((plain_gram(wide) - target) ** 2).sum(), wide)
    assert got.dtype == torch.bfloat16 and got.stride() == features.stride()
    error = (got.double() - want).norm() / want.norm()
    assert error < 3e-3  # bf16 keeps 8 bits: rounding the exact gradient alone gives ~1.7e-3


def test_feature_mse_equals_mse_loss_and_its_gradients() -> None:
    torch.manual_seed(0)
    output = torch.randn(2, 3, 4, 5, dtype=torch.float64).contiguous(memory_format=CL).requires_grad_()
    target = torch.randn(2, 3, 4, 5, dtype=torch.float64).requires_grad_()
    mine = feature_mse(output, target)
    plain = F.mse_loss(output.float(), target.float())
    assert mine.dtype == torch.float32 and torch.allclose(mine, plain, rtol=1e-6)
    got = torch.autograd.grad(mine, (output, target))
    want = torch.autograd.grad(plain, (output, target))
    for g, w in zip(got, want, strict=True):
        assert torch.allclose(g, w, rtol=1e-6, atol=1e-9)
    assert got[0].stride() == output.stride()


def test_feature_mse_of_bf16_features_has_a_bf16_channels_last_gradient() -> None:
    torch.manual_seed(0)
    output = torch.randn(2, 8, 6, 6).bfloat16().contiguous(memory_format=CL).requires_grad_()
    target = torch.randn(2, 8, 6, 6).bfloat16().contiguous(memory_format=CL)
    loss = feature_mse(output, target)
    (grad,) = torch.autograd.grad(loss, output)
    (want,) = torch.autograd.grad(F.mse_loss(output.float(), target.float()), output)
    assert grad.dtype == torch.bfloat16 and grad.is_contiguous(memory_format=CL)
    assert torch.equal(grad, want)
    assert torch.isclose(loss, F.mse_loss(output.float(), target.float()), rtol=1e-6)
    with pytest.raises(ValueError, match="shapes differ"):
        feature_mse(output, target[:1])


def test_vgg_relus_run_in_place_except_after_a_requested_conv() -> None:
    vgg = VGGFeatures(("conv1_2", "relu2_2"), pretrained=False)
    index = layer_names("vgg16")
    relus = {i: m.inplace for i, m in enumerate(vgg.features) if isinstance(m, nn.ReLU)}
    assert relus[index["relu1_2"]] is False  # conv1_2 is returned: its ReLU must not overwrite it
    assert all(inplace for i, inplace in relus.items() if i != index["relu1_2"])
    torch.manual_seed(0)
    out = vgg(torch.rand(1, 3, 32, 32))
    assert out["conv1_2"].min() < 0 and out["relu2_2"].min() >= 0
