"""Conditional instance normalisation (Dumoulin, Shlens and Kudlur, ICLR 2017): one network, many styles.

Every weight of the transform network is shared between styles except the instance norms' scale and shift, of
which each style has its own row. A mix of styles is the convex combination of those rows, so a network can be
*baked* for any style or mix into a plain single-style network (:func:`bake`): inference (tiling, the margin,
colour controls, video, every backend) then runs it unchanged. A new style is added by growing every norm by one
row (:func:`extend`) and learning only that row.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm with ``styles`` rows of scale and shift ([styles, C] ``weight`` and ``bias``, the key names of
    ``nn.InstanceNorm2d``). :attr:`mix` ([N, styles] or [styles]) picks or blends the rows; the network sets it."""

    def __init__(self, channels: int, styles: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(styles, channels))
        self.bias = nn.Parameter(torch.zeros(styles, channels))
        self.mix: torch.Tensor | None = None  # a plain attribute: never in state_dict

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mix is None:
            raise RuntimeError("a multi-style network needs style weights (TransformerNet.forward(x, style_weights))")
        mix = self.mix.to(device=x.device, dtype=self.weight.dtype)
        scale = (mix @ self.weight).to(x.dtype)  # [N or 1, C]
        shift = (mix @ self.bias).to(x.dtype)
        if scale.ndim == 1:
            scale, shift = scale[None], shift[None]
        return torch.addcmul(shift[..., None, None], F.instance_norm(x, eps=self.eps), scale[..., None, None])


def mixed_state(state: dict[str, torch.Tensor], norm_keys: set[str],
                weights: torch.Tensor) -> dict[str, torch.Tensor]:
    """A single-style state dict: shared tensors as they are, each norm's rows combined with ``weights`` [S]."""
    weights = weights.to(torch.float64)
    return {key: (weights @ value.to(torch.float64)).to(value.dtype) if key in norm_keys else value
            for key, value in state.items()}


def normalised_weights(weights: Sequence[float] | torch.Tensor, styles: int) -> torch.Tensor:
    """[styles] non-negative weights summing to 1; a ValueError names what is wrong."""
    tensor = torch.as_tensor(weights, dtype=torch.float64).flatten()
    if tensor.numel() != styles:
        raise ValueError(f"expected {styles} style weights, got {tensor.numel()}")
    if not torch.isfinite(tensor).all() or (tensor < 0).any() or tensor.sum() <= 0:
        raise ValueError("style weights must be finite, non-negative and not all zero")
    return tensor / tensor.sum()
