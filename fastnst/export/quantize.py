"""Reduced-precision ONNX models (fp16 weights, int8) and the PSNR check that decides whether they are kept.

* fp16: every weight and activation in fp16, inputs and outputs stay fp32 so callers never change. Fast on GPUs;
  ONNX Runtime's CPU provider computes such a graph in fp32 (it casts), so on a CPU the measured PSNR reflects
  the weight rounding only.
* int8: ONNX Runtime static quantization (QDQ format), activation ranges calibrated on real photos. Choices,
  each measured on the shipped models (PSNR against fp32 on held-out photos): per-channel int8 weights and
  uint8 activations (the u8s8 kernels x86 VNNI runs fastest); percentile calibration (rare extreme activations
  no longer stretch the range); only convolutions quantized (the adds of the split output conv stay float); the
  first and last convolutions kept in float (the first sees the raw 0..255-scaled image, the last writes the
  picture), at a small cost in speed. The measured effect of each choice: docs/benchmarks.md.

A multi-style graph (a second input, ``style_weights``) is calibrated with the photos spread over its styles
(each photo under one pure style, every style at least once) and judged on every photo under every style.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fastnst.utils.errors import ExportError, first_line

CALIBRATION_SIZE = 256  # calibration crops are square: the percentile calibrator stacks them
MAX_CALIBRATION_PHOTOS = 32
PSNR_CAP = 100.0  # dB reported for identical outputs


@dataclass(frozen=True)
class QualityReport:
    """PSNR (dB, on [0, 1] RGB) of a reduced model's output against the fp32 model's, per held-aside photo."""

    psnr_mean: float
    psnr_min: float
    photos: int
    max_side: int
    worst_photo: str


def quantize_int8(proto: Any, calibration_photos: Sequence[str | os.PathLike[str]], *,
                  max_photos: int = MAX_CALIBRATION_PHOTOS, size: int = CALIBRATION_SIZE, styles: int = 0) -> Any:
    """Static int8 quantization of an fp32 export (made with ``upsample="shuffle"``), calibrated on photos.

    ``styles`` > 1: the graph's number of styles; calibration item k is photo k under pure style k mod styles
    (photos repeat when there are fewer photos than styles), so every style's activation ranges are seen."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    photos = _spread(list(calibration_photos), max_photos)
    if not photos:
        raise ExportError("int8 quantization needs at least one calibration photo")
    convs = [node.name for node in proto.graph.node if node.op_type in ("Conv", "ConvTranspose")]
    if any(node.op_type == "ConvTranspose" for node in proto.graph.node):
        raise ExportError("int8 needs the pixel-shuffle export (ONNX Runtime has no int8 transposed conv)")

    count = max(len(photos), styles)

    class Photos(CalibrationDataReader):
        def __init__(self) -> None:
            self._items: Iterator[int] = iter(range(count))

        def get_next(self) -> dict[str, np.ndarray] | None:
            index = next(self._items, None)
            if index is None:
                return None
            feed = {"image": _square_crop(photos[index % len(photos)], size)}
            if styles > 1:
                feed["style_weights"] = np.eye(styles, dtype=np.float32)[index % styles][None]
            return feed

    with tempfile.TemporaryDirectory(prefix="fastnst-int8-") as tmp:
        source, target = Path(tmp) / "model.fp32.onnx", Path(tmp) / "model.int8.onnx"
        onnx.save_model(proto, str(source))  # a path, not the proto: quantize_static modifies a proto in place
        try:
            # The calibrator reports progress with print() and advice about optional pre-processing through the
            # root logger; the library stays quiet (errors still pass).
            with contextlib.redirect_stdout(io.StringIO()), _root_logger_silenced():
                quantize_static(source, target, Photos(), quant_format=QuantFormat.QDQ, per_channel=True,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                calibrate_method=CalibrationMethod.Percentile, op_types_to_quantize=["Conv"],
                                nodes_to_exclude=[convs[0], convs[-1]])
        except (OSError, ValueError, RuntimeError) as exc:
            raise ExportError(f"int8 quantization failed: {first_line(exc)}") from None
        return onnx.load_model(str(target))


@contextlib.contextmanager
def _root_logger_silenced() -> Iterator[None]:
    root = logging.getLogger()

    def drop(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR

    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def psnr_report(reference: bytes | str, candidate: bytes | str, photos: Sequence[str | os.PathLike[str]], *,
                max_side: int = 512, styles: Sequence[str] = ()) -> QualityReport:
    """PSNR of ``candidate``'s output against ``reference``'s (ONNX Runtime, CPU) on each photo; for a
    multi-style graph (``styles``: its style names) on each photo under each pure style, the mean and the worst
    over all of them (``worst_photo`` then names the style too)."""
    from fastnst.runtime.onnx_backend import make_session
    from fastnst.utils.images import image_to_tensor, load_rgb, resize_max_side

    if not photos:
        raise ExportError("no held-aside photos to measure PSNR on")
    ref, cand = make_session(reference), make_session(candidate)
    values: list[tuple[float, str]] = []
    one_hot = np.eye(len(styles), dtype=np.float32)
    for path in photos:
        batch = image_to_tensor(resize_max_side(load_rgb(path), max_side)).numpy()
        feeds = ([({"image": batch, "style_weights": one_hot[index][None]}, f"{Path(path).name} ({name})")
                  for index, name in enumerate(styles)] if len(styles) > 1 else [({"image": batch}, Path(path).name)])
        for feed, label in feeds:
            expected = ref.run(None, feed)[0]
            got = cand.run(None, feed)[0]
            values.append((psnr(expected, got), label))
    worst = min(values)
    return QualityReport(psnr_mean=float(np.mean([v for v, _ in values])), psnr_min=worst[0], photos=len(photos),
                         max_side=max_side, worst_photo=worst[1])


def psnr(expected: np.ndarray, got: np.ndarray) -> float:
    """PSNR in dB of two images in [0, 1] (capped at :data:`PSNR_CAP` for identical ones)."""
    mse = float(np.mean((expected.astype(np.float64) - got.astype(np.float64)) ** 2))
    if not math.isfinite(mse):
        return 0.0
    return PSNR_CAP if mse == 0 else min(PSNR_CAP, 10.0 * math.log10(1.0 / mse))


def _spread(items: list[Path] | list[str | os.PathLike[str]], count: int) -> list[Path]:
    """Up to ``count`` items evenly spread over the list (the photo folders are sorted by subject)."""
    paths = [Path(p) for p in items]
    if len(paths) <= count:
        return paths
    step = len(paths) / count
    return [paths[int(i * step)] for i in range(count)]


def _square_crop(path: Path, size: int) -> np.ndarray:
    """[1, 3, size, size] float32: shorter side resized to ``size``, centre crop."""
    from PIL import Image

    from fastnst.utils.images import image_to_tensor, load_rgb

    image = load_rgb(path)
    scale = size / min(image.size)
    resized = image.resize((max(size, round(image.width * scale)), max(size, round(image.height * scale))),
                           Image.Resampling.BICUBIC)
    left, top = (resized.width - size) // 2, (resized.height - size) // 2
    return image_to_tensor(resized.crop((left, top, left + size, top + size))).numpy()
