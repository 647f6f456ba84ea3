"""The shipped model zoo: every model under models/ loads, has its card and sample, matches its ONNX export on a real
photo, and really stylizes (its style loss on a held-out photo is far below the untrained network's).

Kept fast (seconds per model): one held-out sample photo at 128 px on the shorter side, one shared VGG.
"""

from __future__ import annotations

import json
import sys

import pytest
import torch
from conftest import REPO, SHARED_DATA, VGG_DIR, requires_shared

from fastnst.model.files import load_model
from fastnst.runtime.pipeline import stylize_tensor
from fastnst.training.config import load_config
from fastnst.training.quality import LossMeter, config_of, load_eval_image, make_vgg, untrained_network

sys.path.insert(0, str(REPO / "scripts"))
from train_zoo import RECIPES, recipe_of

MODELS = sorted(p.parent for p in (REPO / "models").glob("*/model.safetensors"))
NAMES = [p.name for p in MODELS]
PHOTO = REPO / "samples" / "castle.jpg"  # held out from training (samples/CREDITS.md)
TEST_SHORT_SIDE = 128
# Measured on castle.jpg at 128 px: trained / untrained style loss 0.061–0.113 for the shipped models; a model that
# learned nothing scores about 1 (the untrained network is 1 by definition).
MAX_STYLE_RATIO = 0.3
ONNX_TOLERANCE = 1e-4  # fastnst.export.onnx.DEFAULT_TOLERANCE: 1/40 of an 8-bit step on [0, 1] outputs


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
    assert meta["style_name"] == name and meta["steps"] > 0 and meta["final_losses"]["style"] > 0
    config = load_config(REPO / "configs" / "styles" / f"{name}.toml")
    for key in ("vgg", "content_layer", "style_layers", "style_layer_weights", "content_weight", "style_weight",
                "tv_weight", "style_size"):  # the style's config reproduces the shipped model's loss
        value = getattr(config, key)
        assert (list(value) if isinstance(value, tuple) else value) == meta["config"][key], f"{name}: {key}"
    recipe = recipe_of(meta["config"])
    assert recipe in RECIPES, f"{name} was trained with no named recipe"

    card = (folder / "README.md").read_text(encoding="utf-8")
    for needed in ("## Style image", "painting licence", "digitisation", "## Training", f"`{recipe}`",
                   f"{meta['steps']} × batch", "hardware", "## Losses", "Final training batch", "Held-out photos",
                   "## Artifact checks", "sample.jpg"):
        assert needed in card, f"{name}'s card lacks {needed!r}"
    assert str(meta["hardware"]).split(" ×")[0] in card
    from PIL import Image

    with Image.open(folder / "sample.jpg") as sample:
        assert max(sample.size) <= 640 and (folder / "sample.jpg").stat().st_size < 200_000


@pytest.mark.parametrize("name", NAMES)
def test_onnx_export_matches_pytorch_on_a_real_photo(name: str) -> None:
    onnx_path = REPO / "models" / name / "model.onnx"
    if not onnx_path.is_file():
        pytest.skip(f"{onnx_path} not exported yet (fastnst export -m {name})")
    ort = pytest.importorskip("onnxruntime")
    model, _ = load_model(REPO / "models" / name)
    photo = load_eval_image(PHOTO, TEST_SHORT_SIDE)
    with torch.inference_mode():
        expected = model(photo).clamp(0, 1).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: photo.numpy()})[0]
    assert got.shape == expected.shape
    assert float(abs(got - expected).max()) <= ONNX_TOLERANCE


@pytest.fixture(scope="module")
def vgg():  # one frozen VGG16 for every model (module scope: building it per test would double the run time)
    configs = [config_of(json.loads((folder / "model.json").read_text())) for folder in MODELS]
    return make_vgg(configs, VGG_DIR / "vgg16_features.pth")


@requires_shared
@pytest.mark.parametrize("name", NAMES)
def test_model_stylizes_far_below_untrained_style_loss(name: str, vgg) -> None:
    """The trainer's own style loss on a held-out photo: trained ≪ untrained (the same network at step 0)."""
    model, info = load_model(REPO / "models" / name)
    config = config_of(info.metadata)
    # model.json records the training machine's path; the painting is the same file under this checkout's data.
    config = config.replace(style_image=str(SHARED_DATA / "styles" / info.metadata["style_image"]))
    meter = LossMeter(config, vgg)
    photo = load_eval_image(PHOTO, TEST_SHORT_SIDE)
    features = meter.features(photo)
    trained = meter(stylize_tensor(model, photo), features)
    untrained = meter(stylize_tensor(untrained_network(config), photo), features)
    ratio = trained["style"] / untrained["style"]
    assert ratio < MAX_STYLE_RATIO, f"{name}: style loss {trained['style']:.3g} vs untrained {untrained['style']:.3g}"
    assert torch.isfinite(torch.tensor(list(trained.values()))).all()
