"""ONNX Runtime backend: TensorRT → CUDA → CPU, whichever works first, with tuned session options.

``onnxruntime`` is imported inside the functions, so ``import fastnst`` never needs it. The wheel we depend on
(``onnxruntime-gpu``) lists the TensorRT and CUDA providers even on machines without their libraries or without a
GPU, so "available" is decided by creating a session and asking which provider it actually got; each failed try
is summarised in the single log line that names the provider in use (ONNX Runtime's own messages are silenced
while trying).

A multi-style export has a second input, ``style_weights`` float32 [batch, styles] (its style names in the
``fastnst.styles`` metadata); the backend holds one normalised mix and feeds it, repeated for every image of the
batch, on each run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastnst.model.files import ONNX_FORMAT, verify_model_file
from fastnst.model.files import ONNX_INPUT as INPUT_NAME
from fastnst.model.files import ONNX_OUTPUT as OUTPUT_NAME
from fastnst.model.transformer import MIN_INTERNAL_SIDE
from fastnst.runtime.base import check_batch
from fastnst.runtime.fused import pad_for_network
from fastnst.utils.cache import default_cache_dir
from fastnst.utils.device import cuda_available
from fastnst.utils.errors import BackendError, first_line, shorten

log = logging.getLogger(__name__)

STYLE_WEIGHTS_NAME = "style_weights"
"""The second input of a multi-style export: float32 [batch, styles], one row of style weights per image."""

_SOURCE_LOCATION = re.compile(r"\S*\.(?:cc|cpp|h):\d+ [\w:~<>]+\([^()]*\)\s*")

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
PROVIDER_ORDER = (TENSORRT, CUDA, CPU)
# TensorRT builds one engine per shape range; one range covering photos up to 4K in either orientation and
# optimised for 1080p video frames avoids rebuilding (minutes) for every new photo size.
TRT_PROFILE = {"min": "1x3x16x16", "opt": "1x3x1080x1920", "max": "1x3x3840x3840"}


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendError(f"the onnxruntime backend needs the onnxruntime package ({exc}); "
                           "pip install onnxruntime-gpu (or onnxruntime)") from None
    return onnxruntime


def session_options(threads: int | None = None, *, memory_arena: bool = True) -> Any:
    """Session options tuned for this network (a chain of large convolutions, one image at a time).

    ``memory_arena`` False gives every buffer back after each run: ONNX Runtime's CPU arena keeps the largest
    run's buffers for good, which a long-running server with images of many sizes cannot afford.
    """
    ort = _ort()
    options = ort.SessionOptions()
    # ENABLE_ALL (ONNX Runtime's default in Python, set explicitly) adds the NCHWc layout transformer on CPUs:
    # blocked convolutions with fused ReLU, faster than ENABLE_EXTENDED on the CPUs measured.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL  # a chain: no branches to run in parallel
    options.intra_op_num_threads = threads or (os.cpu_count() or 1)  # every core works on each conv
    options.inter_op_num_threads = 1
    # Idle worker threads sleep instead of spinning between operators: spinning takes cores from PyTorch's own
    # threads (pre/post-processing, tiles) and, on a 2-core machine, from the other worker (docs/benchmarks.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_cpu_mem_arena = memory_arena  # reuse activation buffers between calls instead of malloc/free
    options.enable_mem_pattern = True  # plan the buffers once per input shape
    options.log_severity_level = 3  # errors only; fastnst reports provider fallbacks itself
    return options


def make_session(model: bytes | str | os.PathLike[str], providers: list[Any] | None = None,
                 threads: int | None = None, *, memory_arena: bool = True) -> Any:
    """An InferenceSession for ``model`` (file or serialized bytes) with :func:`session_options`."""
    ort = _ort()
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, session_options(threads, memory_arena=memory_arena),
                                providers=providers or [CPU])


def _trt_cache_dir() -> Path:
    """Where TensorRT engines are cached (created when TensorRT is actually tried)."""
    return default_cache_dir() / "tensorrt"


def provider_candidates(device: str, precision: str, styles: int = 1) -> list[tuple[str, dict[str, str]]]:
    """(provider, options) to try in order for ``device`` ("auto", "cpu", "cuda"); ``styles`` > 1 for a
    multi-style graph (TensorRT needs a shape range for its ``style_weights`` input too)."""
    ort = _ort()
    if device == "cpu":
        return [(CPU, {})]
    available = set(ort.get_available_providers())
    candidates: list[tuple[str, dict[str, str]]] = []
    if TENSORRT in available:
        shapes = {f"trt_profile_{k}_shapes": f"{INPUT_NAME}:{v}" for k, v in TRT_PROFILE.items()}
        if styles > 1:  # one row of weights per image, for the profile's batch sizes
            shapes = {k: f"{v},{STYLE_WEIGHTS_NAME}:{v.split(':')[1].split('x')[0]}x{styles}"
                      for k, v in shapes.items()}
        candidates.append((TENSORRT, {
            "trt_fp16_enable": str(precision in ("fp16", "int8")), "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": str(_trt_cache_dir()), "trt_timing_cache_enable": "True",
            "trt_timing_cache_path": str(_trt_cache_dir()), **shapes}))
    if CUDA in available:
        # EXHAUSTIVE searches cuDNN's algorithms once per shape; NHWC kernels use the tensor cores for fp16.
        candidates.append((CUDA, {"cudnn_conv_algo_search": "EXHAUSTIVE", "prefer_nhwc": "1"}))
        candidates.append((CUDA, {"cudnn_conv_algo_search": "EXHAUSTIVE"}))  # builds without NHWC kernels
    if device == "auto":
        candidates.append((CPU, {}))
    return candidates


def validate_model(path: str | os.PathLike[str]) -> dict[str, str]:
    """Open ``path`` on the CPU without optimising it and check it is a fastnst model; returns its metadata."""
    ort = _ort()
    label = str(path)
    if not Path(path).is_file():
        raise BackendError(f"{label} does not exist")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4
    try:
        session = ort.InferenceSession(label, options, providers=[CPU])
    except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types for unreadable files
        text = _SOURCE_LOCATION.sub("", str(exc)).strip()  # ORT's C++ file:line and function signature
        reason = shorten(text.splitlines()[-1], 200) if text else type(exc).__name__
        raise BackendError(f"{label} is not a readable ONNX model ({reason})") from None
    meta = dict(session.get_modelmeta().custom_metadata_map)
    if meta.get("fastnst.format") != ONNX_FORMAT:
        raise BackendError(f"{label} is an ONNX model but not a fastnst style network (no fastnst metadata); "
                           "export one with `fastnst export`")
    inputs, outputs = session.get_inputs(), session.get_outputs()
    weights = [value for value in inputs if value.name == STYLE_WEIGHTS_NAME]
    if len(inputs) - len(weights) != 1 or len(outputs) != 1:
        raise BackendError(f"{label} has {len(inputs)} inputs and {len(outputs)} outputs; a fastnst model has "
                           f"one of each (and a multi-style one a {STYLE_WEIGHTS_NAME} input)")
    image = next(value for value in inputs if value.name != STYLE_WEIGHTS_NAME)
    if weights:
        shape = weights[0].shape
        if len(shape) != 2 or not isinstance(shape[1], int) or weights[0].type != "tensor(float)":
            raise BackendError(f"{label} has input {STYLE_WEIGHTS_NAME} of type {weights[0].type} and shape "
                               f"{shape}; a multi-style fastnst model takes float32 [N, styles]")
    for kind, value in (("input", image), ("output", outputs[0])):
        shape = value.shape
        if len(shape) != 4 or shape[1] != 3 or value.type != "tensor(float)":
            raise BackendError(f"{label} has {kind} {value.name} of type {value.type} and shape {shape}; a fastnst "
                               "model takes and returns float32 [N, 3, H, W]")
    return meta


class OnnxBackend:
    """Runs an exported fastnst model (``model.onnx``, ``model.fp16.onnx`` or ``model.int8.onnx``).

    ``precision`` None runs the file as it is. "fp16" with an fp32 file runs TensorRT in fp16 mode, or converts
    the weights to fp16 in memory for the CUDA and CPU providers (as ``fastnst export --precision fp16`` does).
    ``style_weights``: for a multi-style export, one weight per style of :attr:`styles` (normalised here; default
    the first style), fed for every image; a single-style export accepts only ``[1.0]``.
    """

    name = "onnxruntime"

    def __init__(self, path: str | os.PathLike[str], *, precision: str | None = None, device: str = "auto",
                 threads: int | None = None, provider: str | None = None,
                 style_weights: Sequence[float] | None = None) -> None:
        ort = _ort()
        self.path = Path(path)
        if self.path.is_file():
            verify_model_file(self.path)  # against model.json's SHA-256, before ONNX Runtime reads it
        self.metadata = validate_model(self.path)
        self.styles = self._style_names()
        self.set_style_weights(style_weights)
        file_precision = self.metadata.get("fastnst.precision", "fp32")
        self.precision = precision or file_precision
        if self.precision not in ("fp32", "fp16", "int8"):
            raise BackendError(f"the onnxruntime backend runs fp32, fp16 or int8, not {self.precision}; "
                               "bf16 needs the torch backend")
        if self.precision != file_precision and not (self.precision == "fp16" and file_precision == "fp32"):
            raise BackendError(f"{self.path} is a {file_precision} model; it cannot run as {self.precision}")
        if device == "auto" and not cuda_available():
            device = "cpu"  # no GPU: do not make ONNX Runtime load (and fail on) the CUDA libraries
        failures: list[str] = []
        self.session = None
        fp16_bytes: bytes | None = None
        previous_severity = 2
        ort.set_default_logger_severity(4)  # silence provider-library load errors while trying
        try:
            if device != "cpu":
                _preload_cuda_libraries(ort)
            styles = len(self.styles) if self._multi_style else 1
            candidates = provider_candidates(device, self.precision, styles)
            if provider is not None:  # one provider only (benchmarks compare them)
                candidates = [c for c in provider_candidates("cuda", self.precision, styles) + [(CPU, {})]
                              if c[0] == provider] or [(provider, {})]
            for name, options in candidates:
                source: bytes | str = str(self.path)
                if name == TENSORRT:
                    _trt_cache_dir().mkdir(parents=True, exist_ok=True)
                if self.precision == "fp16" and file_precision == "fp32" and name != TENSORRT:
                    if fp16_bytes is None:
                        fp16_bytes = _fp16_in_memory(self.path)
                    source = fp16_bytes
                try:
                    fallback = [CPU] if name != CPU else []  # for any node the provider cannot run
                    session = make_session(source, providers=[(name, options), *fallback], threads=threads)
                except Exception as exc:  # noqa: BLE001 - any failure means: try the next provider
                    failures.append(f"{name} failed: {first_line(exc)}")
                    continue
                if session.get_providers()[0] != name:
                    failures.append(f"{name} unavailable")
                    continue
                self.session = session
                self._source, self._threads = source, threads
                break
        finally:
            ort.set_default_logger_severity(previous_severity)
        if self.session is None:
            raise BackendError(f"no ONNX Runtime provider could run {self.path} on {device}: "
                               f"{'; '.join(dict.fromkeys(failures)) or 'none available'}")
        self.device = self.session.get_providers()[0]
        note = f" ({'; '.join(dict.fromkeys(failures))})" if failures else ""
        log.info("onnxruntime: running %s %s on %s%s", self.path.name, self.precision, self.device, note)

    def _style_names(self) -> list[str]:
        """The export's style names: ``fastnst.styles`` for a multi-style graph, else its one style."""
        self._multi_style = "fastnst.styles" in self.metadata
        if not self._multi_style:
            return [self.metadata.get("fastnst.style", self.path.stem)]
        try:
            names = json.loads(self.metadata["fastnst.styles"])
        except ValueError:
            names = None
        if not isinstance(names, list) or len(names) < 2:
            raise BackendError(f"{self.path} has unreadable fastnst.styles metadata; export it again")
        return [str(name) for name in names]

    def set_style_weights(self, weights: Sequence[float] | None) -> None:
        """Run the style mix ``weights`` (one per style of :attr:`styles`, normalised; None: the first style)."""
        count = len(self.styles)
        if weights is None:
            weights = [1.0] + [0.0] * (count - 1)
        values = [float(w) for w in weights]
        if not self._multi_style:
            if len(values) != 1 or not math.isclose(values[0], 1.0, rel_tol=1e-6):
                raise BackendError(f"{self.path} holds one style; it takes no style weights (got {values})",
                                   setting="style")
        elif len(values) != count:
            raise BackendError(f"{self.path} holds {count} styles ({', '.join(self.styles)}); got "
                               f"{len(values)} style weights", setting="style")
        if any(not math.isfinite(w) or w < 0 for w in values) or sum(values) <= 0:
            raise BackendError(f"style weights must be finite, not negative and not all zero (got {values})",
                               setting="mix")
        total = sum(values)
        self.style_weights = [w / total for w in values]
        self._weights_row = np.asarray(self.style_weights, dtype=np.float32)[None]

    def disable_memory_arena(self) -> None:
        """On the CPU provider, re-create the session without ONNX Runtime's CPU memory arena.

        For servers: the arena keeps the buffers of the largest input it has seen (per shape) and never returns
        them, so a burst of large images leaves the process at its peak for good; without it the working memory
        goes back after every run, at a small cost in speed (docs/reliability.md). The CLI keeps the arena.
        """
        if self.device == CPU:
            self.session = make_session(self._source, providers=[CPU], threads=self._threads, memory_arena=False)

    def stylize(self, batch: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] float in [0, 1] → stylized, same shape, clamped (any H and W)."""
        check_batch(batch)
        h, w = batch.shape[-2:]
        if min(h, w) < MIN_INTERNAL_SIDE:  # the graph pads to multiples of 4 itself but needs 16 px for that
            batch, h, w = pad_for_network(batch)
        array = np.ascontiguousarray(batch.detach().to("cpu", torch.float32).numpy())
        feed = {INPUT_NAME: array}
        if self._multi_style:
            feed[STYLE_WEIGHTS_NAME] = np.repeat(self._weights_row, array.shape[0], axis=0)
        out = self.session.run([OUTPUT_NAME], feed)[0]  # type: ignore[union-attr]
        return torch.from_numpy(out[..., :h, :w]).clamp_(0.0, 1.0)


def _fp16_in_memory(path: Path) -> bytes:
    """The fp32 file converted to fp16 (what ``fastnst export --precision fp16`` writes, without its check)."""
    try:
        import onnx

        from fastnst.runtime.fp16 import convert_fp16
    except ImportError as exc:
        raise BackendError(f"running {path.name} in fp16 needs the onnx package ({exc}) or a model.fp16.onnx "
                           "from `fastnst export --precision fp16`") from None
    return convert_fp16(onnx.load_model(str(path))).SerializeToString()


def _preload_cuda_libraries(ort: Any) -> None:
    """Let the CUDA and TensorRT providers find CUDA/cuDNN installed as pip packages (nvidia-*), which are not
    on the loader's search path; onnxruntime-gpu ≥ 1.21 knows where they are and reuses PyTorch's when loaded."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    try:
        preload()
    except Exception as exc:  # noqa: BLE001 - a library it cannot load shows up as the provider's own failure
        log.debug("onnxruntime.preload_dlls: %s", first_line(exc))


