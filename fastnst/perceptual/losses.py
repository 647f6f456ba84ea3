"""Perceptual losses: content (feature MSE), style (Gram matrices), total variation.

Johnson et al. 2016, section 3: content loss on one VGG layer, style loss as the squared Frobenius distance of
Gram matrices normalised by C·H·W over several layers, and a total-variation regulariser. All terms are computed
in float32, even when the networks run under autocast, because Gram entries overflow fp16 and lose precision in
bf16.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fastnst.perceptual.loss_weights import LossWeights


def gram_matrix(features: torch.Tensor, bf16_products: bool = False) -> torch.Tensor:
    """Gram matrix G[c, d] = Σ_hw F[c, hw] F[d, hw] / (C·H·W), per batch item; returns [N, C, C] in fp32.

    With ``bf16_products`` and bf16 features (VGG under bf16 autocast) the products are taken in bf16 (the
    kernels accumulate in fp32) and only the result is widened: no fp32 copy of the features, a third of the
    matmul time. fp16 features never take this path (their sums overflow fp16).
    """
    n, c, h, w = features.shape
    in_bf16 = bf16_products and features.dtype == torch.bfloat16 and c > 1
    source = features if in_bf16 else features.float()  # .float() keeps the memory format
    with torch.autocast(features.device.type, enabled=False):  # autocast would run the bmm in bf16/fp16
        if in_bf16 or (c > 1 and source.is_contiguous(memory_format=torch.channels_last)):
            # A view of channels_last memory as [N, HW, C]: no copy, and the gradient comes back in the layout
            # the convolutions use. Reshaping to [N, C, HW] would copy, and its NCHW gradient then has to be
            # added to the channels_last one from the next layer (a strided add that showed up in profiles of a
            # Gatys iteration).
            flat = source.permute(0, 2, 3, 1).reshape(n, h * w, c)
            gram = torch.bmm(flat.transpose(1, 2), flat)
        else:
            flat = source.reshape(n, c, h * w)  # [N, C, HW]
            gram = torch.bmm(flat, flat.transpose(1, 2))
        return gram.float() / (c * h * w)


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
        return F.mse_loss(output[self.layer].float(), target[self.layer].float())


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

    def __init__(self, content: ContentLoss, style: StyleLoss, weights: LossWeights) -> None:
        super().__init__()
        self.content = content
        self.style = style
        self.weights = weights

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
            per_sample = self.weights.style * self.style.per_sample(output_features, style_index)
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
