"""Pick and build a backend for a model: backend, precision and device chosen in one place.

``auto`` picks the fastest backend that can run the request: ONNX Runtime when it is installed and the model has
an ONNX export of that precision (faster than PyTorch on the CPUs measured, see docs/benchmarks.md; on GPUs it adds
TensorRT), otherwise PyTorch; bf16 only runs on PyTorch. On a GPU, ONNX Runtime must get its CUDA or TensorRT
provider; a build without them would run on the CPU, so PyTorch runs on the GPU instead. Precision ``auto`` is
fp32 on CPUs (exact) and fp16 on GPUs; an ``.onnx`` file given directly runs in its own precision. A multi-style
model chooses the same way: its export takes the style mix as an input; PyTorch runs it baked.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from pathlib import Path

from fastnst.model.files import ONNX_FILES, ModelInfo, find_model, load_model, load_styled_model
from fastnst.model.mixing import Mix, model_styles, style_weights
from fastnst.model.transformer import TransformerSpec
from fastnst.runtime.base import Backend
from fastnst.utils.errors import BackendError, first_line

log = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = ("auto", "torch", "onnxruntime")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16", "int8")


def have_onnxruntime() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def onnx_file(folder: Path, precision: str) -> Path | None:
    """The export in ``folder`` that runs ``precision``: its own file, or for fp16 the fp32 one (converted)."""
    for name in (ONNX_FILES.get(precision), ONNX_FILES["fp32"] if precision == "fp16" else None):
        if name and (folder / name).is_file():
            return folder / name
    return None


def load_backend(model: str | os.PathLike[str], *, backend: str = "auto", precision: str = "auto",
                 device: str = "auto", threads: int | None = None, compile: bool = False,
                 style: str | None = None, mix: Mix | None = None) -> tuple[Backend, ModelInfo]:
    """Build the backend for ``model`` (a name, folder, .safetensors or .onnx file) and describe the model.

    ``compile`` (torch.compile) needs the torch backend, so with ``backend="auto"`` it picks PyTorch. ``style``
    or ``mix`` pick what a multi-style model runs (default: its first style; see
    :func:`fastnst.model.mixing.style_weights`): on PyTorch the network is baked for it into a single-style one,
    which every inference path runs unchanged; ONNX Runtime feeds the weights to the export's ``style_weights``.
    """
    from fastnst.runtime.torch_backend import TorchBackend
    from fastnst.utils.device import default_inference_precision, resolve_device

    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise BackendError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if backend == "onnxruntime" and precision == "bf16":
        raise BackendError("bf16 runs on the torch backend only; ONNX Runtime runs fp32, fp16 and int8")
    if compile:
        if backend == "onnxruntime" or str(model).endswith(".onnx"):
            raise BackendError("torch.compile is for the torch backend (ONNX Runtime optimises its graph itself)",
                               setting="backend")
        if precision == "int8":
            raise BackendError("int8 runs on the onnxruntime backend only, which torch.compile does not apply to")
        backend = "torch"
    target = resolve_device(device)  # refuses cuda without a GPU, for both backends
    if str(model).endswith(".onnx"):
        if backend == "torch":
            raise BackendError(f"{model} is an ONNX file; the torch backend needs the model's .safetensors")
        # An ONNX file runs in its own precision unless one is asked for.
        return _onnx(Path(model), None if precision == "auto" else precision, device, threads, style=style, mix=mix)
    if precision == "auto":
        precision = default_inference_precision(target)

    weights = find_model(model)
    exported = onnx_file(weights.parent, precision)
    if backend == "auto":
        if precision != "bf16" and exported is not None and have_onnxruntime():
            if target.type != "cuda" or precision == "int8":  # int8 runs on ONNX Runtime alone, wherever
                backend = "onnxruntime"
            else:  # only if a GPU provider really runs: a CPU-only build would fall back to the CPU
                try:
                    return _onnx_for(model, weights, exported, precision, "cuda", threads, style=style, mix=mix)
                except BackendError as exc:
                    log.info("onnxruntime cannot run on the GPU here (%s): using the torch backend",
                             first_line(exc))
                    backend = "torch"
        elif precision == "int8":
            raise BackendError(f"int8 needs {weights.parent / ONNX_FILES['int8']} and the onnxruntime package; "
                               f"make it with `fastnst export -m {model} --precision int8`")
        else:
            backend = "torch"
            if precision != "bf16":
                log.info("no %s beside %s (or no onnxruntime): using the torch backend; `fastnst export` makes it",
                         ONNX_FILES[precision], weights.name)
    if backend == "onnxruntime":
        return _onnx_for(model, weights, exported, precision, device, threads, style=style, mix=mix)
    net, info = load_styled_model(weights, device=target, style=style, mix=mix)
    return TorchBackend(net, device=str(target), precision=precision, compile=compile), info


def _onnx_for(model: str | os.PathLike[str], weights: Path, exported: Path | None, precision: str, device: str,
              threads: int | None, *, style: str | None, mix: Mix | None) -> tuple[Backend, ModelInfo]:
    """ONNX Runtime running ``exported``, the export of ``weights`` (``model`` as the user named it), with the
    style or mix chosen and checked against the model's own styles."""
    if exported is None:
        raise BackendError(f"{weights.parent} has no {ONNX_FILES.get(precision, 'ONNX file')} for {precision}; "
                           f"make it with `fastnst export -m {model} --precision "
                           f"{precision if precision in ONNX_FILES else 'fp32'}`")
    _, info = load_model(weights, device="cpu")
    mixture = style_weights(info.styles, style=style, mix=mix)  # a style the model does not hold is refused
    onnx_backend, _ = _onnx(exported, precision, device, threads)
    held = onnx_backend.styles  # type: ignore[attr-defined]
    if (len(held) > 1 or len(info.styles) > 1) and held != info.styles:  # exported before styles were added
        raise BackendError(f"{exported.name} holds the styles {', '.join(held)} but the model holds "
                           f"{', '.join(info.styles)}; export it again with `fastnst export -m {model}`")
    onnx_backend.set_style_weights(mixture)  # type: ignore[attr-defined]
    return onnx_backend, info


def _onnx(path: Path, precision: str | None, device: str, threads: int | None, *, style: str | None = None,
          mix: Mix | None = None) -> tuple[Backend, ModelInfo]:
    """The ONNX Runtime backend for ``path`` and the model's description from the file's metadata; ``style`` or
    ``mix`` pick what a multi-style export runs (refused for names the file does not hold)."""
    from fastnst.runtime.onnx_backend import OnnxBackend

    runner = OnnxBackend(path, precision=precision, device=device, threads=threads)
    if style is not None or mix:
        runner.set_style_weights(style_weights(runner.styles, style=style, mix=mix))
    meta = runner.metadata
    try:
        spec = TransformerSpec(**json.loads(meta.get("fastnst.spec", "{}")))
        card = json.loads(meta.get("fastnst.model_card", "{}"))
        card["config"] = json.loads(meta.get("fastnst.training_config", "{}"))
    except (TypeError, ValueError):
        raise BackendError(f"{path} has unreadable fastnst metadata") from None
    if runner.styles != model_styles(card, meta.get("fastnst.style", path.stem)):
        card["styles"] = [{"name": name} for name in runner.styles]  # fastnst.styles is what the graph's input uses
    return runner, ModelInfo(name=meta.get("fastnst.style", path.stem), spec=spec, metadata=card)
