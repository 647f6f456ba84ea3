"""Classic per-image style transfer by optimising the pixels (Gatys, Ecker, Bethge, CVPR 2016).

The image is optimised to match the content image's activations at one VGG layer and the style images' Gram
matrices over several layers (fastnst.perceptual.losses), coarse to fine over one or more scales. What this adds to
the classic recipe is efficiency: VGG stops after the deepest layer the losses need and never computes weight
gradients; the style Grams and content activations are computed once per scale, not per step; the modules and
optimizer are built once per scale so a step is one forward and one backward; the network runs channels_last
(optionally under bf16 autocast, with the image's Grams from bf16 products); the image is kept in range by
projection; and coarse scales can do much of the work at a fraction of the cost per step.

The library reports progress through callbacks and raises FastNSTError subclasses; it never prints.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from fastnst.optimizer.config import OptimizeOptions
from fastnst.perceptual.losses import ContentLoss, PerceptualLoss, StyleLoss
from fastnst.perceptual.vgg import MIN_INPUT_SIDE, VGGFeatures
from fastnst.runtime.color import transfer_luminance
from fastnst.utils.device import native_bf16, resolve_device
from fastnst.utils.errors import ConfigError, FastNSTError, ImageError
from fastnst.utils.images import check_output_path, image_to_tensor, load_image, save_image, tensor_to_image

__all__ = ["OptimizeResult", "Progress", "load_loss_network", "optimize", "optimize_files", "scale_sizes",
           "use_bf16"]

# BT.601 luma coefficients (the Y of YCbCr / YIQ used by Gatys et al. 2016b for colour preservation).


@dataclass(frozen=True)
class Progress:
    """One evaluated iteration, passed to ``on_progress``."""

    scale: int
    """Index of the current scale (0 = coarsest)."""
    scales: int
    size: tuple[int, int]
    """(width, height) of the image at this scale."""
    iteration: int
    """1-based iteration within the scale."""
    iterations: int
    losses: dict[str, float]
    """Weighted terms ``content``, ``style``, ``tv`` and their ``total`` for the image before this step."""
    seconds: float
    """Wall time since optimize() started (including loading the network)."""
    image: torch.Tensor = field(repr=False)
    """The image being optimised, [1, 3, H, W] in [0, 1]; read-only (use tensor_to_image to view it)."""


@dataclass
class OptimizeResult:
    """The stylized image and how it was reached."""

    image: Image.Image
    losses: dict[str, float]
    """Loss terms of the returned image: the lowest-loss iterate evaluated at the last scale run."""
    history: list[dict[str, float]]
    """Per evaluated iteration: scale, iteration, seconds and the loss terms."""
    seconds: float
    device: str
    precision: str
    """"bf16" (VGG under bf16 autocast, losses in fp32) or "fp32"."""
    stopped: bool = False
    """True when ``on_progress`` asked to stop early."""


ProgressCallback = Callable[[Progress], "bool | None"]
SnapshotCallback = Callable[[Progress, Image.Image], None]


def scale_sizes(content_size: tuple[int, int], sizes: Sequence[int]) -> list[tuple[int, int]]:
    """(width, height) at each scale: the longest side set to each of ``sizes`` (0 = unchanged), aspect kept."""
    width, height = content_size
    out = []
    for longest in sizes:
        if longest == 0 or longest == max(width, height):
            out.append((width, height))
            continue
        factor = longest / max(width, height)
        out.append((max(1, round(width * factor)), max(1, round(height * factor))))
    return out


def optimize(
    content: Image.Image,
    styles: Sequence[Image.Image],
    options: OptimizeOptions | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    on_snapshot: SnapshotCallback | None = None,
    vgg: VGGFeatures | None = None,
) -> OptimizeResult:
    """Stylize ``content`` with the blended style of ``styles`` by optimising its pixels.

    ``on_progress`` is called after every evaluated iteration and may return True to stop early (the best image
    of the current scale is returned). With ``options.save_every`` = N, ``on_snapshot`` receives the image every N
    iterations of each scale (colours kept if asked). ``vgg`` reuses a network from :func:`load_loss_network` across
    calls (loading VGG19 takes seconds). Raises ConfigError / ImageError / WeightsError with one line.
    """
    options = options or OptimizeOptions()
    if not styles:
        raise ConfigError("give at least one style image")
    blend = options.blend_weights(len(styles))
    sizes = scale_sizes(content.size, options.sizes)
    _check_sizes(content, styles, sizes, options.style_scale)
    device = resolve_device(options.device)
    started = time.perf_counter()

    memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
    if vgg is None:
        vgg = load_loss_network(options)
    elif vgg.weights != options.vgg or not set(_layers(options)) <= set(vgg.layers):
        raise ConfigError(f"the given VGG ({vgg.weights}: {', '.join(vgg.layers)}) does not match the options "
                          f"({options.vgg}: {', '.join(_layers(options))})")
    vgg = vgg.to(device, memory_format=memory_format)
    runner = _Runner(vgg, options, device, memory_format)
    writer = _make_writer(options.tensorboard)
    history: list[dict[str, float]] = []
    losses: dict[str, float] = {}
    image: torch.Tensor | None = None
    content_t = torch.empty(0)
    stopped = False
    try:
        for scale, size in enumerate(sizes):
            content_t = image_to_tensor(content.resize(size, Image.Resampling.LANCZOS)
                                        if size != content.size else content).to(device)
            style_size = max(1, round(options.style_scale * max(size)))
            style_ts = [image_to_tensor(_resize_longest(style, style_size)).to(device) for style in styles]
            image = _initial_image(options, scale, image, content_t, style_ts[0], size)

            def report(progress: Progress, content_t: torch.Tensor = content_t) -> bool:
                history.append({"scale": progress.scale, "iteration": progress.iteration,
                                "seconds": progress.seconds, **progress.losses})
                if writer is not None:
                    step = len(history)
                    for name, value in progress.losses.items():
                        writer.add_scalar(f"loss/{name}", value, step)
                snapshot = options.save_every and progress.iteration % options.save_every == 0
                if snapshot and (on_snapshot is not None or writer is not None):
                    picture = _finish(progress.image, content_t, options)
                    if on_snapshot is not None:
                        on_snapshot(progress, picture)
                    if writer is not None:
                        writer.add_image("image", image_to_tensor(picture)[0], len(history))
                return bool(on_progress(progress)) if on_progress is not None else False

            image, losses, stopped = runner.run_scale(
                image, content_t, style_ts, blend, scale=scale, scales=len(sizes), size=size,
                started=started, report=report)
            if stopped:
                break
    finally:
        if writer is not None:
            writer.close()
    assert image is not None
    result = _finish(image, content_t, options)
    return OptimizeResult(image=result, losses=losses, history=history, seconds=time.perf_counter() - started,
                          device=str(device), precision="bf16" if runner.amp else "fp32", stopped=stopped)


def use_bf16(amp: str, device: torch.device) -> bool:
    """Whether VGG runs under bf16 autocast: 'auto' where bf16 is native (on CPUs without AVX512-BF16/AMX it is
    emulated and slower; fp16 is never used, as Caffe-scale activations and Grams overflow it)."""
    if amp != "auto":
        return amp == "bf16"
    return native_bf16(device)


def load_loss_network(options: OptimizeOptions) -> VGGFeatures:
    """The frozen VGG the options need, truncated after their deepest layer (on the CPU; optimize moves it)."""
    return VGGFeatures(_layers(options), options.vgg, options.vgg_weights or None)


def _layers(options: OptimizeOptions) -> tuple[str, ...]:
    return tuple(dict.fromkeys((options.content_layer, *options.style_layers)))


def optimize_files(
    content_path: str | os.PathLike[str],
    style_paths: Sequence[str | os.PathLike[str]],
    output_path: str | os.PathLike[str],
    options: OptimizeOptions | None = None,
    *,
    on_progress: ProgressCallback | None = None,
) -> OptimizeResult:
    """Read the images, optimise, and write the result atomically; nothing is written if anything fails first.

    With ``options.save_every`` = N, intermediate images go beside the output as ``<stem>_<side>px_<iter><ext>``.
    The content's transparency, if any, is kept for formats that store it.
    """
    options = options or OptimizeOptions()
    check_output_path(output_path)  # fail before minutes of work
    if not style_paths:
        raise ConfigError("give at least one style image")
    options.blend_weights(len(style_paths))
    content = load_image(content_path, max_pixels=options.max_pixels)
    styles = [load_image(path, max_pixels=options.max_pixels).rgb for path in style_paths]
    target = Path(output_path)

    def save_snapshot(progress: Progress, picture: Image.Image) -> None:
        name = f"{target.stem}_{max(progress.size)}px_{progress.iteration:05d}{target.suffix}"
        save_image(picture, target.with_name(name), alpha=content.alpha)

    result = optimize(content.rgb, styles, options, on_progress=on_progress, on_snapshot=save_snapshot)
    save_image(result.image, target, alpha=content.alpha)
    return result


class _Runner:
    """Runs the optimisation at one scale: targets computed once, then one forward + backward per step."""

    def __init__(self, vgg: VGGFeatures, options: OptimizeOptions, device: torch.device,
                 memory_format: torch.memory_format) -> None:
        self.vgg = vgg
        self.options = options
        self.device = device
        self.memory_format = memory_format
        self.amp = use_bf16(options.amp, device)
        self.weights = options.loss_weights

    def features(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        # The optimised tensor stays contiguous NCHW (L-BFGS flattens gradients with .view(-1)); only VGG's
        # input is converted, which costs a copy of a 3-channel image.
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return self.vgg(image.contiguous(memory_format=self.memory_format))

    def run_scale(self, image: torch.Tensor, content: torch.Tensor, styles: list[torch.Tensor],
                  blend: tuple[float, ...], *, scale: int, scales: int, size: tuple[int, int], started: float,
                  report: Callable[[Progress], bool]) -> tuple[torch.Tensor, dict[str, float], bool]:
        """Optimise ``image`` at one scale; returns the lowest-loss image evaluated, its losses, and whether
        the callback asked to stop."""
        options = self.options
        with torch.no_grad():
            content_features = {options.content_layer: self.features(content)[options.content_layer].float()}
            style_loss = _blended_style_loss(
                [self.features(style) for style in styles], blend,
                dict(zip(options.style_layers, options.style_layer_weights, strict=False)), bf16_products=self.amp)
        loss_fn = PerceptualLoss(ContentLoss(options.content_layer), style_loss, self.weights).to(self.device)

        x = image.detach().clone().contiguous().requires_grad_(True)
        iterations = options.iterations_at(scale)
        if options.optimizer == "lbfgs":
            # A strong-Wolfe line search, unlike Gatys/neural-style's plain L-BFGS: from the content image the
            # style loss is locally concave (the Grams are far below the painting's), the first curvature pair is
            # then rejected, and plain L-BFGS takes a unit step along the raw gradient, which saturates the
            # whole image. max_eval makes ``iterations`` a budget of forward + backward passes.
            optimizer: torch.optim.Optimizer = torch.optim.LBFGS(
                [x], lr=options.lr, max_iter=iterations, max_eval=iterations, history_size=100,
                tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
        else:
            optimizer = torch.optim.Adam([x], lr=options.lr)
        state: dict[str, Any] = {"evaluations": 0, "best": float("inf"), "best_image": x.detach().clone(),
                                 "best_losses": {}, "stop": False}
        # The last few evaluated points: L-BFGS starts each step() call by evaluating the point its previous
        # line search already evaluated; answering from here saves a forward + backward per call.
        cache: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

        def closure() -> torch.Tensor:
            # Projected onto the valid range in place, as neural-style and the PyTorch tutorial do. Clamping
            # inside the graph instead zeroes the gradient of saturated pixels, which then drift further out
            # unchecked, that ends higher in loss for the same number of evaluations.
            with torch.no_grad():
                x.clamp_(0.0, 1.0)
            for point, cached_loss, cached_grad in cache:
                if torch.equal(point, x.detach()):
                    x.grad = cached_grad.clone()
                    return cached_loss
            if state["evaluations"] >= iterations:
                raise _Stop  # L-BFGS's line search may ask for one evaluation more than the budget
            optimizer.zero_grad(set_to_none=True)
            total, parts = loss_fn(x, self.features(x), content_features)
            total.backward()
            assert x.grad is not None
            state["evaluations"] += 1
            cache.append((x.detach().clone(), total.detach(), x.grad.detach().clone()))
            del cache[:-_CACHED_POINTS]
            values = {name: float(value.detach()) for name, value in parts.items()}
            values["total"] = float(total.detach())
            if not all(map(math.isfinite, values.values())):
                raise FastNSTError(f"the loss became {values['total']} at iteration {state['evaluations']}; "
                                   "lower the learning rate or the loss weights")
            if values["total"] < state["best"]:  # line-search trials may be worse: keep the best image seen
                state["best"] = values["total"]
                state["best_image"] = x.detach().clone()
                state["best_losses"] = values
            progress = Progress(scale=scale, scales=scales, size=size, iteration=state["evaluations"],
                                iterations=iterations, losses=values, seconds=time.perf_counter() - started,
                                image=x.detach())
            if report(progress):
                state["stop"] = True
                raise _Stop
            return total

        try:
            if isinstance(optimizer, torch.optim.LBFGS):
                _first_lbfgs_step(optimizer, closure, x)
            while state["evaluations"] < iterations:
                # L-BFGS returns early when its direction stops descending; it then restarts with the rest of
                # the budget. A call that evaluates nothing new would loop forever, so it ends the scale.
                before = state["evaluations"]
                optimizer.step(closure)
                if state["evaluations"] == before:
                    break
        except _Stop:
            pass
        return state["best_image"], state["best_losses"], state["stop"]


_CACHED_POINTS = 4
FIRST_STEP = 0.2
"""Largest pixel change (image in [0, 1]) of L-BFGS's first, steepest-descent step, before its line search."""


def _first_lbfgs_step(optimizer: torch.optim.LBFGS, closure: Callable[[], torch.Tensor], x: torch.Tensor) -> None:
    """Run L-BFGS's first iteration from a sensible step length.

    PyTorch's L-BFGS starts with a step of ``lr / ||g||_1`` along the gradient: here a change of about 1e-6 per
    pixel, from which the line search needs several evaluations (×10 each) to reach a useful length, and whose
    gradient difference is too small to give a usable curvature estimate. Scaling the first rate so the
    largest pixel moves by FIRST_STEP saves those evaluations; later iterations use the configured rate.
    """
    closure()  # evaluates the start point (the cache answers L-BFGS's own first evaluation)
    assert x.grad is not None
    grad = x.grad.detach()
    largest, total = float(grad.abs().max()), float(grad.abs().sum())
    if largest == 0.0 or not math.isfinite(total):
        return
    group = optimizer.param_groups[0]
    rate, max_iter = group["lr"], group["max_iter"]
    group["lr"], group["max_iter"] = FIRST_STEP / (largest * min(1.0, 1.0 / total)), 1
    try:
        optimizer.step(closure)
    finally:
        group["lr"], group["max_iter"] = rate, max_iter


class _Stop(Exception):
    """Raised inside the closure to leave the optimizer's step (budget spent or a callback asked to stop)."""


def _blended_style_loss(style_features: list[dict[str, torch.Tensor]], blend: tuple[float, ...],
                        layer_weights: dict[str, float], bf16_products: bool = False) -> StyleLoss:
    """One StyleLoss whose target Grams are the blend Σ w_i G_i of the styles' Grams.

    For weights summing to 1, ||G − Σ w_i A_i||² differs from Σ w_i ||G − A_i||² by a constant, so the gradient
    is that of the weighted per-style losses while the output's Grams are computed once per step, not once
    per style.
    """
    # bf16 products for the image's Grams: the same exact (fp32) loss at the end in less time (docs/optimizer.md).
    losses = [StyleLoss(features, layer_weights, bf16_products) for features in style_features]
    blended = losses[0]
    for name in layer_weights:
        target = blended.target(name)
        target.copy_(sum(weight * loss.target(name) for weight, loss in zip(blend, losses, strict=False)))
    return blended


def _initial_image(options: OptimizeOptions, scale: int, previous: torch.Tensor | None, content: torch.Tensor,
                   style: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The coarser scale's result upsampled, or at the first scale the content, the (first) style, or noise."""
    height, width = size[1], size[0]
    if previous is not None:
        return F.interpolate(previous, size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1)
    if options.init == "content":
        return content.clone()
    if options.init == "style":
        return F.interpolate(style, size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1)
    # White noise as in Gatys et al.; drawn on the CPU so a seed gives the same start on every device.
    generator = torch.Generator().manual_seed(options.seed)
    return torch.rand(1, 3, height, width, generator=generator).to(content.device)


def _finish(image: torch.Tensor, content: torch.Tensor, options: OptimizeOptions) -> Image.Image:
    image = image.detach().clamp(0.0, 1.0)
    if options.original_colors:
        image = transfer_luminance(image, content)
    return tensor_to_image(image)


def _resize_longest(image: Image.Image, longest: int) -> Image.Image:
    if max(image.size) == longest:
        return image
    (width, height), = scale_sizes(image.size, (longest,))
    return image.resize((width, height), Image.Resampling.LANCZOS)


def _check_sizes(content: Image.Image, styles: Sequence[Image.Image], sizes: list[tuple[int, int]],
                 style_scale: float) -> None:
    """Refuse up front any scale at which the content or a style image would be too small for VGG."""
    for width, height in sizes:
        if min(width, height) < MIN_INPUT_SIDE:
            raise ImageError(f"the content image would be {width}×{height} px at this scale, under VGG's "
                             f"{MIN_INPUT_SIDE} px minimum; use larger sizes")
        longest = max(1, round(style_scale * max(width, height)))
        for style in styles:
            style_w, style_h = scale_sizes(style.size, (longest,))[0]
            if min(style_w, style_h) < MIN_INPUT_SIDE:
                raise ImageError(f"a style image would be {style_w}×{style_h} px at this scale, under VGG's "
                                 f"{MIN_INPUT_SIDE} px minimum; raise style_scale or the sizes")


def _make_writer(folder: str) -> Any:
    if not folder:
        return None
    from torch.utils.tensorboard import SummaryWriter  # imported lazily: tensorboard is slow to import

    return SummaryWriter(folder)
