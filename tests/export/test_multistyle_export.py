"""ONNX export of a multi-style model: a ``style_weights`` input, ONNX Runtime = PyTorch for every style and for
mixes (per image too), fp16 / int8 gated over the styles, and ``auto`` picking ONNX Runtime for --style / --mix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import onnx
from onnx_helpers import make_photos, patched_trace, tiny_export
from PIL import Image

import fastnst
from fastnst.cli import main
from fastnst.export.onnx import DEFAULT_TOLERANCE, export_onnx, read_metadata, trace, verify_against_torch
from fastnst.model.files import load_model, record_file_digest, save_model
from fastnst.model.transformer import TransformerNet, TransformerSpec, bake, extend
from fastnst.runtime.onnx_backend import STYLE_WEIGHTS_NAME, OnnxBackend, make_session
from fastnst.runtime.select import load_backend
from fastnst.utils.errors import BackendError, ExportError, FastNSTError

STYLES = ["wave", "night"]
MIXES = [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.7, 0.3]]


def _two_style_network(seed: int = 3) -> TransformerNet:
    """Shared weights from one network, a second row of norm scale and shift far from the first; the last conv
    scaled so the output spans mid-grey ± a quarter (an untrained network's output is ~0, clamped flat)."""
    torch.manual_seed(seed)
    multi = extend(TransformerNet(TransformerSpec(width=8, residual_blocks=1)), 1)
    with torch.no_grad():
        last = multi.decoder[-1][1]
        last.weight.mul_(40.0)
        last.bias.fill_(127.5)
        for key in sorted(multi.style_keys()):  # a set: a fixed order keeps the draws seeded
            multi.state_dict()[key][1].normal_(1.0 if key.endswith("weight") else 0.0, 0.4)
    return multi


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``multi`` (2 styles) with its fp32 export, the traced graphs (traced once: ~10 s each) and photos."""
    root = tmp_path_factory.mktemp("multistyle_export")
    save_model(_two_style_network(), root / "multi", {
        "style_name": "+".join(STYLES), "styles": [{"name": name, "image": f"{name}.jpg"} for name in STYLES]})
    model, info = load_model(root / "multi")
    photos = make_photos(root / "photos")
    proto, shuffle = trace(model), trace(model, upsample="shuffle")
    with patched_trace(proto, shuffle):
        result = export_onnx(model, info, root / "multi" / "model.onnx", check_images=photos[:2])
    return {"folder": root / "multi", "model": model, "info": info, "proto": proto, "shuffle": shuffle,
            "photos": photos, "result": result}


def test_graph_has_a_style_weights_input_and_the_style_names(exported: dict) -> None:
    proto = onnx.load_model(str(exported["folder"] / "model.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    dims = {value.name: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
            for value in proto.graph.input}
    assert dims == {"image": ["batch", 3, "height", "width"], STYLE_WEIGHTS_NAME: ["batch", 2]}
    meta = read_metadata(exported["folder"] / "model.onnx")
    assert json.loads(meta["fastnst.styles"]) == STYLES
    assert json.loads(meta["fastnst.spec"])["styles"] == 2
    checks = json.loads(meta["fastnst.checks"])["verification"]
    assert checks["max_abs_error"] <= DEFAULT_TOLERANCE and checks["real_images"] == 2
    assert exported["result"].verification.max_abs_error <= DEFAULT_TOLERANCE


def test_single_style_graph_keeps_one_input() -> None:
    tiny = tiny_export()
    proto = onnx.load_model(str(tiny.folder / "model.onnx"))
    assert [value.name for value in proto.graph.input] == ["image"]
    assert "fastnst.styles" not in read_metadata(tiny.folder / "model.onnx")
    OnnxBackend(tiny.folder / "model.onnx", device="cpu", style_weights=[1.0])
    with pytest.raises(BackendError, match="holds one style; it takes no style weights"):
        OnnxBackend(tiny.folder / "model.onnx", device="cpu", style_weights=[0.5, 0.5])


@pytest.mark.parametrize("mix", MIXES)
def test_onnx_runtime_equals_pytorch_for_styles_and_mixes(exported: dict, mix: list[float]) -> None:
    backend = OnnxBackend(exported["folder"] / "model.onnx", device="cpu", style_weights=mix)
    batch = torch.rand(2, 3, 37, 45, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        expected = bake(exported["model"], mix)(batch).clamp(0, 1)
        other = bake(exported["model"], mix[::-1])(batch).clamp(0, 1)
    got = backend.stylize(batch)
    assert got.shape == batch.shape
    assert (got - expected).abs().max().item() <= DEFAULT_TOLERANCE
    if mix != mix[::-1]:  # the weights reach the graph: the other style gives other pixels
        assert (got - other).abs().max().item() > 100 * DEFAULT_TOLERANCE


def test_per_image_weights_in_one_batch(exported: dict) -> None:
    session = make_session(str(exported["folder"] / "model.onnx"))
    batch = torch.rand(2, 3, 32, 40, generator=torch.Generator().manual_seed(6))
    rows = torch.tensor([[0.0, 1.0], [0.7, 0.3]])
    got = session.run(None, {"image": batch.numpy(), STYLE_WEIGHTS_NAME: rows.numpy()})[0]
    with torch.inference_mode():
        expected = exported["model"](batch, rows).clamp(0, 1).numpy()
        each = [bake(exported["model"], row)(batch[i:i + 1]).clamp(0, 1).numpy() for i, row in enumerate(rows)]
    assert np.abs(got - expected).max() <= DEFAULT_TOLERANCE
    assert np.abs(got - np.concatenate(each)).max() <= DEFAULT_TOLERANCE


def test_verification_catches_swapped_styles(exported: dict) -> None:
    swapped = _two_style_network()
    with torch.no_grad():
        for key in swapped.style_keys():
            swapped.state_dict()[key].copy_(swapped.state_dict()[key].flip(0))
    with pytest.raises(ExportError, match="differs from PyTorch"):
        verify_against_torch(exported["proto"].SerializeToString(), swapped)


def test_fp16_and_int8_are_gated_over_the_styles(exported: dict, tmp_path: Path) -> None:
    model, info, photos = exported["model"], exported["info"], exported["photos"]
    with patched_trace(exported["proto"], exported["shuffle"]):
        fp16 = export_onnx(model, info, tmp_path / "model.fp16.onnx", precision="fp16",
                           evaluation_photos=photos[3:])
        int8 = export_onnx(model, info, tmp_path / "model.int8.onnx", precision="int8",
                           calibration_photos=photos[:3], evaluation_photos=photos[3:], min_psnr=20)
        with pytest.raises(ExportError, match=r"held-aside photos, below the 99 dB threshold"):
            export_onnx(model, info, tmp_path / "refused.onnx", precision="int8", calibration_photos=photos[:3],
                        evaluation_photos=photos[3:], min_psnr=99)
    assert not (tmp_path / "refused.onnx").exists()
    for result in (fp16, int8):
        assert result.quality.photos == 3 and result.quality.worst_photo.endswith(("(wave)", "(night)"))
        assert json.loads(read_metadata(result.path)["fastnst.styles"]) == STYLES
    assert fp16.quality.psnr_min > 40 and int8.quality.psnr_min > 20
    batch = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(7))
    for path, bound in ((fp16.path, 0.02), (int8.path, 0.2)):
        for mix in ([1.0, 0.0], [0.0, 1.0]):
            with torch.inference_mode():
                expected = bake(model, mix)(batch).clamp(0, 1)
            got = OnnxBackend(path, device="cpu", style_weights=mix).stylize(batch)
            assert (got - expected).abs().max().item() < bound


def test_auto_picks_onnx_runtime_for_a_mix_and_matches_torch(exported: dict, tmp_path: Path) -> None:
    folder = exported["folder"]
    image = np.asarray(Image.effect_noise((40, 28), 40).convert("RGB"))
    mix = {"wave": 0.5, "night": 0.5}
    on_onnx = fastnst.load(folder, device="cpu", mix=mix)
    on_torch = fastnst.load(folder, device="cpu", mix=mix, backend="torch")
    assert (on_onnx.backend, on_torch.backend) == ("onnxruntime", "torch")
    assert on_onnx.styles == STYLES
    a, b = (np.asarray(m.stylize(image), dtype=np.int16) for m in (on_onnx, on_torch))
    assert np.abs(a - b).max() <= 1  # 8-bit rounding of outputs within 1e-4 of each other
    assert np.abs(a - np.asarray(fastnst.load(folder, device="cpu", style="night").stylize(image))).max() > 8

    photo = tmp_path / "in" / "photo.png"
    photo.parent.mkdir()
    Image.effect_noise((44, 36), 50).convert("RGB").save(photo)
    outputs = {}
    for backend in ("auto", "torch"):
        target = tmp_path / f"{backend}.png"
        assert main(["-q", "stylize", str(photo), "-m", str(folder), "--mix", "wave=0.5,night=0.5",
                     "--backend", backend, "--device", "cpu", "-o", str(target)]) == 0
        outputs[backend] = np.asarray(Image.open(target), dtype=np.int16)
    assert np.abs(outputs["auto"] - outputs["torch"]).max() <= 1


def test_an_onnx_file_runs_a_style_or_mix(exported: dict) -> None:
    path = exported["folder"] / "model.onnx"
    batch = torch.rand(1, 3, 24, 30, generator=torch.Generator().manual_seed(8))
    runner, info = load_backend(path, device="cpu", mix={"wave": 3, "night": 1})
    assert runner.name == "onnxruntime" and info.styles == STYLES and info.spec.styles == 2
    with torch.inference_mode():
        expected = bake(exported["model"], [0.75, 0.25])(batch).clamp(0, 1)
    assert (runner.stylize(batch) - expected).abs().max().item() <= DEFAULT_TOLERANCE
    default, _ = load_backend(path, device="cpu")
    assert default.style_weights == [1.0, 0.0]  # the first style, as on the torch backend
    with pytest.raises(FastNSTError, match="no style 'sunset'; its styles: wave, night"):
        load_backend(path, device="cpu", style="sunset")
    with pytest.raises(BackendError, match="holds 2 styles"):
        OnnxBackend(path, device="cpu", style_weights=[1.0])


def test_onnxruntime_without_an_export_says_how_to_make_it(exported: dict, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    save_model(exported["model"], bare, dict(exported["info"].metadata))
    with pytest.raises(BackendError, match="has no model.onnx for fp32; make it with `fastnst export"):
        load_backend(bare, backend="onnxruntime", precision="fp32", device="cpu")


def test_an_export_older_than_the_styles_is_refused(exported: dict, tmp_path: Path) -> None:
    grown = tmp_path / "grown"
    names = [*STYLES, "sunset"]
    save_model(extend(exported["model"], 1), grown, {"style_name": "+".join(names),
                                                     "styles": [{"name": name} for name in names]})
    shutil.copy(exported["folder"] / "model.onnx", grown / "model.onnx")
    record_file_digest(grown / "model.onnx")
    with pytest.raises(BackendError, match="holds the styles wave, night but the model holds wave, night, sunset"):
        load_backend(grown, backend="onnxruntime", precision="fp32", device="cpu")
