"""The stability loss: a network should answer a slightly perturbed photo as it answers the photo itself.

Gupta et al., ICCV 2017 ("Characterizing and Improving Stability in Neural Style Transfer"): per-frame flicker
comes from the network amplifying what changes between frames, sensor noise and small motion. The loss feeds each
training crop again with Gaussian pixel noise, optionally cut by a random integer shift, and penalises the mean
squared difference between that output and the same window of the clean crop's output. A shift of up to 4 px
reaches every phase of the network's stride-4 grid (the part of a camera pan the convolutions alone do not make
equivariant), but the default is noise only: trained from scratch it steadied both static and panning video more,
at a lower style cost, than noise with shifts (docs/benchmarks.md, "Stability learned in training").

The perturbation is a pure function of (seed, step, rank), like the crops, so a resumed run draws what it would
have. The clean output is a fixed target by default (no gradient through it): the clean pass answers to the
perceptual loss alone and only the perturbed pass is pulled toward it, so the term cannot lower itself by
flattening the clean output too. ``clean_gradient=True`` gives both sides gradient; it has not been measured
against the default yet (``benchmarks/stability.py --variants 1e8:both --keep`` does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fastnst.model.transformer import SIZE_MULTIPLE
from fastnst.training.config import TrainConfig
from fastnst.training.data import _generator

# Key of the stability draws in the seeded generator family of fastnst.training.data (1 = data order, 2 = crops,
# 3 = multi-style draws).
_STABILITY_KEY = 4


@dataclass(frozen=True)
class StabilitySpec:
    """What the stability loss perturbs, and how much it weighs."""

    weight: float = 0.0  # 0 = no stability loss (and no extra network pass)
    noise: float = 0.01  # σ of the Gaussian pixel noise, in [0, 1] units
    shift: int = 0  # the perturbed window starts 0…shift px right of and below the crop's corner
    clean_gradient: bool = False  # True: the clean output is pulled toward the perturbed one as well
    margin: int = 0  # px at each edge of the output window left out of the loss

    @classmethod
    def from_config(cls, config: TrainConfig) -> StabilitySpec:
        return cls(config.stability_weight, config.stability_noise, config.stability_shift,
                   margin=config.stability_margin)

    @property
    def enabled(self) -> bool:
        return self.weight > 0


@dataclass(frozen=True)
class Perturbation:
    """One step's perturbation of a batch: the window cut from each crop and the noise added to it."""

    top: int
    left: int
    height: int
    width: int
    noise: torch.Tensor  # [N, 3, height, width], CPU, fp32

    def window(self, image: torch.Tensor) -> torch.Tensor:
        """The same window of ``image`` ([N, C, H, W]): what the perturbed output is compared with."""
        return image[..., self.top : self.top + self.height, self.left : self.left + self.width]

    def apply(self, image: torch.Tensor) -> torch.Tensor:
        """The perturbed input: the window plus noise, clamped to [0, 1] as a camera frame is."""
        noise = self.noise.to(device=image.device, dtype=image.dtype)
        return (self.window(image) + noise).clamp(0, 1)


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """The generator of ``step``'s perturbation on ``rank``: a pure function of its arguments."""
    return _generator(seed, _STABILITY_KEY, step, rank)


def draw_perturbation(shape: torch.Size | tuple[int, ...], spec: StabilitySpec,
                      generator: torch.Generator) -> Perturbation:
    """A window shifted by 0…``spec.shift`` px in each direction and noise for it, for a batch of ``shape``.

    The window is smaller than the crop by ``shift`` rounded up to a multiple of 4, so it stays a size the network
    takes without padding and every shift keeps it inside the crop."""
    batch, channels, height, width = shape
    margin = -(-spec.shift // SIZE_MULTIPLE) * SIZE_MULTIPLE
    top = int(torch.randint(0, spec.shift + 1, (), generator=generator))
    left = int(torch.randint(0, spec.shift + 1, (), generator=generator))
    noise = torch.randn(batch, channels, height - margin, width - margin, generator=generator) * spec.noise
    return Perturbation(top, left, height - margin, width - margin, noise)


def stability_loss(network: Callable[[torch.Tensor], torch.Tensor], clean_input: torch.Tensor,
                   clean_output: torch.Tensor, generator: torch.Generator, spec: StabilitySpec) -> torch.Tensor:
    """Mean squared difference (fp32, [0, 1] units, unweighted) between ``network`` on a perturbed copy of
    ``clean_input`` and the same window of ``clean_output`` (= ``network(clean_input)``), ``spec.margin`` px in from
    the window's edges.

    ``network`` is called once; it may close over a multi-style network's style weights and runs under whatever
    autocast the caller holds."""
    perturbation = draw_perturbation(clean_input.shape, spec, generator)
    perturbed_output = network(perturbation.apply(clean_input))
    target = perturbation.window(clean_output)
    if not spec.clean_gradient:
        target = target.detach()
    inner = (..., slice(spec.margin, perturbed_output.shape[-2] - spec.margin),
             slice(spec.margin, perturbed_output.shape[-1] - spec.margin))
    return F.mse_loss(perturbed_output[inner].float(), target[inner].float())
