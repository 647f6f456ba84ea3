"""Style strength and colour preservation: luminance-only transfer and histogram matching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastnst.runtime.color import (
    _RGB_TO_YCC,
    Controls,
    apply_controls,
    apply_lut_u8,
    blend,
    channel_histograms,
    histogram_lut,
    match_histograms,
    transfer_luminance,
)
from fastnst.utils.errors import FastNSTError


def ycc(image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", _RGB_TO_YCC, image)


@pytest.fixture
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    original = torch.rand(1, 3, 24, 32, generator=gen) * 0.6 + 0.2
    original[:, 0] += 0.15  # a warm photo
    stylized = torch.rand(1, 3, 24, 32, generator=gen) * 0.5 + 0.25
    stylized[:, 2] += 0.2  # a blue painting
    return stylized.clamp(0, 1), original.clamp(0, 1)


def test_strength_blends_linearly(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    stylized, original = pair
    assert torch.equal(blend(stylized, original, 1.0), stylized)
    assert torch.allclose(blend(stylized, original, 0.0), original)
    assert torch.allclose(blend(stylized, original, 0.25), 0.25 * stylized + 0.75 * original, atol=1e-6)
    assert torch.allclose(apply_controls(stylized, original, Controls(strength=0.0)), original)


def test_luminance_keeps_stylized_luma_and_original_chroma(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    stylized, original = pair
    out = transfer_luminance(stylized, original)
    inside = ((out > 0.001) & (out < 0.999)).all(dim=1, keepdim=True)  # where clamping did not change anything
    assert inside.float().mean() > 0.9
    assert torch.allclose(ycc(out)[:, :1][inside], ycc(stylized)[:, :1][inside], atol=1e-4)
    assert torch.allclose(ycc(out)[:, 1:][inside.expand(-1, 2, -1, -1)],
                          ycc(original)[:, 1:][inside.expand(-1, 2, -1, -1)], atol=1e-4)
    # The painting's blue cast is gone: mean colour follows the photo, not the painting.
    assert out[:, 2].mean() < stylized[:, 2].mean() - 0.1


def test_histogram_matching_gives_the_reference_distribution(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    stylized, original = pair
    out = match_histograms(stylized, original)
    for c in range(3):
        got = np.sort(out[0, c].flatten().numpy())
        want = np.sort(original[0, c].flatten().numpy())
        assert np.abs(got - want).mean() < 2 / 255  # same quantiles up to 8-bit levels
    # Order is kept: matching is a monotone map per channel.
    lut = histogram_lut(channel_histograms(stylized), channel_histograms(original))
    assert (lut[:, 1:] >= lut[:, :-1]).all()
    same = histogram_lut(channel_histograms(original), channel_histograms(original))
    levels = torch.arange(256).float() / 255
    used = channel_histograms(original) > 0
    assert torch.allclose(same[used], levels.expand(3, -1)[used], atol=1.5 / 255)


def test_lut_on_uint8_matches_float(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    stylized, original = pair
    lut = histogram_lut(channel_histograms(stylized), channel_histograms(original))
    pixels = stylized[0].mul(255).round().byte().permute(1, 2, 0).numpy().copy()
    apply_lut_u8(pixels, lut)
    expected = match_histograms(stylized, original)[0].mul(255).round().byte().permute(1, 2, 0).numpy()
    assert np.array_equal(pixels, expected)


def test_controls_are_validated() -> None:
    with pytest.raises(FastNSTError, match="between 0 and 1"):
        Controls(strength=1.5)
    with pytest.raises(FastNSTError, match="none, luminance, histogram"):
        Controls(preserve_color="sepia")  # type: ignore[arg-type]
    assert Controls().is_identity and not Controls(0.5).is_identity
