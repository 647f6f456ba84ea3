"""Conditional instance norm: one network holding several styles, baked into a plain network for any mix."""

from __future__ import annotations

import pytest
import torch

from fastnst.model.conditional import normalised_weights
from fastnst.model.transformer import TransformerNet, TransformerSpec, bake, extend


def _two_styles() -> tuple[TransformerNet, TransformerNet, TransformerNet]:
    """(single-style A, single-style B with A's shared weights and its own norm rows, the 2-style network)."""
    torch.manual_seed(0)
    first = TransformerNet(TransformerSpec(width=8, residual_blocks=1))
    multi = extend(first, 1)
    second = TransformerNet(first.spec)
    state = first.state_dict()
    with torch.no_grad():
        for key in sorted(multi.style_keys()):  # a set: a fixed order keeps the draws seeded
            row = torch.randn_like(state[key]) * 0.3 + (1.0 if key.endswith("weight") else 0.0)
            multi.state_dict()[key][1].copy_(row)
            state = {**state, key: row}
    second.load_state_dict(state)
    return first, second, multi


def test_each_style_is_the_single_style_network_with_the_same_shared_weights() -> None:
    first, second, multi = _two_styles()
    image = torch.rand(2, 3, 36, 44)
    with torch.no_grad():
        # Inference runs the baked network: bit for bit the single-style one.
        assert torch.equal(bake(multi, [1, 0])(image), first(image))
        assert torch.equal(bake(multi, [0, 1])(image), second(image))
        # Training runs the conditional layers: the same up to float rounding, per image of a batch.
        torch.testing.assert_close(multi(image, torch.tensor([0.0, 1.0])), second(image), rtol=1e-5, atol=1e-6)
        per_image = multi(image, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        torch.testing.assert_close(per_image[0], first(image)[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(per_image[1], second(image)[1], rtol=1e-5, atol=1e-6)
        assert (first(image) - second(image)).abs().max() > 1e-3


def test_a_mix_blends_scale_and_shift_and_bakes_to_the_same_output() -> None:
    _, _, multi = _two_styles()
    image = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        mixed = multi(image, torch.tensor([0.3, 0.7]))
        baked = bake(multi, [3, 7])  # normalised to 0.3 / 0.7
        torch.testing.assert_close(baked(image), mixed, rtol=1e-5, atol=1e-5)
        assert baked.spec.styles == 1 and not baked.style_keys()
        torch.testing.assert_close(bake(multi, [1, 0])(image), multi(image, torch.tensor([1.0, 0.0])),
                                   rtol=1e-5, atol=1e-6)


def test_extend_keeps_every_style_and_single_style_files_are_unchanged() -> None:
    first, _, multi = _two_styles()
    grown = extend(multi, 2)
    image = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        for index in range(2):
            weights = torch.nn.functional.one_hot(torch.tensor(index), 4).float()
            assert torch.equal(bake(grown, weights)(image), bake(multi, weights[:2])(image))
    assert grown.spec.styles == 4 and first.spec.to_dict() == {"width": 8, "residual_blocks": 1}
    assert set(first.state_dict()) == set(grown.state_dict())  # same key names, rows added
    extra = sum(grown.state_dict()[key].numel() for key in grown.style_keys()) // 4
    assert extra == 2 * sum(m.weight.shape[-1] for m in grown.conditional_norms().values())


def test_style_weights_are_checked() -> None:
    _, _, multi = _two_styles()
    with pytest.raises(ValueError, match="pass style_weights"):
        multi(torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="expected 2 style weights"):
        bake(multi, [1, 0, 0])
    with pytest.raises(ValueError, match="non-negative"):
        normalised_weights([1, -1], 2)
    with pytest.raises(ValueError, match="at least one style"):
        TransformerSpec(styles=0)
