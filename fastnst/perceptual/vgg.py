"""Frozen VGG feature extractor addressed by layer name (relu1_1 … relu5_4).

Normalisation happens inside, so callers pass RGB in [0, 1]; the network stops after the deepest layer any loss
needs, which saves most of VGG's compute for Johnson's relu4_3 and Gatys' relu5_1.
"""

from __future__ import annotations

import os
import re
from typing import Literal

import torch
from torch import nn
from torchvision.models import vgg16, vgg19

from fastnst.perceptual.weights.catalogue import ARCHITECTURE, NORMALIZATION, WeightsName
from fastnst.perceptual.weights.resolve import load_vgg_features_state

Arch = Literal["vgg16", "vgg19"]

# torchvision's configurations: numbers are conv output channels, "M" is a 2×2 max-pool.
_CONFIGS: dict[str, list[int | str]] = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}

# Inputs smaller than this vanish before relu5_x (four pools); the check gives a clear error instead of a
# cryptic size mismatch deep inside the network.
MIN_INPUT_SIDE = 16


def layer_names(arch: Arch) -> dict[str, int]:
    """Map layer names (conv1_1, relu1_1, …, pool5) to indices in torchvision's ``features`` Sequential."""
    names: dict[str, int] = {}
    block, conv, index = 1, 1, 0
    for item in _CONFIGS[arch]:
        if item == "M":
            names[f"pool{block}"] = index
            index += 1
            block, conv = block + 1, 1
        else:
            names[f"conv{block}_{conv}"] = index
            names[f"relu{block}_{conv}"] = index + 1
            index += 2
            conv += 1
    return names


def channels_of(arch: Arch, layer: str) -> int:
    """Number of channels a named layer outputs."""
    match = re.fullmatch(r"(?:conv|relu)(\d)_\d|pool(\d)", layer)
    if match is None:
        raise ValueError(f"not a VGG layer name: {layer!r}")
    block = int(match.group(1) or match.group(2))
    return [64, 128, 256, 512, 512][block - 1]


def validate_layers(arch: Arch, layers: list[str] | tuple[str, ...]) -> None:
    """Raise ValueError naming the valid choices when a layer name is unknown."""
    valid = layer_names(arch)
    unknown = [name for name in layers if name not in valid]
    if unknown:
        choices = ", ".join(name for name in valid if name.startswith("relu"))
        raise ValueError(f"unknown {arch} layer(s) {', '.join(unknown)}; valid relu layers: {choices}")


class VGGFeatures(nn.Module):
    """Returns ``{layer name: activation}`` for the requested layers of a frozen, eval-mode VGG.

    Input is RGB in [0, 1], shape [N, 3, H, W]; the module normalises for the chosen weights (torchvision's
    mean/std or Caffe's 0..255 mean subtraction) without touching its input in place.
    """

    def __init__(
        self,
        layers: list[str] | tuple[str, ...],
        weights: WeightsName = "vgg16",
        weights_path: str | os.PathLike[str] | None = None,
        *,
        pretrained: bool = True,
    ) -> None:
        super().__init__()
        arch: Arch = ARCHITECTURE[weights]
        validate_layers(arch, layers)
        self.arch = arch
        self.weights = weights
        self.layers = tuple(layers)
        index_of = layer_names(arch)
        self._index_to_name = {index_of[name]: name for name in self.layers}
        last = max(self._index_to_name)

        features = (vgg16 if arch == "vgg16" else vgg19)(weights=None).features
        if pretrained:
            features.load_state_dict(load_vgg_features_state(weights, weights_path))
        # A ReLU overwrites its conv's output in place (the conv's backward does not need it, and an out-of-place
        # ReLU would allocate and fill a fresh map per layer, ~5 % of a CPU training step), unless that conv
        # output is itself a requested layer.
        requested = set(self._index_to_name)
        for index, module in enumerate(features):
            if isinstance(module, nn.ReLU):
                module.inplace = index - 1 not in requested
        self.features = features[: last + 1]
        self.requires_grad_(False)
        self.eval()

        norm = NORMALIZATION[weights]
        self.register_buffer("mean", torch.tensor(norm.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(norm.std).view(1, 3, 1, 1), persistent=False)
        self.scale = float(norm.scale)

    def train(self, mode: bool = True) -> VGGFeatures:
        """Stay in eval mode: the extractor is a fixed measuring instrument."""
        return super().train(False)

    def forward(self, image: torch.Tensor, layers: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
        """Activations of ``layers`` (default: all configured ones); stops after the deepest one asked for."""
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"VGG expects [N, 3, H, W] RGB input, got shape {tuple(image.shape)}")
        if min(image.shape[-2:]) < MIN_INPUT_SIDE:
            raise ValueError(
                f"image of {image.shape[-1]}×{image.shape[-2]} px is too small for VGG; need at least "
                f"{MIN_INPUT_SIDE} px per side"
            )
        wanted = self._index_to_name
        if layers is not None:
            unknown = [name for name in layers if name not in self.layers]
            if unknown:
                raise ValueError(f"layer(s) {', '.join(unknown)} not configured; "
                                 f"configured: {', '.join(self.layers)}")
            wanted = {index: name for index, name in wanted.items() if name in layers}
        last = max(wanted)
        x = (image * self.scale - self.mean.to(image.dtype)) / self.std.to(image.dtype)
        out: dict[str, torch.Tensor] = {}
        for index, module in enumerate(self.features):
            x = module(x)
            if index in wanted:
                out[wanted[index]] = x
            if index == last:
                break
        return out
