"""A tiny model folder with its ONNX exports, made once per test process (tracing costs ~10 s each).

Shared by test_export.py and test_backends.py through a process-level cache rather than a fixture, so both test
modules reuse the same exports.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from fastnst.model.files import ModelInfo, load_model, save_model
from fastnst.model.transformer import TransformerNet, TransformerSpec

REPO = Path(__file__).resolve().parents[1]
SAMPLES = sorted((REPO / "samples").glob("*.jpg"))


@dataclass(frozen=True)
class TinyExport:
    folder: Path  # model.safetensors, model.json, model.onnx
    model: TransformerNet
    info: ModelInfo
    proto: Any  # fp32 graph, transposed upsampling (what model.onnx holds, before metadata)
    shuffle_proto: Any  # fp32 graph, pixel-shuffle upsampling (int8's starting point)
    photos: list[Path]  # synthetic textured photos


def make_photos(folder: Path, count: int = 6) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(1)
    paths = []
    for index in range(count):
        h, w = 48 + 8 * index, 64 + 4 * index
        base = torch.rand(3, 1, 1, generator=gen)
        ramp = torch.linspace(0, 1, w).expand(3, h, w) * torch.rand(3, 1, 1, generator=gen)
        noise = torch.rand(3, h, w, generator=gen) * 0.3
        array = ((base * 0.4 + ramp * 0.3 + noise).clamp(0, 1) * 255).byte().permute(1, 2, 0).numpy()
        path = folder / f"photo{index}.jpg"
        Image.fromarray(array).save(path, quality=92)
        paths.append(path)
    return paths


@functools.lru_cache(maxsize=1)
def tiny_export() -> TinyExport:
    from fastnst.export.onnx import export_onnx, trace

    root = Path(tempfile.mkdtemp(prefix="fastnst-onnx-tests-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    torch.manual_seed(0)
    net = TransformerNet(TransformerSpec(width=8, residual_blocks=1))
    with torch.no_grad():  # non-trivial norm affines, so a wrong norm mapping cannot pass unnoticed
        for module in net.modules():
            if isinstance(module, torch.nn.InstanceNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    folder = root / "tiny"
    save_model(net, folder, {"style_name": "tiny", "config": {"holdout_every": 3, "steps": 1}})
    model, info = load_model(folder)
    photos = make_photos(root / "photos")
    proto = trace(model)
    shuffle = trace(model, upsample="shuffle")
    with patched_trace(proto, shuffle):
        export_onnx(model, info, folder / "model.onnx", check_images=photos[:2])
    return TinyExport(folder=folder, model=model, info=info, proto=proto, shuffle_proto=shuffle, photos=photos)


def patched_trace(proto: Any, shuffle: Any) -> Any:
    """A context in which fastnst.export.onnx.trace returns copies of already traced graphs (no 10 s re-trace)."""
    from unittest import mock

    def fake(model: TransformerNet, *, opset: int = 18, upsample: str = "transposed") -> Any:
        return copy_proto(shuffle if upsample == "shuffle" else proto)

    return mock.patch("fastnst.export.onnx.trace", fake)


def copy_proto(proto: Any) -> Any:
    import onnx

    fresh = onnx.ModelProto()
    fresh.CopyFrom(proto)
    return fresh
