"""The transform network's channels_last training path (CPU): same values and gradients as the stock layers."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fastnst.model.norm_stats as norm_stats
import fastnst.model.transformer as transformer
from fastnst.model.norm_stats import StatInstanceNorm2d, channels_last_instance_norm
from fastnst.model.transformer import ReflectionPad2d, TransformerNet, TransformerSpec

CL = torch.channels_last


@pytest.mark.parametrize(("pad", "shape"), [(1, (2, 5, 7, 9)), (4, (2, 3, 16, 12)), (2, (1, 4, 5, 3))])
def test_training_pad_equals_reflection_padding_and_its_gradient(pad: int, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=torch.float64).contiguous(memory_format=CL).requires_grad_()
    fast = ReflectionPad2d(pad)(x)
    stock = F.pad(x, (pad,) * 4, mode="reflect")
    assert torch.equal(fast, stock) and fast.is_contiguous(memory_format=CL)
    grad = torch.randn_like(stock)
    (fast_grad,) = torch.autograd.grad(fast, x, grad)
    (stock_grad,) = torch.autograd.grad(stock, x, grad)
    assert torch.allclose(fast_grad, stock_grad, rtol=0, atol=1e-12)
    assert fast_grad.is_contiguous(memory_format=CL)


def test_training_pad_keeps_bf16_under_autocast_and_eval_uses_the_stock_pad() -> None:
    x = torch.randn(1, 4, 6, 6).bfloat16().contiguous(memory_format=CL)
    pad = ReflectionPad2d(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        trained = pad(x)
        evaluated = pad.eval()(x)
    assert trained.dtype == torch.bfloat16 and trained.is_contiguous(memory_format=CL)
    assert evaluated.dtype == torch.float32  # the stock pad under CPU autocast widens to fp32
    assert torch.equal(trained.float(), evaluated)


def test_training_norm_equals_instance_norm_and_its_gradients() -> None:
    torch.manual_seed(0)
    norm = StatInstanceNorm2d(6, affine=True).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.normal_()
    x = (torch.randn(3, 6, 8, 10, dtype=torch.float64) * 3 + 1).contiguous(memory_format=CL).requires_grad_()
    fast = norm(x)
    stock = F.instance_norm(x, weight=norm.weight, bias=norm.bias, eps=norm.eps)
    assert fast.is_contiguous(memory_format=CL)
    assert torch.allclose(fast, stock, rtol=0, atol=1e-12)
    grad = torch.randn_like(stock)
    inputs = (x, norm.weight, norm.bias)
    for got, want in zip(torch.autograd.grad(fast, inputs, grad), torch.autograd.grad(stock, inputs, grad),
                         strict=True):
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-10)


def test_training_norm_without_affine_parameters() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64).contiguous(memory_format=CL).requires_grad_()
    fast = channels_last_instance_norm(x, None, None, 1e-5)
    stock = F.instance_norm(x, eps=1e-5)
    assert torch.allclose(fast, stock, rtol=0, atol=1e-12)
    grad = torch.randn_like(stock)
    (got,) = torch.autograd.grad(fast, x, grad)
    (want,) = torch.autograd.grad(stock, x, grad)
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-10)


def test_the_fast_norm_runs_only_for_channels_last_training_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> torch.Tensor:
        raise AssertionError("fast path taken")

    monkeypatch.setattr(norm_stats, "channels_last_instance_norm", refuse)
    norm = StatInstanceNorm2d(4, affine=True)
    x = torch.randn(2, 4, 5, 5)
    plain = nn.InstanceNorm2d(4, affine=True)
    assert torch.equal(norm.eval()(x.contiguous(memory_format=CL)), plain(x.contiguous(memory_format=CL)))
    assert torch.equal(norm.train()(x), plain(x))  # NCHW input
    with pytest.raises(AssertionError, match="fast path"):
        norm.train()(x.contiguous(memory_format=CL))


def _output_and_gradients(net: TransformerNet, image: torch.Tensor) -> list[torch.Tensor]:
    net.zero_grad(set_to_none=True)
    y = net(image)
    (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
    return [y.detach()] + [p.grad.clone() for p in net.parameters()]


def test_network_training_pass_matches_the_stock_layers(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    net = TransformerNet(TransformerSpec(width=8, residual_blocks=1)).double().to(memory_format=CL)
    image = torch.rand(2, 3, 20, 24, dtype=torch.float64).contiguous(memory_format=CL)
    fast = _output_and_gradients(net, image)
    monkeypatch.setattr(norm_stats, "channels_last_training", lambda module, x: False)
    monkeypatch.setattr(transformer, "channels_last_training", lambda module, x: False)
    stock = _output_and_gradients(net, image)
    for got, want in zip(fast, stock, strict=True):
        assert torch.allclose(got, want, rtol=1e-9, atol=1e-12)


def test_network_eval_output_is_unchanged_by_the_training_path() -> None:
    torch.manual_seed(0)
    net = TransformerNet(TransformerSpec(width=8, residual_blocks=1)).to(memory_format=CL)
    image = torch.rand(1, 3, 24, 24).contiguous(memory_format=CL)
    with torch.no_grad():
        trained = net.train()(image)
        evaluated = net.eval()(image)
    assert torch.allclose(trained, evaluated, rtol=1e-4, atol=1e-6)
