"""Instance-norm statistics that can be recorded, imposed, measured over many tiles, or smoothed over frames.

Instance norm (Ulyanov et al. 2016) normalises every feature map by the mean and variance of the input it sees.
That makes the transform network independent of the batch, but it also means that a tile of a large image, or
one frame of a video, is normalised by *its own* statistics: neighbouring tiles then disagree (visible seams)
and consecutive frames flicker. :class:`StatInstanceNorm2d` is a drop-in ``nn.InstanceNorm2d`` (same parameters,
same ``state_dict`` keys, same default forward, so model files and ONNX export are unaffected) that can instead

* ``record`` the per-sample statistics of one input,
* ``apply`` given statistics to every input, or
* ``smooth`` them across calls with an exponential moving average (consecutive video frames).

The modes are switched by the functions below; outside them every layer behaves exactly like
``nn.InstanceNorm2d``. A model in a non-default mode must not be shared by threads. Tiled stylization
(:mod:`fastnst.runtime.tiling`) measures whole-image statistics layer by layer with :class:`RunningMoments` and
normalises with :meth:`StatInstanceNorm2d.normalise`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

StatMode = Literal["plain", "record", "apply", "smooth"]


@dataclass(frozen=True)
class LayerStats:
    """Statistics of one norm layer's input: ``mean`` and ``var`` are float32 [N, C] (N = 1 when shared)."""

    mean: torch.Tensor
    var: torch.Tensor


NormStats = tuple[LayerStats, ...]
"""Statistics of every :class:`StatInstanceNorm2d` of a model, in module order."""


class RunningMoments:
    """Per-channel count, mean and sum of squared deviations, merged chunk by chunk in float64.

    Chan, Golub, LeVeque (1979) pairwise update: exact for any split of the pixels into chunks, without the
    cancellation of sum-of-squares formulas on large activations.
    """

    def __init__(self) -> None:
        self.count = 0.0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None

    def add(self, x: torch.Tensor) -> None:
        """Add the pixels of x [C, h, w] (or [N, C, h, w]) per channel."""
        x = x.float().transpose(0, 1).reshape(x.shape[-3], -1) if x.ndim == 4 else x.float().flatten(1)
        n = float(x.shape[1])
        if n == 0:
            return
        var, mean = torch.var_mean(x, dim=1, correction=0)
        mean, m2 = mean.double(), var.double() * n
        if self.mean is None or self.m2 is None:
            self.count, self.mean, self.m2 = n, mean, m2
            return
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta.square() * (self.count * n / total)
        self.count = total

    def stats(self) -> LayerStats:
        """The biased mean and variance so far, as [1, C] float32 (what instance norm divides by)."""
        if self.mean is None or self.m2 is None:
            raise RuntimeError("no pixels were measured")
        return LayerStats(self.mean.float()[None], (self.m2 / self.count).float()[None])


class StatInstanceNorm2d(nn.InstanceNorm2d):
    """``nn.InstanceNorm2d`` whose statistics can be recorded, imposed or smoothed (see the module docstring)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # Plain attributes, not buffers: they must never reach state_dict or an exported graph.
        self.stat_mode: StatMode = "plain"
        self.stats: LayerStats | None = None
        self.smoothing = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = self.stat_mode
        if mode == "plain":
            return super().forward(x)
        if mode == "record":
            var, mean = torch.var_mean(x.float(), dim=(2, 3), correction=0)
            self.stats = LayerStats(mean.detach(), var.detach())
            return super().forward(x)  # bit-identical to the plain path
        if mode == "apply":
            if self.stats is None:
                raise RuntimeError("StatInstanceNorm2d in 'apply' mode has no statistics")
            return self.normalise(x, self.stats)
        return self._smooth(x)

    def _smooth(self, x: torch.Tensor) -> torch.Tensor:
        """An exponential moving average of the statistics over the batch (frames in order) and across calls."""
        var, mean = torch.var_mean(x.float(), dim=(2, 3), correction=0)
        m = self.smoothing
        means, variances = [], []
        previous = self.stats
        for i in range(x.shape[0]):
            mean_i, var_i = mean[i : i + 1], var[i : i + 1]
            if previous is not None:
                mean_i = m * previous.mean[-1:] + (1 - m) * mean_i
                var_i = m * previous.var[-1:] + (1 - m) * var_i
            previous = LayerStats(mean_i, var_i)
            means.append(mean_i)
            variances.append(var_i)
        self.stats = LayerStats(torch.cat(means).detach(), torch.cat(variances).detach())
        return self.normalise(x, self.stats)

    def normalise(self, x: torch.Tensor, stats: LayerStats) -> torch.Tensor:
        """(x - mean) / sqrt(var + eps) * weight + bias, folded into one multiply-add; stats broadcast over N."""
        scale = torch.rsqrt(stats.var.to(x.device) + self.eps)  # [N or 1, C]
        if self.weight is not None:
            scale = scale * self.weight.float()
        shift = -stats.mean.to(x.device) * scale
        if self.bias is not None:
            shift = shift + self.bias.float()
        return torch.addcmul(shift.to(x.dtype)[..., None, None], x, scale.to(x.dtype)[..., None, None])


def stat_norm_layers(model: nn.Module) -> list[StatInstanceNorm2d]:
    """The model's statistics-aware norm layers in module order; ValueError when it has none."""
    layers = [m for m in model.modules() if isinstance(m, StatInstanceNorm2d)]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no StatInstanceNorm2d layers")
    return layers


@contextlib.contextmanager
def _mode(model: nn.Module, mode: StatMode, stats: NormStats | None = None,
          smoothing: float = 0.0) -> Iterator[list[StatInstanceNorm2d]]:
    layers = stat_norm_layers(model)
    if stats is not None and len(stats) != len(layers):
        raise ValueError(f"got statistics for {len(stats)} norm layers, the model has {len(layers)}")
    if any(layer.stat_mode != "plain" for layer in layers):
        raise RuntimeError("the model's norm layers are already in a statistics mode (nested or concurrent use)")
    try:
        for i, layer in enumerate(layers):
            layer.stat_mode = mode
            layer.stats = stats[i] if stats is not None else None
            layer.smoothing = smoothing
        yield layers
    finally:
        for layer in layers:
            layer.stat_mode, layer.stats, layer.smoothing = "plain", None, 0.0


@torch.inference_mode()
def record_stats(model: nn.Module, image: torch.Tensor) -> NormStats:
    """Run ``model`` on ``image`` once and return every norm layer's statistics (per sample of the batch)."""
    with _mode(model, "record") as layers:
        model(image)
        return tuple(layer.stats for layer in layers)  # type: ignore[misc]


@contextlib.contextmanager
def applied_stats(model: nn.Module, stats: NormStats) -> Iterator[None]:
    """Within the block, every norm layer uses ``stats`` (broadcast over the batch) instead of its input's."""
    with _mode(model, "apply", stats=stats):
        yield


@contextlib.contextmanager
def smoothed_stats(model: nn.Module, smoothing: float) -> Iterator[None]:
    """Within the block, statistics follow an exponential moving average over consecutive inputs.

    Each sample (frames in batch order, then the next call's batch) is normalised with
    ``smoothing * previous + (1 - smoothing) * its own`` statistics; 0 means plain instance norm, values near 1
    keep the statistics of the first frame. Layer k's statistics are measured on activations that layers
    before it already normalised with smoothed statistics, so the whole network sees one consistent state.
    """
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    with _mode(model, "smooth", smoothing=smoothing):
        yield
