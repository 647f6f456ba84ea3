"""The feed-forward transform network of Johnson et al. 2016 (supplementary material, table 1).

Changes from the paper, each for a measured reason in the literature: instance norm instead of batch norm
(Ulyanov et al. 2016: sharper, batch-independent results), reflection padding instead of zero padding (no dark
borders), and nearest-neighbour resize followed by a convolution instead of fractionally strided convolutions
(Odena et al. 2016: no checkerboard artifacts). Input and output are RGB in roughly [0, 1]; the output is not
clamped during training so gradients are never cut off, callers clamp before saving.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fastnst.model.conditional import ConditionalInstanceNorm2d, mixed_state, normalised_weights
from fastnst.model.norm_stats import StatInstanceNorm2d, channels_last_training

# Two stride-2 downsamplings: spatial sizes must be multiples of 4 inside the network, and reflection padding of
# the 9×9 and 3×3 convs needs at least 16 px (16 → 8 → 4) so smaller inputs are padded up to it.
SIZE_MULTIPLE = 4
MIN_INTERNAL_SIDE = 16
# The layers work on 0..255 pixel values, as in pytorch/examples and Johnson's code, while the interface stays
# [0, 1]. The scale sets the output layer's effective step size: on [0, 1] outputs Adam's steps are 255× larger
# in image terms, which trains to a higher loss with blob artifacts.
PIXEL_SCALE = 255.0


@dataclass(frozen=True)
class TransformerSpec:
    """Architecture hyper-parameters; stored with every checkpoint and model file."""

    width: int = 32  # channels of the first conv; the paper's network uses 32 (then 64, 128)
    residual_blocks: int = 5  # number of 128-channel (4×width) residual blocks, 5 in the paper
    styles: int = 1  # > 1: conditional instance norm, one row of scale and shift per style

    def __post_init__(self) -> None:
        if self.styles < 1:
            raise ValueError(f"a network holds at least one style, got styles={self.styles}")

    def to_dict(self) -> dict[str, int]:
        """The fields, without ``styles`` for a single-style network (its files are as they always were)."""
        values = asdict(self)
        if self.styles == 1:
            del values["styles"]
        return values


class _ChannelsLastReflectionPad(torch.autograd.Function):
    """Reflection padding by ``pad`` px on every side that keeps a channels_last batch channels_last.

    The forward is a copy of the interior plus one strided copy per padded row and column, bit-identical to
    ``F.pad(mode="reflect")``; the backward folds the border gradients back onto the pixels they mirror.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, pad: int) -> torch.Tensor:
        n, c, h, w = x.shape
        out = torch.empty((n, c, h + 2 * pad, w + 2 * pad), dtype=x.dtype, device=x.device,
                          memory_format=torch.channels_last)
        out[:, :, pad : pad + h, pad : pad + w] = x
        for i in range(1, pad + 1):  # rows above and below, interior columns
            out[:, :, pad - i, pad : pad + w] = x[:, :, i]
            out[:, :, pad + h - 1 + i, pad : pad + w] = x[:, :, h - 1 - i]
        for j in range(1, pad + 1):  # columns left and right over the full height: the corners mirror twice
            out[:, :, :, pad - j] = out[:, :, :, pad + j]
            out[:, :, :, pad + w - 1 + j] = out[:, :, :, pad + w - 1 - j]
        ctx.pad = pad
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        pad = ctx.pad
        h, w = grad.shape[2] - 2 * pad, grad.shape[3] - 2 * pad
        grad = grad.contiguous(memory_format=torch.channels_last)
        grad_x = _fold_columns(grad[:, :, pad : pad + h], pad, w)
        for i in range(1, pad + 1):
            grad_x[:, :, i] += _fold_columns(grad[:, :, pad - i], pad, w)
            grad_x[:, :, h - 1 - i] += _fold_columns(grad[:, :, pad + h - 1 + i], pad, w)
        return grad_x, None


def _fold_columns(grad: torch.Tensor, pad: int, width: int) -> torch.Tensor:
    """The gradient of the ``width`` interior columns of ``grad`` (last dim padded by ``pad`` on both sides),
    with each padded column's gradient added to the column it mirrors; a new tensor, innermost dim as ``grad``."""
    folded = grad[..., pad : pad + width].clone()
    for j in range(1, pad + 1):
        folded[..., j] += grad[..., pad - j]
        folded[..., width - 1 - j] += grad[..., pad + width - 1 + j]
    return folded


class ReflectionPad2d(nn.ReflectionPad2d):
    """``nn.ReflectionPad2d`` that, when training on the CPU, keeps channels_last activations channels_last and
    in their own dtype (stock padding converts them to NCHW and, under autocast, to fp32; the next conv then
    converts them back). Same values; see :func:`~fastnst.model.norm_stats.channels_last_training`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.padding[0]
        if (channels_last_training(self, x) and all(side == pad for side in self.padding)
                and pad < min(x.shape[-2:])):
            with torch.autocast(x.device.type, enabled=False):
                return _ChannelsLastReflectionPad.apply(x, pad)
        return super().forward(x)


class ConvLayer(nn.Sequential):
    """Reflection pad → conv → (instance norm → ReLU).

    The norm is :class:`~fastnst.model.norm_stats.StatInstanceNorm2d`: plain instance norm by default (same state_dict
    keys), whose statistics tiling and video can record, impose or smooth.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, *, norm: bool = True, relu: bool = True,
                 styles: int = 1):
        layers: list[nn.Module] = [ReflectionPad2d(kernel // 2), nn.Conv2d(cin, cout, kernel, stride)]
        if norm:
            layers.append(StatInstanceNorm2d(cout, affine=True) if styles == 1
                          else ConditionalInstanceNorm2d(cout, styles))
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """Two 3×3 conv layers with an identity shortcut (He et al. 2016), as in Johnson et al."""

    def __init__(self, channels: int, styles: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvLayer(channels, channels, 3, styles=styles),
                                  ConvLayer(channels, channels, 3, relu=False, styles=styles))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UpsampleConv(nn.Sequential):
    """Nearest-neighbour ×2 upsampling followed by a conv layer (no checkerboard artifacts)."""

    def __init__(self, cin: int, cout: int, kernel: int, styles: int = 1) -> None:
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), ConvLayer(cin, cout, kernel, styles=styles))


class TransformerNet(nn.Module):
    """Image → stylized image of the same size, for any input size (padded to a multiple of 4, cropped back)."""

    def __init__(self, spec: TransformerSpec | None = None) -> None:
        super().__init__()
        self.spec = spec or TransformerSpec()
        w, s = self.spec.width, self.spec.styles
        self.encoder = nn.Sequential(ConvLayer(3, w, 9, styles=s), ConvLayer(w, 2 * w, 3, 2, styles=s),
                                     ConvLayer(2 * w, 4 * w, 3, 2, styles=s))
        self.residuals = nn.Sequential(*[ResidualBlock(4 * w, s) for _ in range(self.spec.residual_blocks)])
        self.decoder = nn.Sequential(
            UpsampleConv(4 * w, 2 * w, 3, s),
            UpsampleConv(2 * w, w, 3, s),
            ConvLayer(w, 3, 9, norm=False, relu=False),
        )

    def conditional_norms(self) -> dict[str, ConditionalInstanceNorm2d]:
        """The multi-style norm layers by module name (empty for a single-style network)."""
        return {name: m for name, m in self.named_modules() if isinstance(m, ConditionalInstanceNorm2d)}

    def style_keys(self) -> set[str]:
        """The state-dict keys that hold one row per style (the conditional norms' scale and shift)."""
        return {f"{name}.{part}" for name in self.conditional_norms() for part in ("weight", "bias")}

    def forward(self, image: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        """[N, 3, H, W] in [0, 1] → [N, 3, H, W]. A multi-style network needs ``style_weights``: [styles] for the
        whole batch or [N, styles] per image (one-hot rows pick a style; other rows mix them as given)."""
        norms = self.conditional_norms().values() if self.spec.styles > 1 else ()
        if norms:
            if style_weights is None:
                raise ValueError(f"this network holds {self.spec.styles} styles: pass style_weights")
            for norm in norms:
                norm.mix = style_weights
        try:
            return self._transform(image)
        finally:
            for norm in norms:
                norm.mix = None

    def _transform(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        pad_h = max(MIN_INTERNAL_SIDE - h, (-h) % SIZE_MULTIPLE)
        pad_w = max(MIN_INTERNAL_SIDE - w, (-w) % SIZE_MULTIPLE)
        x = image
        if pad_h or pad_w:
            # Reflection needs pad < size; replicate covers tiny inputs.
            mode = "reflect" if pad_h < h and pad_w < w else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        y = self.decoder(self.residuals(self.encoder(x * PIXEL_SCALE))) / PIXEL_SCALE
        return y[..., :h, :w]


def bake(network: TransformerNet, weights: Sequence[float] | torch.Tensor) -> TransformerNet:
    """A single-style network computing ``network`` at the style mix ``weights`` (normalised to sum to 1); a
    one-hot mix gives that style exactly. The result runs everywhere a single-style network runs."""
    if network.spec.styles == 1:
        return network
    mix = normalised_weights(weights, network.spec.styles)
    state = mixed_state(network.state_dict(), network.style_keys(), mix)
    return network_like(network, replace(network.spec, styles=1), state).train(network.training)


def network_like(network: TransformerNet, spec: TransformerSpec, state: dict[str, torch.Tensor]) -> TransformerNet:
    """A new ``spec`` network holding ``state``, on ``network``'s device and in its dtype."""
    made = TransformerNet(spec)
    made.load_state_dict(state)
    parameter = next(network.parameters())
    return made.to(device=parameter.device, dtype=parameter.dtype)


def extend(network: TransformerNet, new_styles: int = 1) -> TransformerNet:
    """``network`` with ``new_styles`` more styles: every weight copied, each new style's norm rows starting from
    the mean of the existing ones (a single-style network's norms become row 0)."""
    spec = replace(network.spec, styles=network.spec.styles + new_styles)
    grown = TransformerNet(spec)
    old_state = network.state_dict()
    state, style_keys = {}, grown.style_keys()
    for key in grown.state_dict():
        source = old_state[key]
        if key in style_keys:
            rows = source if source.ndim == 2 else source[None]
            source = torch.cat([rows, rows.mean(0, keepdim=True).expand(new_styles, -1)])
        state[key] = source
    grown.load_state_dict(state)
    parameter = next(network.parameters())
    return grown.to(device=parameter.device, dtype=parameter.dtype)


def restart_rows(network: TransformerNet, rows: Sequence[int]) -> TransformerNet:
    """A copy of ``network`` whose style ``rows`` hold the mean of its other rows: where styles that are learned
    again start, so the start depends only on the rows that stay."""
    chosen = list(rows)
    others = [row for row in range(network.spec.styles) if row not in chosen]
    if not chosen or not others:
        raise ValueError(f"restarting rows {chosen} of {network.spec.styles} needs at least one row kept")
    state = network.state_dict()
    for key in network.style_keys():
        state[key] = state[key].clone()
        state[key][chosen] = state[key][others].mean(0, keepdim=True)
    return network_like(network, network.spec, state)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
