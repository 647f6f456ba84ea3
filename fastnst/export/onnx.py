"""Export a trained transform network to ONNX, and prove that the file computes what PyTorch computes.

One function, :func:`export_onnx`, does the whole job (timm ``utils/onnx.py`` is the model): the public
``torch.onnx.export`` on :class:`~fastnst.runtime.fused.FusedTransformer` (the same function as TransformerNet,
with fewer operations), named input ``image`` and output ``stylized`` with dynamic batch, height and width, the
model's metadata written into the file, ``onnx.checker`` with ``full_check``, and a comparison of ONNX Runtime
against PyTorch on random and real images. A maximum difference above the tolerance fails the export and leaves
no file.

A multi-style model (conditional instance norm) gets a second input, ``style_weights``: float32 [batch, styles],
one row of style weights per image (one-hot rows pick a style, other rows mix them; rows are used as given, so
callers normalise them — :class:`~fastnst.runtime.onnx_backend.OnnxBackend` does, and broadcasts one mix to the
batch). Its verification runs every pure style, the uniform mix and per-image rows against PyTorch; the fp16 /
int8 PSNR gates run every photo under every style. A single-style model's file has the one input, as always.

Reduced precisions (fp16 weights, int8 — see :mod:`fastnst.export.quantize`) are instead judged by their PSNR
against the fp32 model's output on held-aside photos, and refused below a threshold.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from fastnst._version import __version__
from fastnst.model.files import ONNX_FILES, ONNX_FORMAT, ONNX_INPUT, ONNX_OUTPUT, ModelInfo, record_file_digest
from fastnst.model.transformer import MIN_INTERNAL_SIDE, TransformerNet
from fastnst.runtime.onnx_backend import STYLE_WEIGHTS_NAME
from fastnst.utils.atomic import atomic_path
from fastnst.utils.defaults import DEFAULT_MIN_PSNR, DEFAULT_OPSET, DEFAULT_TOLERANCE
from fastnst.utils.errors import ExportError, first_line

log = logging.getLogger(__name__)

Precision = Literal["fp32", "fp16", "int8"]
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
INPUT_NAME, OUTPUT_NAME = ONNX_INPUT, ONNX_OUTPUT
DYNAMIC_AXES = ("batch", "height", "width")
MIN_OPSET = 17  # InstanceNormalization, Pad with reflect mode and all ops used are stable since 13; 17 is the floor
VERIFY_MAX_SIDE = 256  # real images are downscaled to this for the PyTorch comparison (the error does not grow)
RANDOM_SHAPES: tuple[tuple[int, int, int, int], ...] = ((1, 3, 64, 64), (2, 3, 45, 70), (1, 3, 16, 19))
"""Random verification batches: a plain size, a batch of 2 at sizes not divisible by 4, and the smallest side."""


@dataclass(frozen=True)
class Verification:
    """ONNX Runtime against PyTorch (fp32): the largest absolute difference over all checked images."""

    max_abs_error: float
    random_images: int
    real_images: int
    tolerance: float


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` wrote and how it was checked."""

    path: Path
    precision: str
    opset: int
    size_bytes: int
    seconds: float
    verification: Verification  # of the fp32 graph the file was made from
    quality: Any = None  # fastnst.export.quantize.QualityReport for fp16/int8


def export_onnx(model: TransformerNet, info: ModelInfo, path: str | os.PathLike[str], *,
                precision: Precision = "fp32", opset: int = DEFAULT_OPSET, tolerance: float = DEFAULT_TOLERANCE,
                check_images: Sequence[str | os.PathLike[str]] = (),
                calibration_photos: Sequence[str | os.PathLike[str]] = (),
                evaluation_photos: Sequence[str | os.PathLike[str]] = (),
                min_psnr: float = DEFAULT_MIN_PSNR, eval_max_side: int = 512) -> ExportResult:
    """Export ``model`` to ``path`` (written atomically, only once every check passed), and record its SHA-256 in
    the ``model.json`` beside it.

    ``check_images``: real photos for the PyTorch comparison (besides fixed random batches).
    ``calibration_photos`` (int8) and ``evaluation_photos`` (fp16, int8): photos to calibrate activation ranges
    on and held-aside photos to measure PSNR on; keep them disjoint (see :func:`fastnst.training.data.split_holdout`).
    Raises ExportError when a check fails, naming the number that failed.
    """
    from fastnst.export import quantize
    from fastnst.runtime.fp16 import convert_fp16  # onnx / onnxruntime are imported by the functions that need them

    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if model.spec.styles > 1 and len(info.styles) != model.spec.styles:
        raise ExportError(f"{info.name} holds {model.spec.styles} styles but its model.json names "
                          f"{len(info.styles)}; fix its \"styles\" list before exporting")
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too old; fastnst exports opset {MIN_OPSET} or newer")
    if precision != "fp32" and not evaluation_photos:
        raise ExportError(f"a {precision} export needs held-aside photos to measure its PSNR against fp32")
    if precision == "int8" and not calibration_photos:
        raise ExportError("an int8 export needs calibration photos")
    started = time.perf_counter()
    model = model.float().cpu().eval()
    # int8: ONNX Runtime quantizes plain convolutions only, so upsampling uses the pixel-shuffle form.
    upsample = "shuffle" if precision == "int8" else "transposed"
    proto = trace(model, opset=opset, upsample=upsample)
    verification = verify_against_torch(proto.SerializeToString(), model, check_images, tolerance)
    quality = None
    styles = info.styles if model.spec.styles > 1 else []
    if precision != "fp32":
        reduced = (convert_fp16(proto) if precision == "fp16"
                   else quantize.quantize_int8(proto, calibration_photos, styles=len(styles)))
        quality = quantize.psnr_report(proto.SerializeToString(), reduced.SerializeToString(), evaluation_photos,
                                       max_side=eval_max_side, styles=styles)
        if quality.psnr_mean < min_psnr:
            raise ExportError(f"the {precision} model reaches {quality.psnr_mean:.1f} dB PSNR against fp32 "
                              f"(worst photo {quality.psnr_min:.1f} dB) on {quality.photos} held-aside photos, "
                              f"below the {min_psnr:g} dB threshold; not written")
        proto = reduced
    add_metadata(proto, info, precision=precision, styles=styles, checks={
        "verification": asdict(verification),
        **({"quality": asdict(quality), "min_psnr_db": min_psnr} if quality is not None else {}),
    })
    import onnx

    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"the exported graph fails onnx.checker: {first_line(exc)}") from None
    target = Path(path)
    with atomic_path(target) as tmp:
        onnx.save_model(proto, str(tmp))
    record_file_digest(target)  # in the model.json beside it, if any: backends check it before opening the file
    return ExportResult(path=target, precision=precision, opset=opset, size_bytes=target.stat().st_size,
                        seconds=time.perf_counter() - started, verification=verification, quality=quality)


def trace(model: TransformerNet, *, opset: int = DEFAULT_OPSET, upsample: str = "transposed") -> Any:
    """``torch.onnx.export`` of the fused network → onnx.ModelProto with named, dynamic inputs and outputs
    (a multi-style network: ``image`` and ``style_weights`` [batch, styles])."""
    from fastnst.runtime.fused import FusedTransformer

    batch = torch.export.Dim(DYNAMIC_AXES[0], min=1)
    dims = {0: batch,
            2: torch.export.Dim(DYNAMIC_AXES[1], min=MIN_INTERNAL_SIDE),
            3: torch.export.Dim(DYNAMIC_AXES[2], min=MIN_INTERNAL_SIDE)}
    example = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    fused: torch.nn.Module
    if model.spec.styles > 1:
        fused = MultiStyleGraph(model, upsample=upsample).eval()
        args: tuple[torch.Tensor, ...] = (example, torch.full((1, model.spec.styles), 1.0 / model.spec.styles))
        names, shapes = [INPUT_NAME, STYLE_WEIGHTS_NAME], {"image": dims, "style_weights": {0: batch}}
    else:
        fused = FusedTransformer(model, upsample=upsample).eval()
        args, names, shapes = (example,), [INPUT_NAME], {"image": dims}
    # The exporter reports progress on stdout and warns about its internals; the library stays quiet.
    with (contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(),
          _quiet_loggers("onnxscript", "onnx_ir")):
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(fused, args, None, input_names=names,
                                        output_names=[OUTPUT_NAME], dynamic_shapes=shapes,
                                        opset_version=opset, dynamo=True, verbose=False)
        except ImportError as exc:
            raise ExportError(f"ONNX export needs the onnx and onnxscript packages ({exc})") from None
        except Exception as exc:  # noqa: BLE001 - exporter failures come in many types; one line for the user
            raise ExportError(f"torch.onnx.export failed: {first_line(exc)}") from None
    proto = program.model_proto
    # The exporter names output dimensions with sympy expressions of the input's; they are the input's.
    for value in (*proto.graph.input, *proto.graph.output):
        shape = value.type.tensor_type.shape
        axes = ((0, DYNAMIC_AXES[0]),) if value.name == STYLE_WEIGHTS_NAME else \
            ((0, DYNAMIC_AXES[0]), (2, DYNAMIC_AXES[1]), (3, DYNAMIC_AXES[2]))
        for index, axis in axes:
            shape.dim[index].Clear()
            shape.dim[index].dim_param = axis
    return proto


class MultiStyleGraph(torch.nn.Module):
    """The fused network of a multi-style model, with ``style_weights`` [N, styles] as a second input.

    FusedTransformer keeps the network's own norm modules but recognises plain instance norms only; the
    conditional norms are put into its norm slots here, in network order (the export's verification against
    TransformerNet catches any mismatch).
    """

    def __init__(self, net: TransformerNet, upsample: str = "transposed") -> None:
        from fastnst.runtime.fused import FusedTransformer

        super().__init__()
        self.fused = FusedTransformer(net, upsample=upsample)
        norms = list(net.conditional_norms().values())
        slots = [m for m in self.fused.modules() if hasattr(m, "norm") and hasattr(m, "relu")]
        if all(slot.norm is None for slot in slots):
            if len(slots) != len(norms):
                raise ExportError(f"the fused network has {len(slots)} norm slots for {len(norms)} conditional "
                                  "norms; cannot export this multi-style network")
            for slot, norm in zip(slots, norms, strict=True):
                slot.norm = norm
        self._norms = norms  # a plain list: the modules are already registered inside self.fused

    def forward(self, image: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        for norm in self._norms:
            norm.mix = style_weights
        try:
            return self.fused(image)
        finally:
            for norm in self._norms:
                norm.mix = None


@contextlib.contextmanager
def _quiet_loggers(*names: str) -> Iterator[None]:
    """Raise the exporter's chatty loggers (INFO per rewrite rule) to WARNING for the duration."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=False):
            logger.setLevel(level)


def add_metadata(proto: Any, info: ModelInfo, *, precision: str, checks: dict[str, Any],
                 styles: Sequence[str] = ()) -> None:
    """Write what a consumer of the file needs to know into its ``metadata_props`` (replacing earlier ones);
    ``styles``: a multi-style model's style names, in the order of the ``style_weights`` columns."""
    meta = dict(info.metadata)
    values = {
        "fastnst.format": ONNX_FORMAT,
        "fastnst.version": __version__,
        "fastnst.style": info.name,
        "fastnst.precision": precision,
        "fastnst.input": f"{INPUT_NAME}: float32 [N, 3, H, W], RGB in [0, 1], H and W >= {MIN_INTERNAL_SIDE} "
                         "(sizes not divisible by 4 are padded inside and cropped back)",
        "fastnst.output": f"{OUTPUT_NAME}: float32 [N, 3, H, W], RGB clamped to [0, 1], the input's size",
        "fastnst.spec": json.dumps(info.spec.to_dict()),
        "fastnst.training_config": json.dumps(meta.pop("config", {}), sort_keys=True),
        "fastnst.model_card": json.dumps(meta, sort_keys=True),
        "fastnst.checks": json.dumps(checks, sort_keys=True),
    }
    if styles:
        values["fastnst.styles"] = json.dumps(list(styles))
        values["fastnst.style_weights"] = (f"{STYLE_WEIGHTS_NAME}: float32 [N, {len(styles)}], one row per image: "
                                           "the weight of each style of fastnst.styles, non-negative, summing to 1 "
                                           "(one-hot picks a style)")
    kept = [p for p in proto.metadata_props if not p.key.startswith("fastnst.")]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in values.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = (f"fastnst {__version__} style network '{info.name}' ({precision}); "
                        "see the fastnst.* metadata for inputs, outputs and training")
    proto.producer_name = "fastnst"
    proto.producer_version = __version__


def verify_against_torch(onnx_model: bytes | str | os.PathLike[str], model: TransformerNet,
                         images: Sequence[str | os.PathLike[str]] = (),
                         tolerance: float = DEFAULT_TOLERANCE) -> Verification:
    """Compare ONNX Runtime (CPU, all graph optimisations, as the backend runs it) with PyTorch fp32.

    A multi-style model is compared under every pure style and the uniform mix (each for the whole batch), and,
    for batches of several images, with a different row per image. Raises ExportError when the largest absolute
    difference exceeds ``tolerance``.
    """
    from fastnst.runtime.onnx_backend import make_session
    from fastnst.utils.images import image_to_tensor, load_rgb, resize_max_side

    session = make_session(onnx_model, providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(0)
    batches = [torch.rand(*shape, generator=gen) for shape in RANDOM_SHAPES]
    batches += [image_to_tensor(resize_max_side(load_rgb(path), VERIFY_MAX_SIDE)) for path in images]
    worst = 0.0
    with torch.inference_mode():
        for batch in batches:
            for weights in verification_weights(model.spec.styles, batch.shape[0]):
                if weights is None:
                    expected = model(batch).clamp(0, 1).numpy()
                    got = session.run(None, {INPUT_NAME: batch.numpy()})[0]
                else:
                    expected = model(batch, weights).clamp(0, 1).numpy()
                    got = session.run(None, {INPUT_NAME: batch.numpy(), STYLE_WEIGHTS_NAME: weights.numpy()})[0]
                if got.shape != expected.shape:
                    raise ExportError(f"ONNX output shape {list(got.shape)} differs from PyTorch's "
                                      f"{list(expected.shape)} for input {list(batch.shape)}")
                worst = max(worst, float(np.abs(got - expected).max()))
    if not worst <= tolerance:  # also catches NaN
        raise ExportError(f"ONNX Runtime differs from PyTorch by up to {worst:.3g} (tolerance {tolerance:g}); "
                          "export refused")
    return Verification(max_abs_error=worst, random_images=sum(b.shape[0] for b in batches[:len(RANDOM_SHAPES)]),
                        real_images=len(images), tolerance=tolerance)


def verification_weights(styles: int, batch: int) -> list[torch.Tensor | None]:
    """The style weights a batch is verified with: [None] for a single-style model; else each pure style and the
    uniform mix as [batch, styles] rows, plus (batch > 1) those rows cycled over the images, one per image."""
    if styles == 1:
        return [None]
    rows = [*torch.eye(styles), torch.full((styles,), 1.0 / styles)]
    cases: list[torch.Tensor | None] = [row.expand(batch, styles).contiguous() for row in rows]
    if batch > 1:
        cases.append(torch.stack([rows[index % len(rows)] for index in range(batch)]))
    return cases


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``fastnst.*`` metadata of an ONNX file, read without loading its weights into a session."""
    import onnx

    proto = onnx.load_model(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props if p.key.startswith("fastnst.")}


def default_output(model_file: Path, precision: str) -> Path:
    """Where an export goes by default: beside the model's weights, named by precision."""
    return model_file.parent / ONNX_FILES[precision]
