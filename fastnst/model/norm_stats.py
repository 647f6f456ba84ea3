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

Training on the CPU with channels_last activations takes :func:`channels_last_instance_norm` instead of
``nn.InstanceNorm2d``'s forward: the same statistics and affine map, without the layout conversions around it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

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


def channels_last_training(module: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``module`` (in training mode) should take its channels_last CPU path for ``x``.

    ``nn.InstanceNorm2d`` and ``nn.ReflectionPad2d`` only have NCHW kernels: on channels_last activations each
    converts its input to NCHW and its output back (and so does their backward), and under CPU autocast the pad
    also round-trips bf16 through fp32: a third of a CPU training step (docs/benchmarks.md). The replacements give
    the same values (the pad is exact, the norm rounds differently in the last bit) and are used for training
    only, so inference, export and tiling keep the stock kernels; they were measured on CPUs only, and
    ``torch.compile`` is left to lay out and fuse the stock operators itself.
    """
    return (module.training and x.dim() == 4 and x.device.type == "cpu"
            and x.is_contiguous(memory_format=torch.channels_last) and not torch.compiler.is_compiling())


class _ChannelsLastInstanceNorm(torch.autograd.Function):
    """Instance norm as one ``batch_norm`` per sample: a [1, C, H, W] slice of a channels_last batch is a
    channels_last image, whose per-channel statistics over H×W are the instance statistics, and ATen's batch norm
    has channels_last kernels (fp32 statistics for bf16 input, as ``nn.InstanceNorm2d`` computes them)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                eps: float) -> torch.Tensor:
        out = torch.empty_like(x, memory_format=torch.channels_last)
        stats_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        means, inverse_stds = [], []
        for i in range(x.shape[0]):
            _, mean, inverse_std = torch.ops.aten.native_batch_norm.out(
                x[i : i + 1], weight, bias, None, None, True, 0.0, eps,
                out=out[i : i + 1], save_mean=x.new_empty(0, dtype=stats_dtype),
                save_invstd=x.new_empty(0, dtype=stats_dtype))
            means.append(mean)
            inverse_stds.append(inverse_std)
        ctx.save_for_backward(x, weight, torch.stack(means), torch.stack(inverse_stds))
        ctx.eps = eps
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight, means, inverse_stds = ctx.saved_tensors
        grad = grad.contiguous(memory_format=torch.channels_last)
        grad_x = torch.empty_like(x, memory_format=torch.channels_last)
        affine = weight is not None
        grad_weight = torch.zeros_like(means[0]) if affine else None
        grad_bias = torch.zeros_like(means[0]) if affine else None
        part_weight, part_bias = torch.empty_like(means[0]), torch.empty_like(means[0])
        for i in range(x.shape[0]):
            args = (grad[i : i + 1], x[i : i + 1], weight, None, None, means[i], inverse_stds[i], True, ctx.eps)
            if affine:  # written in place: the sample's input gradient straight into the batch's
                torch.ops.aten.native_batch_norm_backward.out(*args, [True, True, True], out0=grad_x[i : i + 1],
                                                              out1=part_weight, out2=part_bias)
                grad_weight += part_weight
                grad_bias += part_bias
            else:
                grad_x[i : i + 1] = torch.ops.aten.native_batch_norm_backward(*args, [True, False, False])[0]
        needs = ctx.needs_input_grad
        return (grad_x if needs[0] else None, grad_weight if needs[1] else None, grad_bias if needs[2] else None,
                None)


def channels_last_instance_norm(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                                eps: float) -> torch.Tensor:
    """``F.instance_norm`` (no running statistics) for a channels_last [N, C, H, W] batch; channels_last output.

    Runs outside autocast so bf16 activations stay bf16 (fp32 statistics, fp32 ``weight``/``bias``), which is
    what ``F.instance_norm`` does with them under autocast too.
    """
    with torch.autocast(x.device.type, enabled=False):
        return _ChannelsLastInstanceNorm.apply(x, weight, bias, eps)


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
            if not self.track_running_stats and channels_last_training(self, x):
                return channels_last_instance_norm(x, self.weight, self.bias, self.eps)
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
