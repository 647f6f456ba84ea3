"""Stylize images of any size in tiles, with the whole-image result, in bounded memory.

Naive tiles disagree for two reasons, and each has its fix here:

1. **Instance-norm statistics.** A tile normalised by its own mean and variance gets its own contrast and colour
   (hard seams). Statistics of a downscaled copy do not help much either: the network sees texture at another
   scale, so the result drifts visibly from the whole-image one. So the
   network is run *layer by layer*: each norm layer's statistics are measured exactly over the whole image, tile
   by tile (:class:`~fastnst.model.norm_stats.RunningMoments`), before any tile is normalised with them. The layers
   before the residual blocks (full, 1/2 resolution) are recomputed per measurement instead of stored; the
   1/4-resolution residual stream (128 channels) is kept whole, in float16 when float32 would not fit the memory
   budget.
2. **Receptive field.** Every tile carries ``overlap`` px of real context on each side (clipped at the image,
   where the network's own reflection padding applies as in a whole-image pass) and tiles start on multiples of
   4, the network's stride, so they sample the same grid. Within one stage the context needed is small (7 px for
   the encoder, 1 px at 1/4 resolution per residual conv, ~10 px for the decoder), so the default of 16 px makes
   every tile exact and no blending is needed: cores are cut out and placed side by side.

The result equals the whole-image pass up to float rounding (and float16 storage on huge images). Memory: the
8-bit input and output (3 bytes/pixel each), three 1/4-resolution maps (48 bytes/pixel in float32, 24 in
float16) and one tile; the whole-image pass needs ~1000 bytes/pixel. Compute: ~1.6× a whole-image pass (the
encoder and decoder prefixes are rerun to measure statistics layer by layer). ``benchmarks/tiling_memory.py``
measures an 8K photo (docs/benchmarks.md).

This needs the PyTorch network itself (:class:`~fastnst.model.transformer.TransformerNet`): an ONNX Runtime session
cannot be run layer by layer with foreign statistics, and independent tiles seam, so other stylizers are only
run whole (see :func:`stylize_image`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from fastnst.model.norm_stats import LayerStats, RunningMoments, StatInstanceNorm2d
from fastnst.model.transformer import PIXEL_SCALE, SIZE_MULTIPLE, ConvLayer, TransformerNet
from fastnst.runtime.base import Backend
from fastnst.runtime.color import Controls, apply_controls, apply_lut_u8, blend, channel_histograms, histogram_lut
from fastnst.runtime.margin import (
    DEFAULT_MARGIN,
    add_image_margin,
    add_margin,
    crop_image_margin,
    crop_margin,
    margin_for,
)
from fastnst.utils.errors import FastNSTError

Progress = Callable[[int], None]  # called with the number of tile runs just finished (total: count_tile_runs)
Storage = Literal["auto", "float32", "float16"]

DEFAULT_TILE = 512
DEFAULT_OVERLAP = 16
DEFAULT_MEMORY_BUDGET = 2 << 30  # bytes the whole-image pass, or the stored maps in float32, may take
# Measured peak of a whole-image CPU forward pass (fp32, inference mode): ~1000 B/pixel at width 32, i.e. ~31
# bytes per pixel per unit of width (activations of 2·width channels at full resolution dominate).
_BYTES_PER_PIXEL_PER_WIDTH = 32
_Q = SIZE_MULTIPLE  # full-resolution pixels per 1/4-resolution pixel ("q-unit"), the grid everything aligns to


@dataclass(frozen=True)
class TileOptions:
    """How the image is cut; the defaults give the whole-image result."""

    tile: int = DEFAULT_TILE  # core side in px: full-resolution stages use tile², the 1/4-resolution ones (4·tile)²
    overlap: int = DEFAULT_OVERLAP  # context px on each side of a tile; under ~12 px tiles are no longer exact
    storage: Storage = "auto"  # dtype of the stored 1/4-resolution maps; auto = float32 if within memory_budget
    memory_budget: int = DEFAULT_MEMORY_BUDGET

    def __post_init__(self) -> None:
        if self.tile < 32 or self.tile % _Q:
            raise FastNSTError(f"tile size must be a multiple of {_Q} and at least 32, got {self.tile}")
        if self.overlap < 0 or self.overlap % _Q:
            raise FastNSTError(f"tile overlap must be a non-negative multiple of {_Q}, got {self.overlap}")
        if self.storage not in ("auto", "float32", "float16"):
            raise FastNSTError(f"unknown storage {self.storage!r}; choose one of auto, float32, float16")


# ------------------------------------------------------------------------------------------------ tile plans


def spans(length: int, tile: int) -> list[tuple[int, int]]:
    """Partition ``[0, length)`` into cores of at most ``tile`` (the last may be shorter)."""
    return [(start, min(start + tile, length)) for start in range(0, length, tile)]


def count_tile_runs(size: tuple[int, int], options: TileOptions, residual_blocks: int) -> int:
    """Tile runs of :func:`stylize_tiled` for an image of ``size`` (width, height): a progress bar's total."""
    hq, wq = -(-size[1] // _Q), -(-size[0] // _Q)
    full = len(spans(hq, options.tile // _Q)) * len(spans(wq, options.tile // _Q))
    quarter = len(spans(hq, options.tile)) * len(spans(wq, options.tile))
    # encoder: 3 measuring runs + 1 storing; residual blocks: 2 convs; decoder: 2 measuring + 1 output
    return 4 * full + 2 * residual_blocks * quarter + 3 * full


def _tiles(hq: int, wq: int, core: int, halo: int) -> Iterator[tuple[slice, slice, slice, slice, int, int]]:
    """For each core of a q-unit grid: its window (with ``halo``, clipped) and where the core sits in it.

    Yields (window rows, window cols, core rows within the window, core cols within the window, core y0, core x0),
    all in q-units; callers multiply by a stage's resolution factor.
    """
    for y0, y1 in spans(hq, core):
        wy0, wy1 = max(0, y0 - halo), min(hq, y1 + halo)
        for x0, x1 in spans(wq, core):
            wx0, wx1 = max(0, x0 - halo), min(wq, x1 + halo)
            yield (slice(wy0, wy1), slice(wx0, wx1), slice(y0 - wy0, y1 - wy0), slice(x0 - wx0, x1 - wx0), y0, x0)


def _scaled(s: slice, factor: int) -> slice:
    return slice(s.start * factor, s.stop * factor)


# ------------------------------------------------------------------------------------------------ layer helpers


def _conv(layer: ConvLayer, x: torch.Tensor) -> torch.Tensor:
    """Reflection pad and conv of a ConvLayer, without its norm and ReLU."""
    return layer[1](layer[0](x))


def _finish(layer: ConvLayer, y: torch.Tensor, stats: dict[nn.Module, LayerStats]) -> torch.Tensor:
    """A ConvLayer's norm (with the given whole-image statistics) and ReLU, when it has them."""
    if len(layer) > 2:
        norm = layer[2]
        assert isinstance(norm, StatInstanceNorm2d)
        y = norm.normalise(y, stats[norm])
    if len(layer) > 3:
        y = F.relu(y)
    return y


def _run(layer: ConvLayer, x: torch.Tensor, stats: dict[nn.Module, LayerStats]) -> torch.Tensor:
    return _finish(layer, _conv(layer, x), stats)


def _norm_of(layer: ConvLayer) -> StatInstanceNorm2d:
    norm = layer[2]
    assert isinstance(norm, StatInstanceNorm2d)
    return norm


def _check_architecture(model: TransformerNet) -> None:
    """The layer-by-layer runner mirrors TransformerNet.forward; refuse anything it does not know."""
    ok = (
        len(model.encoder) == 3
        and all(isinstance(layer, ConvLayer) and len(layer) == 4 for layer in model.encoder)
        and all(isinstance(block.body[i], ConvLayer) for block in model.residuals for i in (0, 1))
        and len(model.decoder) == 3
        and all(isinstance(model.decoder[i][1], ConvLayer) for i in (0, 1))
        and isinstance(model.decoder[2], ConvLayer)
        and len(model.decoder[2]) == 2
    )
    if not ok:
        raise FastNSTError("this network's layout is not the one tiled stylization knows; run it whole (tile 0)",
                           setting="tile")


# ------------------------------------------------------------------------------------------------ the runner


class _TiledRun:
    """One image through TransformerNet layer by layer; see the module docstring."""

    def __init__(self, model: TransformerNet, source: np.ndarray, options: TileOptions,
                 progress: Progress | None) -> None:
        _check_architecture(model)
        self.model = model
        self.source = source  # uint8 [H, W, 3]
        self.options = options
        self.progress = progress
        self.device = next(model.parameters()).device
        self.hq, self.wq = -(-source.shape[0] // _Q), -(-source.shape[1] // _Q)
        self.full_core = options.tile // _Q  # q-units per core in full-resolution stages
        self.halo = -(-options.overlap // _Q)
        self.stats: dict[nn.Module, LayerStats] = {}
        channels = 4 * model.spec.width
        float32_bytes = 3 * channels * self.hq * self.wq * 4
        wide = options.storage == "float32" or (options.storage == "auto" and float32_bytes <= options.memory_budget)
        self.dtype = torch.float32 if wide else torch.float16

    def _tick(self) -> None:
        if self.progress is not None:
            self.progress(1)

    def _image(self, rows: slice, cols: slice) -> torch.Tensor:
        """Input pixels of a q-unit window, scaled as TransformerNet.forward does, reflected past the edges."""
        y0, y1, x0, x1 = rows.start * _Q, rows.stop * _Q, cols.start * _Q, cols.stop * _Q
        height, width = self.source.shape[:2]
        crop = self.source[y0:min(y1, height), x0:min(x1, width)]
        pad_y, pad_x = y1 - min(y1, height), x1 - min(x1, width)
        if pad_y or pad_x:  # the network pads the whole image to a multiple of 4 by reflection
            crop = np.pad(crop, ((0, pad_y), (0, pad_x), (0, 0)), mode="reflect")
        pixels = torch.from_numpy(np.array(crop, dtype=np.uint8)).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
        return pixels.to(self.device) * PIXEL_SCALE

    def _measure(self, norm: StatInstanceNorm2d, compute: Callable[[slice, slice], torch.Tensor],
                 factor: int, core: int) -> None:
        """Run ``compute`` on every window; gather the statistics of its core part for ``norm``."""
        moments = RunningMoments()
        for rows, cols, core_rows, core_cols, _, _ in _tiles(self.hq, self.wq, core, self.halo):
            out = compute(rows, cols)
            moments.add(out[0, :, _scaled(core_rows, factor), _scaled(core_cols, factor)])
            self._tick()
        self.stats[norm] = moments.stats()

    def encoder(self) -> torch.Tensor:
        """Measure the encoder's three norms one after another, then store its output (1/4 resolution)."""
        enc = self.model.encoder
        for k, factor in enumerate((_Q, _Q // 2, 1)):
            def prefix(rows: slice, cols: slice, k: int = k) -> torch.Tensor:
                x = self._image(rows, cols)
                for layer in enc[:k]:
                    x = _run(layer, x, self.stats)
                return _conv(enc[k], x)

            self._measure(_norm_of(enc[k]), prefix, factor, self.full_core)
        stream = torch.empty(4 * self.model.spec.width, self.hq, self.wq, dtype=self.dtype)
        for rows, cols, core_rows, core_cols, y0, x0 in _tiles(self.hq, self.wq, self.full_core, self.halo):
            x = self._image(rows, cols)
            for layer in enc:
                x = _run(layer, x, self.stats)
            core = x[0, :, core_rows, core_cols]
            stream[:, y0 : y0 + core.shape[1], x0 : x0 + core.shape[2]] = core.to("cpu", self.dtype)
            self._tick()
        return stream

    def _conv_map(self, layer: ConvLayer, source: torch.Tensor, target: torch.Tensor) -> LayerStats:
        """target = conv(source) over the whole 1/4-resolution map in tiles; returns its statistics."""
        moments = RunningMoments()
        for rows, cols, core_rows, core_cols, y0, x0 in _tiles(self.hq, self.wq, self.options.tile, self.halo):
            window = source[:, rows, cols].to(self.device, torch.float32).unsqueeze(0)
            core = _conv(layer, window)[0, :, core_rows, core_cols]
            moments.add(core)
            target[:, y0 : y0 + core.shape[1], x0 : x0 + core.shape[2]] = core.to("cpu", self.dtype)
            self._tick()
        return moments.stats()

    def _in_strips(self, maps: tuple[torch.Tensor, ...]) -> Iterator[tuple[torch.Tensor, ...]]:
        """Row strips of same-shaped maps, so elementwise updates never need a whole float32 copy."""
        rows = max(1, (1 << 24) // max(1, maps[0].shape[0] * maps[0].shape[2]))
        for y in range(0, maps[0].shape[1], rows):
            yield tuple(m[:, y : y + rows] for m in maps)

    def residuals(self, stream: torch.Tensor) -> None:
        """x ← x + norm(conv(relu(norm(conv(x))))) per block, in place, each norm over the whole map."""
        hidden = torch.empty_like(stream)
        body_out = torch.empty_like(stream)
        for block in self.model.residuals:
            first, second = block.body[0], block.body[1]
            self.stats[_norm_of(first)] = self._conv_map(first, stream, hidden)
            for (h,) in self._in_strips((hidden,)):
                h.copy_(_finish(first, h.float().unsqueeze(0), self.stats)[0])
            self.stats[_norm_of(second)] = self._conv_map(second, hidden, body_out)
            for s, b in self._in_strips((stream, body_out)):
                s.add_(_finish(second, b.float().unsqueeze(0), self.stats)[0].to(s.dtype))
        del hidden, body_out

    def decoder(self, stream: torch.Tensor, consume: Callable[[int, int, torch.Tensor], None]) -> None:
        """Measure the two upsampling norms, then hand each output core (full resolution, [0, 1]) to ``consume``."""
        up1, up2, last = self.model.decoder

        def window_of(rows: slice, cols: slice) -> torch.Tensor:
            return stream[:, rows, cols].to(self.device, torch.float32).unsqueeze(0)

        def after_up1(rows: slice, cols: slice, finish: bool = True) -> torch.Tensor:
            y = _conv(up1[1], up1[0](window_of(rows, cols)))
            return _finish(up1[1], y, self.stats) if finish else y

        def after_up2(rows: slice, cols: slice, finish: bool = True) -> torch.Tensor:
            y = _conv(up2[1], up2[0](after_up1(rows, cols)))
            return _finish(up2[1], y, self.stats) if finish else y

        self._measure(_norm_of(up1[1]), lambda r, c: after_up1(r, c, finish=False), 2, self.full_core)
        self._measure(_norm_of(up2[1]), lambda r, c: after_up2(r, c, finish=False), _Q, self.full_core)
        for rows, cols, core_rows, core_cols, y0, x0 in _tiles(self.hq, self.wq, self.full_core, self.halo):
            out = _conv(last, after_up2(rows, cols)) / PIXEL_SCALE
            consume(y0 * _Q, x0 * _Q, out[0, :, _scaled(core_rows, _Q), _scaled(core_cols, _Q)].float().cpu())
            self._tick()


@torch.inference_mode()
def stylize_tiled(model: TransformerNet, image: Image.Image, options: TileOptions | None = None,
                  controls: Controls | None = None, progress: Progress | None = None) -> Image.Image:
    """Stylize an RGB image in tiles, layer by layer; equal to the whole-image result up to float rounding.

    ``controls`` (strength, colour preservation) are applied to each finished row of tiles; histogram matching
    at the end, from counts gathered over the whole image.
    """
    options = options or TileOptions()
    controls = controls or Controls()
    source = np.asarray(image.convert("RGB"))  # uint8 [H, W, 3], read only
    height, width = source.shape[:2]
    run = _TiledRun(model, source, options, progress)
    stream = run.encoder()
    run.residuals(stream)
    result = np.empty_like(source)
    histogram = controls.preserve_color == "histogram"
    counts = torch.zeros(3, 256, dtype=torch.long)
    strip: list[tuple[int, torch.Tensor]] = []  # cores of the current row of tiles, by x

    def flush() -> None:
        y0 = row_start[0]
        rows = torch.cat([core for _, core in sorted(strip, key=lambda item: item[0])], dim=2)
        rows = rows[:, : height - y0, :width].unsqueeze(0).clamp_(0, 1)
        y1 = y0 + rows.shape[2]
        original = _u8_to_float(source[y0:y1])
        if histogram:
            counts.add_(channel_histograms(rows))
        elif not controls.is_identity:
            rows = apply_controls(rows, original, controls)
        result[y0:y1] = _float_to_u8(rows)
        strip.clear()

    row_start = [0]

    def consume(y0: int, x0: int, core: torch.Tensor) -> None:
        if strip and y0 != row_start[0]:
            flush()
        row_start[0] = y0
        strip.append((x0, core))

    run.decoder(stream, consume)
    flush()
    del stream
    if histogram:
        _finish_histogram(result, source, counts, controls.strength)
    return Image.fromarray(result)


def _u8_to_float(pixels: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, 3] → float32 [1, 3, H, W] in [0, 1]."""
    return torch.from_numpy(np.array(pixels, dtype=np.uint8)).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def _float_to_u8(image: torch.Tensor) -> np.ndarray:
    """float [1, 3, H, W] → uint8 [H, W, 3] (clamped, rounded)."""
    return image[0].clamp(0, 1).mul(255.0).round_().to(torch.uint8).permute(1, 2, 0).numpy()


def _finish_histogram(result: np.ndarray, source: np.ndarray, counts: torch.Tensor, strength: float) -> None:
    """Match ``result``'s histogram to ``source``'s in place, then blend with ``strength``, in strips."""
    reference = torch.zeros(3, 256, dtype=torch.long)
    step = max(1, (1 << 22) // max(1, source.shape[1]))  # ~4 MP per strip
    for y in range(0, source.shape[0], step):
        reference += channel_histograms(_u8_to_float(source[y : y + step]))
    apply_lut_u8(result, histogram_lut(counts, reference))
    if strength != 1.0:
        for y in range(0, source.shape[0], step):
            mixed = blend(_u8_to_float(result[y : y + step]), _u8_to_float(source[y : y + step]), strength)
            result[y : y + step] = _float_to_u8(mixed)


# ------------------------------------------------------------------------------------------------ entry points


def whole_image_bytes(model: TransformerNet, width: int, height: int) -> int:
    """Estimated peak memory of stylizing a width×height image in one pass (fp32, CPU measurement)."""
    return width * height * model.spec.width * _BYTES_PER_PIXEL_PER_WIDTH


def too_large_for_whole(path: str | os.PathLike[str] | tuple[int, int], max_pixels: int | None = None, *,
                        network_width: int = 32, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> bool:
    """Whether an image file (size from its header), or an image of (width, height), is over the whole-image
    memory budget; False if unreadable (loading it reports why)."""
    if isinstance(path, tuple):
        width, height = path
    else:
        try:
            with Image.open(path) as probe:
                width, height = probe.size
        except Exception:  # noqa: BLE001 - load_image gives the one-line reason later
            return False
    if max_pixels is not None and width * height > max_pixels:
        return False
    return width * height * network_width * _BYTES_PER_PIXEL_PER_WIDTH > memory_budget


def choose_tile(model: TransformerNet, size: tuple[int, int], tile: int | None,
                memory_budget: int = DEFAULT_MEMORY_BUDGET) -> int:
    """The tile size to use: ``tile`` if given (> 0), else 0 (whole image) when that fits ``memory_budget``."""
    if tile:
        return tile
    return 0 if whole_image_bytes(model, *size) <= memory_budget else DEFAULT_TILE


Runner = TransformerNet | Backend | Callable[[torch.Tensor], torch.Tensor]
"""The bare network, a runtime backend, or any batch stylizer (float [N, 3, H, W] in [0, 1] → same)."""


@torch.inference_mode()
def stylize_whole(model: Runner, image: Image.Image, controls: Controls | None = None,
                  margin: int = 0) -> Image.Image:
    """Stylize an RGB image in one pass with the network, a backend (its fast path) or any batch stylizer,
    on the image mirrored outward by ``margin`` px (see fastnst.runtime.margin)."""
    controls = controls or Controls()
    original = _u8_to_float(np.asarray(image.convert("RGB")))
    padded, used = add_margin(original, margin)
    if isinstance(model, TransformerNet):
        out = model(padded.to(next(model.parameters()).device)).float().cpu()
    elif isinstance(model, Backend):
        out = model.stylize(padded)
    else:
        out = model(padded)
    out = crop_margin(out, used).clamp(0, 1)
    if not controls.is_identity:
        out = apply_controls(out, original, controls)
    return Image.fromarray(_float_to_u8(out))


def stylize_image(model: Runner, image: Image.Image, *, tile: int | None = None, overlap: int = DEFAULT_OVERLAP,
                  controls: Controls | None = None, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                  progress: Progress | None = None, margin: int = DEFAULT_MARGIN) -> Image.Image:
    """Stylize one RGB image, whole or in tiles: the entry point for the CLI and the server.

    ``tile`` None or 0 means automatic: the whole image when its estimated memory fits ``memory_budget``, else
    tiles of :data:`DEFAULT_TILE`; a positive value forces tiles of that size. Tiles run the PyTorch network in
    float32 (a torch backend's ``model``; its precision and fused layers serve whole images only). ONNX Runtime
    and other stylizers refuse an explicit ``tile`` and always run the whole image. ``margin``: pixels mirrored
    onto each side before the network and cropped after (0 = none), which keeps the networks' dark edge out of
    the result.
    """
    network = model if isinstance(model, TransformerNet) else getattr(model, "model", None)
    if not isinstance(network, TransformerNet):
        if tile:
            name = getattr(model, "name", "this")
            raise FastNSTError(f"tiled stylization needs the PyTorch network (the {name} backend cannot use "
                               "whole-image normalisation statistics per tile); use the torch backend or no tiles",
                               setting="backend")
        return stylize_whole(model, image, controls, margin)
    used = margin_for(image.height, image.width, margin)
    chosen = choose_tile(network, (image.width + 2 * used, image.height + 2 * used), tile, memory_budget)
    if not chosen:
        return stylize_whole(model, image, controls, margin)
    padded, used = add_image_margin(image, margin)
    options = TileOptions(tile=chosen, overlap=overlap, memory_budget=memory_budget)
    # Histogram matching then counts the mirrored margin too (a few per cent of the pixels of an image this big).
    return crop_image_margin(stylize_tiled(network, padded, options, controls, progress), used)
