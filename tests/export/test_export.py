"""ONNX export: file contents, verification against PyTorch, reduced precisions, refusals, shipped models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import onnx
from onnx_helpers import REPO, SAMPLES, patched_trace, tiny_export

from fastnst.cli import main
from fastnst.export.onnx import (
    DEFAULT_TOLERANCE,
    MIN_OPSET,
    ONNX_FORMAT,
    export_onnx,
    read_metadata,
    verify_against_torch,
)
from fastnst.export.quantize import psnr
from fastnst.model.files import load_model
from fastnst.model.transformer import TransformerNet, TransformerSpec, bake
from fastnst.runtime.onnx_backend import OnnxBackend
from fastnst.utils.errors import ExportError
from fastnst.utils.images import image_to_tensor, load_rgb, resize_max_side

SHIPPED = sorted(p.parent for p in (REPO / "models").glob("*/model.onnx"))


def test_file_is_checked_named_dynamic_and_carries_metadata() -> None:
    tiny = tiny_export()
    proto = onnx.load_model(str(tiny.folder / "model.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    assert max(op.version for op in proto.opset_import if op.domain in ("", "ai.onnx")) >= MIN_OPSET
    (graph_in,), (graph_out,) = proto.graph.input, proto.graph.output
    assert (graph_in.name, graph_out.name) == ("image", "stylized")
    for value in (graph_in, graph_out):
        dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        assert dims == ["batch", 3, "height", "width"]
    meta = read_metadata(tiny.folder / "model.onnx")
    assert meta["fastnst.format"] == ONNX_FORMAT and meta["fastnst.style"] == "tiny"
    assert meta["fastnst.precision"] == "fp32" and "[0, 1]" in meta["fastnst.input"]
    assert json.loads(meta["fastnst.training_config"]) == {"holdout_every": 3, "steps": 1}
    assert json.loads(meta["fastnst.spec"]) == {"width": 8, "residual_blocks": 1}
    assert meta["fastnst.version"]
    checks = json.loads(meta["fastnst.checks"])["verification"]
    assert checks["max_abs_error"] <= checks["tolerance"] == DEFAULT_TOLERANCE and checks["real_images"] == 2


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (2, 3, 37, 51), (1, 3, 17, 16), (1, 3, 9, 5), (3, 3, 20, 100)])
def test_onnx_matches_pytorch_at_any_size(shape: tuple[int, ...]) -> None:
    tiny = tiny_export()
    backend = OnnxBackend(tiny.folder / "model.onnx", device="cpu")
    batch = torch.rand(*shape, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        expected = tiny.model(batch).clamp(0, 1)
    got = backend.stylize(batch)
    assert got.shape == batch.shape
    assert (got - expected).abs().max().item() <= DEFAULT_TOLERANCE


def test_verification_fails_beyond_tolerance() -> None:
    tiny = tiny_export()
    other = TransformerNet(TransformerSpec(width=8, residual_blocks=1))  # different weights, same graph shape
    with pytest.raises(ExportError, match=r"differs from PyTorch by up to .* \(tolerance 0\.0001\); export refused"):
        verify_against_torch(tiny.proto.SerializeToString(), other)


def test_failed_check_leaves_no_file(tmp_path: Path) -> None:
    tiny = tiny_export()
    target = tmp_path / "model.onnx"
    target_before = tmp_path / "keep.onnx"
    target_before.write_bytes(b"old")
    with patched_trace(tiny.proto, tiny.shuffle_proto), pytest.raises(ExportError, match="tolerance 0"):
        export_onnx(tiny.model, tiny.info, target, tolerance=0.0)
    with patched_trace(tiny.proto, tiny.shuffle_proto), pytest.raises(ExportError, match="tolerance 0"):
        export_onnx(tiny.model, tiny.info, target_before, tolerance=0.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.onnx"]
    assert target_before.read_bytes() == b"old"


def test_int8_is_calibrated_checked_and_refused_below_threshold(tmp_path: Path) -> None:
    tiny = tiny_export()
    calibration, held = tiny.photos[:4], tiny.photos[4:]
    target = tmp_path / "model.int8.onnx"
    with patched_trace(tiny.proto, tiny.shuffle_proto):
        with pytest.raises(ExportError, match=r"int8 model reaches .* dB PSNR .* below the 200 dB threshold; not "
                                              r"written"):
            export_onnx(tiny.model, tiny.info, target, precision="int8", calibration_photos=calibration,
                        evaluation_photos=held, min_psnr=200)
        assert not target.exists()
        result = export_onnx(tiny.model, tiny.info, target, precision="int8", calibration_photos=calibration,
                             evaluation_photos=held, min_psnr=20)
    assert result.quality.photos == 2 and result.quality.psnr_mean >= 20
    ops = {node.op_type for node in onnx.load_model(str(target)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert read_metadata(target)["fastnst.precision"] == "int8"
    backend = OnnxBackend(target, device="cpu")
    assert backend.precision == "int8"
    batch = image_to_tensor(load_rgb(held[0]))
    assert psnr(tiny.model(batch).clamp(0, 1).detach().numpy(), backend.stylize(batch).numpy()) >= 20


def test_fp16_keeps_fp32_io_and_reports_psnr(tmp_path: Path) -> None:
    tiny = tiny_export()
    target = tmp_path / "model.fp16.onnx"
    with patched_trace(tiny.proto, tiny.shuffle_proto):
        result = export_onnx(tiny.model, tiny.info, target, precision="fp16", evaluation_photos=tiny.photos[:2])
    assert result.quality.psnr_min > 45  # on a CPU only the weights are rounded
    proto = onnx.load_model(str(target))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(init.data_type == onnx.TensorProto.FLOAT16 for init in proto.graph.initializer)
    assert OnnxBackend(target, device="cpu").stylize(torch.rand(1, 3, 20, 24)).dtype == torch.float32


def test_reduced_precision_needs_photos(tmp_path: Path) -> None:
    tiny = tiny_export()
    with pytest.raises(ExportError, match="held-aside photos"):
        export_onnx(tiny.model, tiny.info, tmp_path / "x.onnx", precision="fp16")
    with pytest.raises(ExportError, match="calibration photos"):
        export_onnx(tiny.model, tiny.info, tmp_path / "x.onnx", precision="int8", evaluation_photos=tiny.photos)
    with pytest.raises(ExportError, match="opset 11 is too old"):
        export_onnx(tiny.model, tiny.info, tmp_path / "x.onnx", opset=11)


def test_cli_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny = tiny_export()
    photos = tiny.photos[0].parent
    with patched_trace(tiny.proto, tiny.shuffle_proto):
        code = main(["export", "-m", str(tiny.folder), "-o", str(tmp_path), "--precision", "fp32", "int8",
                     "--photos", str(photos), "--holdout-every", "3", "--min-psnr", "20"])
    assert code == 0
    out = capsys.readouterr().out
    assert "model.onnx (fp32, opset 18" in out and "random + 2 real images" in out
    assert "model.int8.onnx (int8" in out and "PSNR against fp32" in out and "2 held-aside photos" in out
    assert {p.name for p in tmp_path.iterdir()} == {"model.onnx", "model.int8.onnx"}
    # A threshold no model reaches: exit 1, one line, nothing written.
    with patched_trace(tiny.proto, tiny.shuffle_proto):
        code = main(["export", "-m", str(tiny.folder), "-o", str(tmp_path / "new"), "--precision", "int8",
                     "--photos", str(photos), "--holdout-every", "3", "--min-psnr", "200"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "below the 200 dB threshold" in err
    assert not (tmp_path / "new" / "model.int8.onnx").exists()


@pytest.mark.skipif(not SHIPPED or not SAMPLES, reason="no exported shipped models or sample photos")
@pytest.mark.parametrize("folder", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_model_onnx_matches_pytorch_on_a_real_photo(folder: Path) -> None:
    model, info = load_model(folder)
    styles = model.spec.styles
    mix = [0.7, 0.3] + [0.0] * (styles - 2) if styles > 1 else None  # a multi-style model: two styles blended
    backend = OnnxBackend(folder / "model.onnx", device="cpu", style_weights=mix)
    names = [entry["name"] for entry in info.metadata.get("styles") or []] or [folder.name]
    assert backend.metadata["fastnst.style"] == "+".join(names) == info.metadata["style_name"]
    photo = image_to_tensor(resize_max_side(load_rgb(SAMPLES[0]), 256))
    with torch.inference_mode():
        expected = (bake(model, mix) if mix else model)(photo).clamp(0, 1)
    got = backend.stylize(photo)
    assert got.shape == photo.shape
    assert float(np.abs((got - expected).numpy()).max()) <= DEFAULT_TOLERANCE
    # and the stored verification says the same about the export's own checks
    assert json.loads(backend.metadata["fastnst.checks"])["verification"]["max_abs_error"] <= DEFAULT_TOLERANCE

