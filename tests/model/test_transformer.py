import pytest
import torch

from fastnst.model.transformer import TransformerNet, TransformerSpec, count_parameters


def test_paper_size() -> None:
    # Johnson et al.'s network has about 1.68 M parameters.
    assert 1.6e6 < count_parameters(TransformerNet()) < 1.8e6


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (2, 3, 37, 50), (1, 3, 5, 3), (1, 3, 1, 1)])
def test_any_size_keeps_shape(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = TransformerNet(TransformerSpec(width=8, residual_blocks=1))
    out = model(torch.rand(*shape))
    assert out.shape == shape and torch.isfinite(out).all()


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    model = TransformerNet(TransformerSpec(width=4, residual_blocks=2))
    model(torch.rand(2, 3, 32, 28)).square().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_width_and_depth_configurable() -> None:
    small = TransformerNet(TransformerSpec(width=8, residual_blocks=1))
    large = TransformerNet(TransformerSpec(width=16, residual_blocks=3))
    assert count_parameters(small) < count_parameters(large)
    assert len(large.residuals) == 3


def test_no_checkerboard_on_flat_input() -> None:
    """Resize-conv upsampling: a flat input gives an output without a 2-periodic pattern in the interior."""
    torch.manual_seed(0)
    model = TransformerNet(TransformerSpec(width=8, residual_blocks=1))
    out = model(torch.full((1, 3, 64, 64), 0.5))[..., 16:48, 16:48]
    # Interior of a constant image: all pixels equal up to float rounding (no stride artifacts).
    assert (out - out.mean(dim=(-1, -2), keepdim=True)).abs().max() < 1e-4
