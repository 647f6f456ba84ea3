"""The shipped model zoo: every model under models/ loads, has its card and sample, matches its ONNX export on a real
photo, and really stylizes (its style loss on a held-out photo is far below the untrained network's). A multi-style
model is checked per style (and its ONNX export on a mix of two styles).

Kept fast (seconds per model): one held-out sample photo at 128 px on the shorter side, one shared VGG.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, SHARED_DATA, VGG_DIR, requires_shared

from fastnst.model.files import load_model
from fastnst.model.mixing import model_styles
from fastnst.runtime.pipeline import stylize_tensor
from fastnst.training.config import load_config
from fastnst.training.lineage import lineage_of
from fastnst.training.quality import (
    LossMeter,
    config_of,
    load_eval_image,
    make_vgg,
    style_network,
    style_runs,
    untrained_network,
)

sys.path.insert(0, str(REPO / "scripts"))
from train_zoo import RECIPES, recipe_of

MODELS = sorted(p.parent for p in (REPO / "models").glob("*/model.safetensors"))
NAMES = [p.name for p in MODELS]
PHOTO = REPO / "samples" / "castle.jpg"  # held out from training (samples/CREDITS.md)
TEST_SHORT_SIDE = 128
# Measured on castle.jpg at 128 px: trained / untrained style loss 0.061–0.113 for the shipped models; a model that
# learned nothing scores about 1 (the untrained network is 1 by definition).
MAX_STYLE_RATIO = 0.3
# A row learned from a base starts from the mean of the other styles' rows, an already stylized network; the
# shipped zoo's relearned rows score 0.2–0.6 of that start on the held-out photos (docs/quality.md), one that
# learned nothing about 1.
MAX_STYLE_RATIO_FROM_BASE = 0.75
ONNX_TOLERANCE = 1e-4  # fastnst.export.onnx.DEFAULT_TOLERANCE: 1/40 of an 8-bit step on [0, 1] outputs


def is_multistyle(meta: dict) -> bool:
    return bool(meta.get("styles"))


def config_file(name: str, meta: dict):
    """The committed config a shipped model was trained from."""
    return REPO / "configs" / ("multistyle" if is_multistyle(meta) else "styles") / f"{name}.toml"


def test_zoo_ships_at_least_six_styles() -> None:
    assert len(MODELS) >= 6, f"models/ holds {len(MODELS)} models"


def test_zoo_stays_lean() -> None:
    """Weights only (a few MB each); no training checkpoints or logs in models/."""
    for folder in MODELS:
        assert (folder / "model.safetensors").stat().st_size < 10_000_000
    stray = [p for p in (REPO / "models").rglob("*") if p.suffix in {".pt", ".pth", ".ckpt", ".log"}
             or "tfevents" in p.name]
    assert not stray, f"checkpoints or logs in models/: {stray}"


@pytest.mark.parametrize("name", NAMES)
def test_model_loads_with_config_card_and_sample(name: str) -> None:
    folder = REPO / "models" / name
    model, info = load_model(folder)
    assert 1_500_000 < sum(p.numel() for p in model.parameters()) < 2_000_000
    meta = info.metadata
    styles = [entry["name"] for entry in meta["styles"]] if is_multistyle(meta) else [name]
    assert meta["style_name"] == "+".join(styles) and meta["steps"] > 0 and meta["final_losses"]["style"] > 0
    config = load_config(config_file(name, meta))
    assert [style for style, _ in config.paintings] == styles
    runs = lineage_of(meta)  # one run, or the run that trained the shared weights and later --base runs
    for run in runs:
        for key in ("vgg", "content_layer", "style_layers", "style_layer_weights", "content_weight", "style_weight",
                    "tv_weight", "style_size"):  # the style's config reproduces the shipped model's loss
            value = getattr(config, key)
            assert (list(value) if isinstance(value, tuple) else value) == run["config"][key], f"{name}: {key}"
    recipe = recipe_of(runs[0]["config"])
    assert recipe in RECIPES, f"{name} was trained with no named recipe"

    card = (folder / "README.md").read_text(encoding="utf-8")
    needed = ["## Training", f"`{recipe}`", *(f"{run['steps']} × batch" for run in runs), "hardware", "## Losses",
              "Final training batch", "Held-out photos", "sample.jpg", "## Video", "fastnst stylize in.mp4"]
    if is_multistyle(meta):
        needed += ["## Style images", "public domain", "mix.jpg", "--mix", *(f"| `{style}` |" for style in styles)]
    else:
        needed += ["## Style image", "painting licence", "digitisation", "## Artifact checks"]
    if run["config"].get("stability_weight"):
        needed += ["| stability loss | weight"]
    for text in needed:
        assert text in card, f"{name}'s card lacks {text!r}"
    assert str(meta["hardware"]).split(" ×")[0] in card
    from PIL import Image

    for image, tiles in [("sample.jpg", len(styles))] + [("mix.jpg", 5)] * is_multistyle(meta):
        with Image.open(folder / image) as sample:  # one 512-px sample, or a strip of half-size ones
            assert max(sample.size) <= max(640, 260 * tiles) and min(sample.size) <= 640
        assert (folder / image).stat().st_size < 100_000 * (1 + tiles), image


@pytest.mark.parametrize("name", NAMES)
def test_onnx_export_matches_pytorch_on_a_real_photo(name: str) -> None:
    onnx_path = REPO / "models" / name / "model.onnx"
    if not onnx_path.is_file():
        pytest.skip(f"{onnx_path} not exported yet (fastnst export -m {name})")
    ort = pytest.importorskip("onnxruntime")
    model, _ = load_model(REPO / "models" / name)
    photo = load_eval_image(PHOTO, TEST_SHORT_SIDE)
    inputs = {"image": photo}
    if model.spec.styles > 1:  # a mix of the first two styles through the style_weights input
        inputs["style_weights"] = torch.zeros(1, model.spec.styles)
        inputs["style_weights"][0, :2] = torch.tensor([0.7, 0.3])
    with torch.inference_mode():
        expected = model(*inputs.values()).clamp(0, 1).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(inputs)
    got = session.run(None, {key: value.numpy() for key, value in inputs.items()})[0]
    assert got.shape == expected.shape
    assert float(abs(got - expected).max()) <= ONNX_TOLERANCE


@pytest.fixture(scope="module")
def vgg():  # one frozen VGG16 for every model (module scope: building it per test would double the run time)
    configs = [config_of(json.loads((folder / "model.json").read_text())) for folder in MODELS]
    return make_vgg(configs, VGG_DIR / "vgg16_features.pth")


@requires_shared
@pytest.mark.parametrize("name", NAMES)
def test_model_stylizes_far_below_untrained_style_loss(name: str, vgg) -> None:
    """The trainer's own style loss on a held-out photo: trained ≪ untrained (the same network at step 0), for every
    style of the model."""
    model, info = load_model(REPO / "models" / name)
    photo = load_eval_image(PHOTO, TEST_SHORT_SIDE)
    styles, skipped = style_runs(info.metadata, model_styles(info.metadata, name))
    assert styles and not skipped, f"{name}: styles without a measurable run: {skipped}"
    for style in styles:  # each with the recipe, style weight and step 0 of the run that learned it
        # model.json records the training machine's path; the painting is the same file under this checkout's data.
        meter = LossMeter(style.own, vgg, image=str(SHARED_DATA / "styles" / Path(style.painting).name))
        features = meter.features(photo)
        trained = meter(stylize_tensor(style_network(model, style.row), photo), features)
        start = untrained_network(style.config, model, style.learned_with)
        untrained = meter(stylize_tensor(style_network(start, style.row), photo), features)
        ratio = trained["style"] / untrained["style"]
        limit = MAX_STYLE_RATIO_FROM_BASE if style.config.base else MAX_STYLE_RATIO
        assert ratio < limit, (f"{name} ({style.name}): style loss {trained['style']:.3g} vs untrained "
                                         f"{untrained['style']:.3g}")
        assert torch.isfinite(torch.tensor(list(trained.values()))).all()
