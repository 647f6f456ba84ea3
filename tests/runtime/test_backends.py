"""Runtime backends: PyTorch and ONNX Runtime behind one interface, selection, bad inputs, the stylize CLI."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from PIL import Image

from fastnst.cli import main
from fastnst.model.transformer import TransformerNet, TransformerSpec
from fastnst.runtime.base import Backend
from fastnst.runtime.fused import FusedTransformer
from fastnst.runtime.torch_backend import TorchBackend
from fastnst.utils.errors import BackendError, FastNSTError

SHAPES = [(1, 3, 64, 64), (2, 3, 37, 51), (1, 3, 9, 5), (1, 3, 1, 1)]


def _tiny() -> TransformerNet:
    torch.manual_seed(0)
    net = TransformerNet(TransformerSpec(width=8, residual_blocks=1))
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.InstanceNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return net.eval()


@pytest.mark.parametrize("upsample", ["transposed", "shuffle"])
def test_fused_network_equals_transformer_net(upsample: str) -> None:
    net = _tiny()
    fused = FusedTransformer(net, upsample=upsample)
    batch = torch.rand(2, 3, 45, 70, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert (fused(batch) - net(batch).clamp(0, 1)).abs().max().item() < 1e-5
    # the norm layers are the model's own, in order (statistics hooks on the model reach the fused network)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert [m for m in fused.modules() if isinstance(m, torch.nn.InstanceNorm2d)] == norms


@pytest.mark.parametrize("shape", SHAPES)
def test_torch_backend_fp32_matches_the_network_at_any_size(shape: tuple[int, ...]) -> None:
    net = _tiny()
    backend = TorchBackend(net, device="cpu", precision="fp32")
    assert isinstance(backend, Backend) and (backend.name, backend.device, backend.precision) == ("torch", "cpu",
                                                                                                  "fp32")
    batch = torch.rand(*shape, generator=torch.Generator().manual_seed(2))
    out = backend.stylize(batch)
    with torch.inference_mode():
        expected = net(batch).clamp(0, 1)
    assert out.shape == batch.shape and out.dtype == torch.float32 and out.device.type == "cpu"
    assert (out - expected).abs().max().item() < 1e-5


def test_torch_backend_bf16_and_channels_last_run() -> None:
    net = _tiny()
    batch = torch.rand(1, 3, 40, 36, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        expected = net(batch).clamp(0, 1)
    cl = TorchBackend(net, device="cpu", precision="fp32", channels_last=True).stylize(batch)
    assert (cl - expected).abs().max().item() < 1e-5
    out = TorchBackend(net, device="cpu", precision="bf16").stylize(batch)
    assert out.shape == batch.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1 and (out - expected).abs().mean().item() < 0.05


@pytest.mark.parametrize(("precision", "message"), [
    ("fp16", "fp16 needs a CUDA device"), ("int8", "int8 runs on the onnxruntime backend"),
    ("fp64", "unknown precision 'fp64'")])
def test_torch_backend_refuses_what_it_cannot_run(precision: str, message: str) -> None:
    with pytest.raises(BackendError, match=message):
        TorchBackend(_tiny(), device="cpu", precision=precision)


@pytest.mark.parametrize(("batch", "message"), [
    (torch.rand(3, 20, 20), r"shape \[N, 3, H, W\], got shape \[3, 20, 20\]"),
    (torch.rand(1, 4, 20, 20), r"got shape \[1, 4, 20, 20\]"),
    (torch.zeros(1, 3, 20, 20, dtype=torch.uint8), "expected float values"),
    (torch.rand(0, 3, 20, 20), "empty")])
def test_bad_batches_are_refused_in_one_line(batch: torch.Tensor, message: str) -> None:
    with pytest.raises(BackendError, match=message) as caught:
        TorchBackend(_tiny(), device="cpu").stylize(batch)
    assert "\n" not in str(caught.value)


# ------------------------------------------------------------------------------------------------ ONNX Runtime

onnx_available = pytest.mark.skipif(
    not all(__import__("importlib").util.find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript")),
    reason="onnx, onnxruntime and onnxscript are needed")


@onnx_available
def test_onnx_backend_names_the_provider_it_uses(caplog: pytest.LogCaptureFixture) -> None:
    from onnx_helpers import tiny_export

    from fastnst.runtime.onnx_backend import OnnxBackend

    tiny = tiny_export()
    with caplog.at_level(logging.INFO, logger="fastnst"):
        backend = OnnxBackend(tiny.folder / "model.onnx")  # device auto
    assert isinstance(backend, Backend) and backend.name == "onnxruntime" and backend.precision == "fp32"
    expected = "CUDA" if torch.cuda.is_available() else "CPUExecutionProvider"
    assert expected in backend.device
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("fastnst")]
    assert len(lines) == 1 and backend.device in lines[0]


@onnx_available
def test_onnx_backend_refuses_files_that_are_not_fastnst_models(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    from fastnst.runtime.onnx_backend import OnnxBackend

    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf at all" * 10)
    with pytest.raises(BackendError, match="is not a readable ONNX model") as caught:
        OnnxBackend(junk, device="cpu")
    assert "\n" not in str(caught.value)

    def identity_model(path: Path, shape: list[object], meta: bool) -> Path:
        value = helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)
        out = helper.make_tensor_value_info("stylized", TensorProto.FLOAT, shape)
        graph = helper.make_graph([helper.make_node("Identity", ["image"], ["stylized"])], "g", [value], [out])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        model.ir_version = 8
        if meta:
            helper.set_model_props(model, {"fastnst.format": "fastnst-transformer-onnx"})
        onnx.save_model(model, str(path))
        return path

    foreign = identity_model(tmp_path / "foreign.onnx", ["n", 3, "h", "w"], meta=False)
    with pytest.raises(BackendError, match="not a fastnst style network"):
        OnnxBackend(foreign, device="cpu")
    rank3 = identity_model(tmp_path / "rank3.onnx", [3, "h", "w"], meta=True)
    with pytest.raises(BackendError, match=r"shape \[3, 'h', 'w'\]; a fastnst model takes .*\[N, 3, H, W\]"):
        OnnxBackend(rank3, device="cpu")
    gray = identity_model(tmp_path / "gray.onnx", ["n", 1, "h", "w"], meta=True)
    with pytest.raises(BackendError, match="a fastnst model takes"):
        OnnxBackend(gray, device="cpu")
    with pytest.raises(BackendError, match="does not exist"):
        OnnxBackend(tmp_path / "missing.onnx", device="cpu")


@onnx_available
def test_onnx_backend_refuses_bad_batches_and_impossible_precisions() -> None:
    from onnx_helpers import tiny_export

    from fastnst.runtime.onnx_backend import OnnxBackend

    tiny = tiny_export()
    backend = OnnxBackend(tiny.folder / "model.onnx", device="cpu")
    with pytest.raises(BackendError, match="got shape"):
        backend.stylize(torch.rand(1, 1, 32, 32))
    with pytest.raises(BackendError, match="is a fp32 model; it cannot run as int8"):
        OnnxBackend(tiny.folder / "model.onnx", device="cpu", precision="int8")
    with pytest.raises(BackendError, match="bf16 needs the torch backend"):
        OnnxBackend(tiny.folder / "model.onnx", device="cpu", precision="bf16")


@onnx_available
def test_selection_auto_explicit_and_errors(tmp_path: Path) -> None:
    import shutil

    from onnx_helpers import tiny_export

    from fastnst.runtime.select import load_backend

    tiny = tiny_export()
    backend, info = load_backend(tiny.folder, device="cpu")  # has model.onnx → ONNX Runtime
    assert backend.name == "onnxruntime" and info.name == "tiny" and info.spec.width == 8
    backend, _ = load_backend(tiny.folder, backend="torch", device="cpu")
    assert backend.name == "torch"
    backend, _ = load_backend(tiny.folder, precision="bf16", device="cpu")  # only torch runs bf16
    assert (backend.name, backend.precision) == ("torch", "bf16")
    backend, info = load_backend(tiny.folder / "model.onnx", device="cpu")  # a bare .onnx file
    assert backend.name == "onnxruntime" and info.name == "tiny" and info.metadata["config"]["holdout_every"] == 3
    with pytest.raises(BackendError, match=r"int8 needs .*model.int8.onnx.*fastnst export"):
        load_backend(tiny.folder, precision="int8", device="cpu")
    with pytest.raises(BackendError, match="the torch backend needs the model's .safetensors"):
        load_backend(tiny.folder / "model.onnx", backend="torch", device="cpu")
    bare = tmp_path / "bare"
    shutil.copytree(tiny.folder, bare, ignore=shutil.ignore_patterns("*.onnx"))
    backend, _ = load_backend(bare, device="cpu")  # no export → PyTorch
    assert backend.name == "torch"
    with pytest.raises(BackendError, match=r"has no model.onnx for fp32; make it with `fastnst export"):
        load_backend(bare, backend="onnxruntime", device="cpu")
    with pytest.raises(BackendError, match="unknown backend 'tensorflow'; choose one of auto, torch, onnxruntime"):
        load_backend(bare, backend="tensorflow")
    with pytest.raises(BackendError, match="bf16 runs on the torch backend only"):
        load_backend(tiny.folder, backend="onnxruntime", precision="bf16", device="cpu")


@onnx_available
def test_auto_on_a_gpu_keeps_the_gpu_when_onnxruntime_cannot_use_it(monkeypatch: pytest.MonkeyPatch,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """A CPU-only ONNX Runtime on a GPU machine must not pull inference onto the CPU: auto runs PyTorch on the GPU.

    The GPU is faked (the device policy answers cuda, the torch backend is recorded instead of built); the ONNX
    Runtime here really fails on the GPU (none is present), as a CPU-only build or one without its CUDA libraries
    does on a GPU machine."""
    from onnx_helpers import tiny_export

    import fastnst.runtime.torch_backend as torch_backend_module
    import fastnst.utils.device as device_module
    from fastnst.runtime import select

    if torch.cuda.is_available():
        pytest.skip("a real GPU is here: ONNX Runtime may really run on it, and the test fakes one it cannot use")
    built: list[dict] = []

    class RecordedTorchBackend:
        name = "torch"

        def __init__(self, net: TransformerNet, **kwargs: object) -> None:
            built.append(kwargs)

    monkeypatch.setattr(device_module, "resolve_device", lambda name, index=None: torch.device("cuda", 0))
    monkeypatch.setattr(torch_backend_module, "TorchBackend", RecordedTorchBackend)
    monkeypatch.setattr(select, "load_styled_model",
                        lambda weights, device, style, mix: select.load_model(weights, device="cpu"))
    tiny = tiny_export()
    with caplog.at_level(logging.INFO, logger="fastnst.runtime.select"):
        backend, info = select.load_backend(tiny.folder, device="auto")
    assert backend.name == "torch" and info.name == "tiny"
    assert built == [{"device": "cuda:0", "precision": "fp16", "compile": False}]
    assert "onnxruntime cannot run on the GPU here" in caplog.text
    with pytest.raises(BackendError, match="no ONNX Runtime provider could run"):  # asked for explicitly: refused
        select.load_backend(tiny.folder, backend="onnxruntime", device="cuda")


@onnx_available
def test_an_int8_onnx_file_runs_in_its_own_precision(tmp_path: Path) -> None:
    from onnx_helpers import patched_trace, tiny_export

    from fastnst.export.onnx import export_onnx
    from fastnst.runtime.select import load_backend

    tiny = tiny_export()
    target = tmp_path / "model.int8.onnx"
    with patched_trace(tiny.proto, tiny.shuffle_proto):
        export_onnx(tiny.model, tiny.info, target, precision="int8", calibration_photos=tiny.photos[:3],
                    evaluation_photos=tiny.photos[3:], min_psnr=0)
    backend, _ = load_backend(target, device="cpu")  # precision auto: the file's
    assert (backend.name, backend.precision) == ("onnxruntime", "int8")
    assert backend.stylize(torch.rand(1, 3, 30, 41)).shape == (1, 3, 30, 41)


@onnx_available
@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_stylize_cli_backends_keep_the_size(tmp_path: Path, backend: str) -> None:
    from onnx_helpers import tiny_export

    tiny = tiny_export()
    source = tmp_path / "odd.png"
    Image.new("RGB", (45, 37), (200, 120, 40)).save(source)
    target = tmp_path / "out.png"
    assert main(["-q", "stylize", str(source), "-m", str(tiny.folder), "-o", str(target), "--backend", backend,
                 "--precision", "fp32", "--device", "cpu"]) == 0
    assert Image.open(target).size == (45, 37)


@onnx_available
def test_stylize_cli_bad_onnx_model_is_one_line_and_writes_nothing(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.png"
    Image.new("RGB", (32, 32)).save(source)
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"\x08\x01garbage")
    code = main(["stylize", str(source), "-m", str(fake), "-o", str(tmp_path / "out.png")])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("fastnst: error:") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.onnx", "in.png"]


@onnx_available
def test_bench_writes_results_with_reference_and_ratios(tmp_path: Path) -> None:
    from onnx_helpers import tiny_export

    from fastnst.bench.runner import SIZES, format_table, run_benchmark
    from fastnst.commands.bench import SIZE_NAMES

    assert tuple(SIZES) == SIZE_NAMES
    tiny = tiny_export()
    report = run_benchmark(model=str(tiny.folder), precisions=["fp32"], sizes=["256"], device="cpu", warmup=1,
                           repeats=1)
    rows = {(r["backend"], r["precision"]): r for r in report["results"]}
    assert set(rows) == {("reference", "fp32"), ("torch", "fp32"), ("onnxruntime", "fp32")}
    assert rows[("reference", "fp32")]["speedup_vs_reference"] == 1.0
    assert rows[("onnxruntime", "fp32")]["psnr_db_vs_reference"] > 60
    assert report["machine"]["cpu"] and report["machine"]["versions"]["torch"]
    assert "| 256 | onnxruntime |" in format_table(report)
    json.dumps(report)  # serialisable


def test_backend_errors_are_fastnst_errors() -> None:
    assert issubclass(BackendError, FastNSTError)


@onnx_available
def test_bench_cli_quick_and_cpu_clock(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from onnx_helpers import tiny_export

    tiny = tiny_export()
    out = tmp_path / "bench.json"
    assert main(["bench", "-m", str(tiny.folder), "--quick", "--threads", "1", "--clock", "cpu", "-o", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["settings"]["clock"] == "cpu" and report["settings"]["repeats"] == 3
    assert {r["size"] for r in report["results"]} == {"512"}
    assert any("model.int8.onnx" in s["reason"] for s in report["skipped"])  # the tiny model has no int8 export
    assert "| 512 | onnxruntime |" in capsys.readouterr().out
    assert main(["bench", "-m", str(tiny.folder), "--clock", "cpu", "-o", str(out)]) == 1
    assert "needs --threads 1" in capsys.readouterr().err


@pytest.fixture()
def compile_without_a_c_compiler(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """torch.compile through the aot_eager backend (no C/C++ toolchain needed); records what fastnst asked for."""
    calls: list[dict] = []
    real = torch.compile

    def recording_compile(model, **kwargs):
        calls.append(kwargs)
        return real(model, backend="aot_eager", dynamic=kwargs.get("dynamic"))

    monkeypatch.setattr(torch, "compile", recording_compile)
    return calls


def test_torch_backend_compile_gives_the_eager_result(compile_without_a_c_compiler: list[dict]) -> None:
    net = _tiny()
    batch = torch.rand(1, 3, 40, 52, generator=torch.Generator().manual_seed(4))
    eager = TorchBackend(net, device="cpu", precision="fp32").stylize(batch)
    compiled = TorchBackend(net, device="cpu", precision="fp32", compile=True)
    assert compiled.compiled and compile_without_a_c_compiler == [{"dynamic": False, "options": {"freezing": True}}]
    assert (compiled.stylize(batch) - eager).abs().max().item() < 1e-5


def test_compile_keeps_its_cache_in_fastnsts_folder_unless_one_is_chosen(
        compile_without_a_c_compiler: list[dict], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    from fastnst.utils.cache import COMPILE_CACHE_ENV, default_cache_dir

    monkeypatch.delenv(COMPILE_CACHE_ENV, raising=False)
    TorchBackend(_tiny(), device="cpu", precision="fp32", compile=True)
    assert os.environ[COMPILE_CACHE_ENV] == str(default_cache_dir() / "torch-compile")
    monkeypatch.setenv(COMPILE_CACHE_ENV, str(tmp_path / "mine"))
    TorchBackend(_tiny(), device="cpu", precision="fp32", compile=True)
    assert os.environ[COMPILE_CACHE_ENV] == str(tmp_path / "mine")


def test_compile_selects_the_torch_backend_and_refuses_onnx(compile_without_a_c_compiler: list[dict]) -> None:
    from onnx_helpers import tiny_export

    from fastnst.runtime.select import load_backend

    tiny = tiny_export()
    backend, _ = load_backend(tiny.folder, device="cpu", compile=True)  # auto would pick ONNX Runtime
    assert backend.name == "torch" and backend.compiled
    with pytest.raises(BackendError, match="torch.compile is for the torch backend"):
        load_backend(tiny.folder, backend="onnxruntime", device="cpu", compile=True)
    with pytest.raises(BackendError, match="torch.compile is for the torch backend"):
        load_backend(tiny.folder / "model.onnx", device="cpu", compile=True)
    with pytest.raises(BackendError, match="int8 runs on the onnxruntime backend only"):
        load_backend(tiny.folder, precision="int8", device="cpu", compile=True)


@onnx_available
def test_bench_compile_adds_compiled_torch_cases(tmp_path: Path, compile_without_a_c_compiler: list[dict]) -> None:
    from onnx_helpers import tiny_export

    from fastnst.bench.runner import run_benchmark

    report = run_benchmark(model=str(tiny_export().folder), backends=["torch"], precisions=["fp32"], sizes=["256"],
                           device="cpu", warmup=1, repeats=1, compile=True)
    rows = {(r["backend"], r["precision"]): r for r in report["results"]}
    assert set(rows) == {("reference", "fp32"), ("torch", "fp32"), ("torch+compile", "fp32")}
    assert rows[("torch+compile", "fp32")]["psnr_db_vs_reference"] > 60


@onnx_available
def test_stylize_cli_compile(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                             compile_without_a_c_compiler: list[dict]) -> None:
    from onnx_helpers import tiny_export

    tiny = tiny_export()
    source = tmp_path / "in.png"
    Image.new("RGB", (45, 37), (90, 160, 30)).save(source)
    assert main(["-q", "stylize", str(source), "-m", str(tiny.folder), "-o", str(tmp_path / "out.png"),
                 "--compile", "--device", "cpu"]) == 0
    assert Image.open(tmp_path / "out.png").size == (45, 37) and len(compile_without_a_c_compiler) == 1
    code = main(["stylize", str(source), "-m", str(tiny.folder), "-o", str(tmp_path / "no.png"), "--compile",
                 "--backend", "onnxruntime", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1 and "torch.compile is for the torch backend" in err and err.count("\n") == 1
    assert not (tmp_path / "no.png").exists()
