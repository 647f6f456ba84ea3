"""Options of the classic per-image optimizer (Gatys, Ecker, Bethge, CVPR 2016), checked once, up front.

One frozen dataclass holds every option with its default and help text; the CLI builds its flags from these
fields, so each default lives here only. Every check runs in ``__post_init__`` so a bad value fails before
weights are loaded or any file is written. Nothing here imports torch at module level: the CLI reads these fields
to build ``fastnst optimize --help``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import typing
from dataclasses import dataclass, fields
from typing import Any, Literal

from fastnst.perceptual.loss_weights import LossWeights
from fastnst.perceptual.weights.catalogue import ARCHITECTURE, WEIGHTS_NAMES, WeightsName
from fastnst.utils.defaults import DEFAULT_MAX_PIXELS
from fastnst.utils.errors import ConfigError
from fastnst.utils.typed_config import Schema, option

OptimizerName = Literal["lbfgs", "adam"]
InitName = Literal["content", "style", "noise"]
Device = Literal["auto", "cpu", "cuda"]
Amp = Literal["auto", "none", "bf16"]

GATYS_STYLE_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
"""Gatys et al. 2016, section 3: style represented on conv1_1 … conv5_1 (their 'conv' are the ReLU outputs)."""

DEFAULT_LOSS_WEIGHTS: dict[str, LossWeights] = {
    # The Caffe VGG19 sees pixels on the 0..255 scale, so its activations are ~100-200× those of torchvision's
    # weights: content MSE grows with the square and Gram MSE with the fourth power of that factor. Content 5 /
    # style 100 are jcjohnson/neural-style's defaults for these weights (same Gram normalisation by C·H·W, same
    # mean-squared errors). Gatys et al. use no TV term; 1e5 (≈0.1 % of the final loss) only damps pixel noise.
    "vgg19_caffe": LossWeights(content=5.0, style=100.0, tv=1e5),
    # torchvision weights (ImageNet mean/std input): the PyTorch tutorial's content 1 / style 1e6, which keeps
    # about the same style/content balance at the end (measured with VGG16: activations ≈200× smaller than the
    # Caffe VGG19's); TV scaled by the same content ratio (≈2e5).
    "vgg19": LossWeights(content=1.0, style=1e6, tv=0.5),
    "vgg16": LossWeights(content=1.0, style=1e6, tv=0.5),
}
"""Default content/style/TV weights per VGG identity, so results look right whichever weights are chosen."""

DEFAULT_LEARNING_RATE: dict[str, float] = {"lbfgs": 1.0, "adam": 0.02}
"""L-BFGS takes a quasi-Newton step (rate 1 is the natural one); Adam's rate is in [0, 1] pixel units per step
(neural-style's Adam rate of 10 on 0..255 pixels is ≈0.04)."""


def _per_vgg(term: str) -> str:
    """'vgg19_caffe 5, vgg19 1, ...' for help texts, built from DEFAULT_LOSS_WEIGHTS so it cannot drift."""
    return ", ".join(f"{name} {getattr(weights, term):g}" for name, weights in DEFAULT_LOSS_WEIGHTS.items())


@dataclass(frozen=True)
class OptimizeOptions:
    """Everything that defines one optimisation besides the images; invalid values raise ConfigError."""

    # --- loss network
    vgg: WeightsName = option("vgg19_caffe", "loss network weights: vgg19_caffe (Gatys' original Caffe VGG19, "
                              "the default), vgg19 or vgg16 (torchvision)")
    vgg_weights: str = option("", "explicit path to VGG weights (else FASTNST_VGG_WEIGHTS, caches, download)")
    content_layer: str = option("relu4_2", "VGG layer of the content loss (Gatys: conv4_2)")
    style_layers: tuple[str, ...] = option(GATYS_STYLE_LAYERS, "VGG layers of the style loss")
    style_layer_weights: tuple[float, ...] = option((1.0,) * 5, "weight of each style layer, same order")
    # --- loss weights (None: the default for the chosen VGG, see DEFAULT_LOSS_WEIGHTS)
    content_weight: float | None = option(None, f"content loss weight (default per VGG: {_per_vgg('content')})")
    style_weight: float | None = option(None, f"style loss weight (default per VGG: {_per_vgg('style')})")
    tv_weight: float | None = option(None, f"total-variation weight (default per VGG: {_per_vgg('tv')})")
    style_blend_weights: tuple[float, ...] = option((), "one weight per style image, normalised to sum 1 "
                                                    "(default: equal)")
    # --- optimisation
    optimizer: OptimizerName = option("lbfgs", "lbfgs (Gatys) or adam")
    learning_rate: float | None = option(None, "step size (default: " + ", ".join(
        f"{rate:g} for {name}" for name, rate in DEFAULT_LEARNING_RATE.items()) + ")")
    iterations: tuple[int, ...] = option((500,), "iterations per scale: one number for every scale, or one per scale")
    sizes: tuple[int, ...] = option((512,), "longest side of the result at each scale, coarse to fine "
                                    "(e.g. 256 512 0); 0 = the content image's own size")
    style_scale: float = option(1.0, "style image's longest side relative to the content's at each scale")
    init: InitName = option("content", "start from the content image, the style image or seeded noise")
    original_colors: bool = option(False, "keep the content's colours (luminance-only transfer)")
    seed: int = option(0, "seed of the noise initialisation (results are reproducible on one machine)")
    # --- hardware
    device: Device = option("auto", "cpu, cuda or auto (cuda when present)")
    amp: Amp = option("auto", "bf16 runs VGG under bf16 autocast, losses stay fp32; auto = bf16 on CPUs with "
                      "native bf16 (AVX512-BF16/AMX; faster per iteration, docs/benchmarks.md) and on bf16 GPUs")
    channels_last: bool = option(True, "channels_last memory format (faster convolutions on CPU and GPU)")
    # --- outputs
    save_every: int = option(0, "also save the image every N iterations beside the output (0 = never)")
    tensorboard: str = option("", "write TensorBoard logs (loss terms, images) to this folder ('' = off)")
    max_pixels: int = option(DEFAULT_MAX_PIXELS, "refuse input images with more decoded pixels than this")

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ConfigError("; ".join(problems))

    def problems(self) -> list[str]:
        """Value checks that types alone cannot express, each as one short sentence."""
        from fastnst.perceptual.vgg import validate_layers  # torch: only when options are built, not for --help

        out: list[str] = []
        if self.vgg not in WEIGHTS_NAMES:
            return [f"vgg must be one of {', '.join(WEIGHTS_NAMES)}, got {self.vgg!r}"]
        for name, allowed in (("optimizer", OptimizerName), ("init", InitName), ("device", Device), ("amp", Amp)):
            choices = typing.get_args(allowed)
            if getattr(self, name) not in choices:
                out.append(f"{name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}")
        if not self.style_layers:
            out.append("style_layers must name at least one layer")
        try:
            validate_layers(ARCHITECTURE[self.vgg], (self.content_layer, *self.style_layers))
        except ValueError as exc:
            out.append(str(exc))
        if len(set(self.style_layers)) != len(self.style_layers):
            out.append(f"style_layers lists a layer twice: {', '.join(self.style_layers)}")
        if len(self.style_layer_weights) != len(self.style_layers):
            out.append(f"style_layer_weights has {len(self.style_layer_weights)} entries but style_layers has "
                       f"{len(self.style_layers)} ({', '.join(self.style_layers)})")
        out += _non_negative("style_layer_weights", self.style_layer_weights)
        out += _non_negative("style_blend_weights", self.style_blend_weights)
        if self.style_blend_weights and sum(self.style_blend_weights) <= 0:
            out.append("style_blend_weights must not all be 0")
        for name in ("content_weight", "style_weight", "tv_weight"):
            value = getattr(self, name)
            if value is not None:
                out += _non_negative(name, (value,))
        if self.learning_rate is not None and not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            out.append(f"learning_rate must be a finite number > 0, got {self.learning_rate}")
        if not self.iterations:
            out.append("iterations must be given")
        elif any(count < 1 for count in self.iterations):
            out.append(f"iterations must be at least 1, got {', '.join(map(str, self.iterations))}")
        if not self.sizes:
            out.append("sizes must name at least one scale")
        elif len(self.iterations) not in (1, len(self.sizes)):
            out.append(f"iterations has {len(self.iterations)} entries but sizes has {len(self.sizes)}; give one "
                       "count for every scale or one per scale")
        out += self._size_problems()
        if not (math.isfinite(self.style_scale) and self.style_scale > 0):
            out.append(f"style_scale must be a finite number > 0, got {self.style_scale}")
        if self.save_every < 0:
            out.append(f"save_every must be ≥ 0, got {self.save_every}")
        if self.max_pixels < 1:
            out.append(f"max_pixels must be positive, got {self.max_pixels}")
        return out

    def _size_problems(self) -> list[str]:
        from fastnst.perceptual.vgg import MIN_INPUT_SIDE

        sizes = self.sizes
        if any(size < 0 for size in sizes):
            return [f"sizes must be positive (or 0 for the content's own size), got {', '.join(map(str, sizes))}"]
        if 0 in sizes[:-1]:
            return ["sizes: only the last scale may be 0 (the content's own size)"]
        explicit = [size for size in sizes if size]
        if any(size < MIN_INPUT_SIDE for size in explicit):
            return [f"sizes must be at least {MIN_INPUT_SIDE} px for VGG, got {', '.join(map(str, sizes))}"]
        if any(b <= a for a, b in itertools.pairwise(explicit)):
            return [f"sizes must grow from coarse to fine, got {', '.join(map(str, sizes))}"]
        return []

    @property
    def loss_weights(self) -> LossWeights:
        """Content/style/TV weights with the chosen VGG's defaults filled in."""
        default = DEFAULT_LOSS_WEIGHTS[self.vgg]
        return LossWeights(
            content=default.content if self.content_weight is None else self.content_weight,
            style=default.style if self.style_weight is None else self.style_weight,
            tv=default.tv if self.tv_weight is None else self.tv_weight,
        )

    @property
    def lr(self) -> float:
        """The learning rate with the optimizer's default filled in."""
        return DEFAULT_LEARNING_RATE[self.optimizer] if self.learning_rate is None else self.learning_rate

    def iterations_at(self, scale: int) -> int:
        """Iterations to run at scale index ``scale``."""
        return self.iterations[0] if len(self.iterations) == 1 else self.iterations[scale]

    def blend_weights(self, styles: int) -> tuple[float, ...]:
        """Per-style weights summing to 1; ConfigError if the count does not match the style images."""
        weights = self.style_blend_weights or (1.0,) * styles
        if len(weights) != styles:
            raise ConfigError(f"{len(weights)} style blend weights were given for {styles} style image(s); give "
                              "one weight per style")
        total = sum(weights)
        return tuple(weight / total for weight in weights)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def replace(self, **changes: Any) -> OptimizeOptions:
        return dataclasses.replace(self, **changes)


def _non_negative(name: str, values: tuple[float, ...]) -> list[str]:
    bad = [value for value in values if not (math.isfinite(value) and value >= 0)]
    return [f"{name} must be finite numbers ≥ 0, got {', '.join(map(str, bad))}"] if bad else []


SCHEMA = Schema(OptimizeOptions, noun="option")
FIELD_TYPES: dict[str, Any] = SCHEMA.types
