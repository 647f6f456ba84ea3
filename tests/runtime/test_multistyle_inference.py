"""A multi-style model through the product: the CLI's --style / --mix and the API's style / mix give the pixels of
the equivalent single-style model (its norm rows baked in), with tiles and the margin; bad names are one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_clear_line
from multistyle_zoo import STYLES, build_zoo
from PIL import Image

import fastnst
from fastnst.cli import main


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_zoo(tmp_path_factory.mktemp("multistyle"))


def _cli_png(zoo: Path, photo: Path, out: Path, model: str, *extra: str) -> bytes:
    target = out / f"{model}-{'-'.join(extra) or 'default'}.png".replace("=", "_").replace(",", "_")
    assert main(["-q", "stylize", str(photo), "-m", str(zoo / model), "-o", str(target), "--device", "cpu",
                 *extra]) == 0
    return target.read_bytes()


def test_cli_style_and_mix_equal_the_single_style_models(zoo: Path, photo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    large = tmp_path / "in" / "large.png"
    Image.effect_noise((90, 70), 50).convert("RGB").save(large)
    assert _cli_png(zoo, photo, out, "multi", "--style", "night") == _cli_png(zoo, photo, out, "night")
    assert _cli_png(zoo, photo, out, "multi") == _cli_png(zoo, photo, out, "wave")  # the first style by default
    assert _cli_png(zoo, photo, out, "multi", "--mix", "wave=1,night=0") == _cli_png(zoo, photo, out, "wave")
    assert _cli_png(zoo, photo, out, "multi", "--mix", "wave=7,night=3") == _cli_png(zoo, photo, out, "mix73")
    forced_tiles = ("--tile", "32", "--margin", "8", "--preserve-color", "luminance")
    assert _cli_png(zoo, large, out, "multi", "--style", "night", *forced_tiles) == \
        _cli_png(zoo, large, out, "night", *forced_tiles)


def test_api_style_and_mix(zoo: Path) -> None:
    image = np.asarray(Image.effect_noise((40, 28), 40).convert("RGB"))
    multi = fastnst.load(zoo / "multi", device="cpu")
    assert multi.styles == STYLES and multi.backend == "torch"
    night = np.asarray(fastnst.load(zoo / "night", device="cpu").stylize(image))
    assert np.array_equal(np.asarray(multi.stylize(image, style="night")), night)
    assert np.array_equal(np.asarray(fastnst.load(zoo / "multi", style="night", device="cpu").stylize(image)), night)
    mixed = np.asarray(multi.stylize(image, mix={"wave": 0.7, "night": 0.3}))
    assert np.array_equal(mixed, np.asarray(fastnst.load(zoo / "mix73", device="cpu").stylize(image)))
    assert multi.with_style(mix={"wave": 7, "night": 3}) is multi.with_style(mix={"wave": 0.7, "night": 0.3})


def test_wrong_styles_are_one_clear_line(zoo: Path, photo: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (("-m", str(zoo / "multi"), "--style", "sunset"), ("no style 'sunset'", "wave, night")),
        (("-m", str(zoo / "multi"), "--mix", "wave=0.5,sun=0.5"), ("no style 'sun'",)),
        (("-m", str(zoo / "multi"), "--mix", "wave"), ("NAME=WEIGHT",)),
        (("-m", str(zoo / "multi"), "--mix", "wave=0,night=0"), ("positive weight",)),
        (("-m", str(zoo / "multi"), "--style", "wave", "--mix", "wave=1"), ("not both",)),
        (("-m", str(zoo / "wave"), "--style", "night"), ("no style 'night'", "its styles: wave")),
        (("-m", str(zoo / "multi"), "--backend", "onnxruntime"), ("no model.onnx", "fastnst export")),
    ]
    for args, words in cases:
        code = main(["stylize", str(photo), "-o", str(tmp_path / "x.png"), "--device", "cpu", *args])
        assert_one_clear_line(code, capsys.readouterr().err, *words)
    assert not (tmp_path / "x.png").exists()


def test_export_makes_a_multi_style_model_run_on_onnxruntime(zoo: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    folder = tmp_path / "multi"
    shutil.copytree(zoo / "multi", folder)  # the zoo's own folder stays without an export for the other tests
    assert main(["export", "-m", str(folder), "--precision", "fp32"]) == 0
    assert "max |ONNX Runtime − PyTorch|" in capsys.readouterr().out
    assert (folder / "model.onnx").is_file()
    image = np.asarray(Image.effect_noise((40, 28), 40).convert("RGB"))
    for choice in ({"style": "night"}, {"mix": {"wave": 0.7, "night": 0.3}}):
        on_onnx = fastnst.load(folder, device="cpu", **choice)
        single = fastnst.load(zoo / ("night" if "style" in choice else "mix73"), device="cpu", backend="torch")
        assert on_onnx.backend == "onnxruntime"
        got = np.asarray(on_onnx.stylize(image), dtype=np.int16)
        assert np.abs(got - np.asarray(single.stylize(image), dtype=np.int16)).max() <= 1
