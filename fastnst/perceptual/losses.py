"""Perceptual losses: content (feature MSE), style (Gram matrices), total variation.

Johnson et al. 2016, section 3: content loss on one VGG layer, style loss as the squared Frobenius distance of
Gram matrices normalised by C·H·W over several layers, and a total-variation regulariser. All terms are computed
in float32, even when the networks run under autocast, because Gram entries overflow fp16 and lose precision in
bf16.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fastnst.perceptual.loss_weights import LossWeights

# A Gram matrix of bf16/fp16 features on the CPU widens this many feature values at a time into one reused fp32
# buffer: widening a whole early-layer map at once would allocate tens of MB of fresh pages on every step, which
# costs more than the products themselves.
_WIDEN_CHUNK_ELEMENTS = 1 << 20


def _rows_view(features: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] → [N, HW, C] without a copy: contiguous for channels_last memory, a transposed view of
    [N, C, HW] for NCHW memory (the matmuls take either)."""
    n, c, h, w = features.shape
    if c > 1 and features.is_contiguous(memory_format=torch.channels_last):
        return features.permute(0, 2, 3, 1).reshape(n, h * w, c)
    return features.reshape(n, c, h * w).transpose(1, 2)


def _widened_gram(rows: torch.Tensor) -> torch.Tensor:
    """rowsᵀ·rows in fp32 for half-precision rows [N, HW, C]: exact products, fp32 sums, chunk by chunk on the CPU."""
    if rows.device.type != "cpu":
        wide = rows.float()
        return torch.bmm(wide.transpose(1, 2), wide)
    n, hw, c = rows.shape
    chunk = max(1, min(hw, _WIDEN_CHUNK_ELEMENTS // (n * c)))
    buffer = torch.empty((n, chunk, c), dtype=torch.float32)
    gram = torch.zeros((n, c, c), dtype=torch.float32)
    for start in range(0, hw, chunk):
        part = buffer[:, : min(chunk, hw - start)]
        part.copy_(rows[:, start : start + chunk])
        gram.baddbmm_(part.transpose(1, 2), part)
    return gram


class _Gram(torch.autograd.Function):
    """G = rowsᵀ·rows / divisor with a one-matmul backward.

    Autograd's backward of ``bmm(rowsᵀ, rows)`` takes two matmuls (one per operand) and adds their results;
    since G is symmetric, d rows = rows·(dG + dGᵀ) / divisor is one. For bf16 rows that product runs in bf16 on
    the high and low bf16 halves of the fp32 factor (two cheap matmuls, ~16 bits of the factor kept), instead of
    widening the features to fp32; the result is rounded to bf16 as the features' gradient always was.
    """

    @staticmethod
    def forward(ctx: Any, rows: torch.Tensor, divisor: int, low_precision_products: bool) -> torch.Tensor:
        ctx.save_for_backward(rows)
        ctx.divisor = divisor
        if low_precision_products or rows.dtype not in (torch.bfloat16, torch.float16):
            rows = rows if low_precision_products else rows.float()
            gram = torch.bmm(rows.transpose(1, 2), rows).float()
        else:
            gram = _widened_gram(rows)
        return gram.div_(divisor)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (rows,) = ctx.saved_tensors
        with torch.autocast(rows.device.type, enabled=False):
            factor = (grad + grad.transpose(1, 2)).div_(ctx.divisor)  # fp32 [N, C, C], symmetric
            if rows.dtype == torch.bfloat16:
                high = factor.to(torch.bfloat16)
                low = (factor - high.float()).to(torch.bfloat16)
                return _times(rows, high, low), None, None
            if rows.dtype == torch.float16:  # the factor can exceed fp16's range: products in fp32
                return _times(rows.float(), factor).to(rows.dtype), None, None
            return _times(rows, factor.to(rows.dtype)), None, None


def _times(rows: torch.Tensor, factor: torch.Tensor, low: torch.Tensor | None = None) -> torch.Tensor:
    """rows·(factor + low) for symmetric factors, [N, HW, C], laid out in memory like ``rows``."""
    if rows.transpose(1, 2).is_contiguous():  # NCHW features: compute the [N, C, HW] transpose
        rows_t = rows.transpose(1, 2)
        out = torch.bmm(factor, rows_t)
        return (out if low is None else out.baddbmm_(low, rows_t)).transpose(1, 2)
    out = torch.bmm(rows, factor)
    return out if low is None else out.baddbmm_(rows, low)


def gram_matrix(features: torch.Tensor, bf16_products: bool = False) -> torch.Tensor:
    """Gram matrix G[c, d] = Σ_hw F[c, hw] F[d, hw] / (C·H·W), per batch item; returns [N, C, C] in fp32.

    The products of bf16/fp16 features are exact in fp32 and summed in fp32. With ``bf16_products`` and bf16
    features the matmul runs in bf16 instead (fp32 accumulation, the result rounded to bf16, then widened): a
    third of the time, for callers that accept a bf16-rounded Gram. fp16 features never take that path (their
    sums overflow fp16). Either way the gradient comes back in the features' dtype and memory layout.
    """
    n, c, h, w = features.shape
    in_bf16 = bf16_products and features.dtype == torch.bfloat16 and c > 1
    with torch.autocast(features.device.type, enabled=False):  # autocast would run the bmm in bf16/fp16
        return _Gram.apply(_rows_view(features), c * h * w, in_bf16)


class _FeatureMSE(torch.autograd.Function):
    """mean((output - target)²) in fp32 for features of any dtype.

    ``F.mse_loss`` on the widened features allocates the fp32 copies of both and returns an fp32 gradient in NCHW
    layout, which autograd then narrows to bf16 and adds to the channels_last gradient from the next layer with a
    strided add. Here the one fp32 difference is kept for the backward, whose gradient has the output's dtype and
    memory layout.
    """

    @staticmethod
    def forward(ctx: Any, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        difference = output.to(torch.float32, copy=True).sub_(target)  # exact for bf16 inputs; keeps the layout
        ctx.save_for_backward(difference)
        ctx.dtypes = (output.dtype, target.dtype)
        return _mean_square(difference)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        (difference,) = ctx.saved_tensors
        scale = grad * (2.0 / difference.numel())
        grads: list[torch.Tensor | None] = []
        for sign, dtype, needed in zip((1, -1), ctx.dtypes, ctx.needs_input_grad, strict=True):
            if not needed:
                grads.append(None)
                continue
            # fp32 product, rounded once (a bf16 ``out=`` would take ATen's unvectorised casting loop, 5× slower)
            grads.append((difference * (scale * sign)).to(dtype))
        return grads[0], grads[1]


def _mean_square(values: torch.Tensor) -> torch.Tensor:
    """mean(values²) in fp32 without a squared copy: fp32 norms of short rows in memory order, summed in fp64
    (one fp32 norm over millions of values drifts by ~1e-4; this matches ``F.mse_loss`` to ~1e-7)."""
    if values.dim() == 4 and values.is_contiguous(memory_format=torch.channels_last):
        rows = values.permute(0, 2, 3, 1).reshape(-1, values.shape[1])
    else:
        rows = values.reshape(-1, values.shape[-1])
    return (torch.linalg.vector_norm(rows, dim=1).double().square().sum() / values.numel()).float()


def feature_mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``F.mse_loss(output.float(), target.float())`` with a cheaper backward (see :class:`_FeatureMSE`)."""
    if output.shape != target.shape:
        raise ValueError(f"feature shapes differ: {tuple(output.shape)} vs {tuple(target.shape)}")
    with torch.autocast(output.device.type, enabled=False):
        return _FeatureMSE.apply(output, target)


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels (anisotropic, squared form), in fp32."""
    image = image.float()
    dh = image[..., 1:, :] - image[..., :-1, :]
    dw = image[..., :, 1:] - image[..., :, :-1]
    return dh.pow(2).mean() + dw.pow(2).mean()


class ContentLoss(nn.Module):
    """MSE between the output's and the content image's activations at one layer."""

    def __init__(self, layer: str) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, output: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return feature_mse(output[self.layer], target[self.layer])


class StyleLoss(nn.Module):
    """Weighted sum over layers of the MSE between Gram matrices and the style image's Grams.

    The style Grams are computed once and kept as buffers (they move with ``.to(device)`` and never need
    gradients); a batch of outputs is compared against the same target Gram. ``style_features`` may also be a
    sequence of feature maps, one per style of a multi-style network: the buffers then hold one Gram per style
    ([S, C, C]) and :meth:`forward` takes each sample's style index, so every sample is measured against its own
    painting.
    """

    def __init__(self, style_features: Mapping[str, torch.Tensor] | Sequence[Mapping[str, torch.Tensor]],
                 layer_weights: Mapping[str, float], bf16_products: bool = False) -> None:
        super().__init__()
        self.bf16_products = bf16_products  # for the outputs' Grams only; the targets stay exact
        per_style = [style_features] if isinstance(style_features, Mapping) else list(style_features)
        if not per_style:
            raise ValueError("style features of at least one style are needed")
        missing = sorted({name for features in per_style for name in layer_weights if name not in features})
        if missing:
            raise ValueError(f"style features lack layer(s) {', '.join(missing)}")
        self.layer_weights = dict(layer_weights)
        self.styles = len(per_style)
        for name in self.layer_weights:
            # Average over the style batch so several style images (or crops) give one target per layer.
            grams = [gram_matrix(features[name].detach()).mean(dim=0, keepdim=True) for features in per_style]
            self.register_buffer(f"gram_{name}", torch.cat(grams))

    def target(self, layer: str) -> torch.Tensor:
        """The style Gram for ``layer``, shape [1, C, C] ([S, C, C] for S styles)."""
        return getattr(self, f"gram_{layer}")

    def per_layer(self, output: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Unweighted Gram distance per layer (useful for logging and tests); a single-style loss only."""
        if self.styles != 1:
            raise ValueError(f"this loss holds {self.styles} styles: use per_sample with each sample's style")
        losses = {}
        for name in self.layer_weights:
            gram = gram_matrix(output[name], self.bf16_products)
            losses[name] = F.mse_loss(gram, self.target(name).expand_as(gram), reduction="mean")
        return losses

    def per_sample(self, output: Mapping[str, torch.Tensor], style_index: torch.Tensor) -> torch.Tensor:
        """[N] weighted style loss of each sample against its own style's Grams (``style_index``: [N] ints)."""
        total: torch.Tensor | None = None
        for name, weight in self.layer_weights.items():
            gram = gram_matrix(output[name], self.bf16_products)
            target = self.target(name).index_select(0, style_index.to(gram.device))
            term = weight * (gram - target).pow(2).mean(dim=(1, 2))
            total = term if total is None else total + term
        assert total is not None  # at least one layer (checked by the config)
        return total

    def forward(self, output: Mapping[str, torch.Tensor], style_index: torch.Tensor | None = None) -> torch.Tensor:
        if style_index is not None:
            return self.per_sample(output, style_index).mean()
        parts = self.per_layer(output)
        return sum(self.layer_weights[name] * value for name, value in parts.items())  # type: ignore[return-value]


class PerceptualLoss(nn.Module):
    """Weighted sum of content, style and TV losses; returns the total and each weighted part for logging."""

    def __init__(self, content: ContentLoss, style: StyleLoss, weights: LossWeights,
                 style_weights: Sequence[float] | None = None) -> None:
        """``style_weights``: each style's own weight for a multi-style loss (default ``weights.style`` for all),
        since paintings whose Grams differ in scale need different weights in one network."""
        super().__init__()
        self.content = content
        self.style = style
        self.weights = weights
        per_style = [weights.style] * style.styles if style_weights is None else list(style_weights)
        if len(per_style) != style.styles:
            raise ValueError(f"{len(per_style)} style weights for {style.styles} styles")
        self.register_buffer("style_weights", torch.tensor(per_style, dtype=torch.float32), persistent=False)

    def forward(
        self,
        output_image: torch.Tensor,
        output_features: Mapping[str, torch.Tensor],
        content_features: Mapping[str, torch.Tensor],
        style_index: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``style_index`` ([N] ints) picks each sample's style for a multi-style loss; the parts then include
        ``style_per_sample`` ([N], weighted) so a trainer can log the loss of each style."""
        if style_index is not None:
            weights = self.style_weights.index_select(0, style_index.to(self.style_weights.device))
            per_sample = weights * self.style.per_sample(output_features, style_index)
            style = per_sample.mean()
        else:
            style = self.weights.style * self.style(output_features)
        parts = {
            "content": self.weights.content * self.content(output_features, content_features),
            "style": style,
            "tv": self.weights.tv * total_variation(output_image),
        }
        total = parts["content"] + parts["style"] + parts["tv"]
        if style_index is not None:
            parts["style_per_sample"] = per_sample
        return total, parts
