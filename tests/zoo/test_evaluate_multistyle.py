"""scripts/evaluate_models.py on a multi-style model: each style measured through the single-style path, against its
own painting, and set beside the single-style model of that painting (small seeded networks, real VGG16, photos)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import REPO, SHARED_DATA, requires_shared
from multistyle_zoo import PAINTINGS, SINGLE_PAINTING, write_credited_models

from fastnst.model.files import load_model, save_model
from fastnst.model.transformer import bake, extend, restart_rows
from fastnst.training.config import config_from_dict
from fastnst.training.lineage import lineage_of, run_record

sys.path.insert(0, str(REPO / "scripts"))
import evaluate_models

pytestmark = requires_shared


def test_each_style_is_measured_like_the_single_style_model_it_equals(tmp_path: Path) -> None:
    duo, cafe = write_credited_models(tmp_path, SHARED_DATA)
    network, info = load_model(duo)
    # A single-style model with the duo's shared weights and its "night" norms, trained (so says its config) on
    # the same painting: its losses must be the duo's "night" losses exactly.
    config = config_from_dict(info.metadata["config"], "test").replace(
        style_images=(), style_names=(), style_image=str(SHARED_DATA / "styles" / PAINTINGS["night"]))
    save_model(bake(network, [1, 0]), tmp_path / "night_single", {**info.metadata, "styles": None,
                                                                  "config": config.to_dict(), "steps": 7})
    report = evaluate_models.evaluate([cafe, duo, tmp_path / "night_single"], None, SHARED_DATA / "photos",
                                      SHARED_DATA / "vgg" / "vgg16_features.pth", 64)
    models = report["models"]
    assert list(models) == ["cafe", "duo:night", "duo:wave", "night_single"]
    night, wave, twin = models["duo:night"], models["duo:wave"], models["night_single"]
    assert night["trained"] == twin["trained"] and night["photo"] == twin["photo"]
    assert (night["model"], night["style"], night["single_style"]) == ("duo", "night", "night_single")
    assert "single_style" not in wave  # no single-style model of the Great Wave here
    # Each style is measured against its own painting: the photo's own style loss differs between them.
    assert wave["photo"]["style"] != night["photo"]["style"]
    assert wave["trained"]["style"] != night["trained"]["style"]

    page = evaluate_models.markdown(json.loads(json.dumps(report)))
    rows = [line for line in page.splitlines() if line.startswith("| `duo:")]
    recipe = night["recipe"]
    night_row = next(line for line in rows if line.startswith(f"| `duo:night` | `{recipe}` | 3 |"))
    assert night_row.endswith(f"| `night_single` | `{recipe}` | 7 | " + evaluate_models.fmt(twin["trained"]["style"])
                              + " | 1.000 | 1.000 | – | – |")  # no judge in this run
    no_twin = "| – | – | – | – | – | – | – | – |"
    assert any(line.startswith(f"| `duo:wave` | `{recipe}` | 3 |") and line.endswith(no_twin) for line in rows)

    # A twin trained with twice the style weight: the own losses compare per unit weight.
    doubled = json.loads(json.dumps(report))
    doubled["models"]["night_single"]["loss"]["style_weight"] *= 2
    doubled["models"]["night_single"]["trained"]["style"] *= 2
    ratios = evaluate_models.twin_ratios(doubled["models"]["duo:night"], doubled["models"]["night_single"])
    assert ratios["style"] == pytest.approx(1.0) and ratios["content"] == pytest.approx(1.0)
    doubled["models"]["night_single"]["trained"]["style"] *= 1.25  # the twin's style is worse per unit weight
    ratios = evaluate_models.twin_ratios(doubled["models"]["duo:night"], doubled["models"]["night_single"])
    assert ratios["style"] == pytest.approx(0.8)
    table = evaluate_models.twin_table(doubled["models"])
    assert [line.split(" | ")[0] for line in table[2:]] == ["| night", "| mean"]  # wave has no twin here
    assert table[2].split(" | ")[2:4] == ["0.80", "1.00"] and table[3].split(" | ")[2] == "0.80"

    # A twin that weights its style layers differently has incomparable own losses: no own-loss ratio.
    reweighted = json.loads(json.dumps(report))
    reweighted["models"]["night_single"]["loss"]["style_layer_weights"][0] = 0.25
    section = evaluate_models.markdown(reweighted).split("## Multi-style models against single-style ones")[1]
    night_row = next(line for line in section.splitlines() if line.startswith("| `duo:night`"))
    assert night_row.endswith(" | – | – | – | – |")
    assert "tenth-of-steps runs of cafe, night_single" in page  # styles of a multi-style model have no tenth run
    # Video flicker, through the default margin and bare, for every network measured.
    for entry in models.values():
        assert entry["flicker"]["margin"] == 32 and entry["stability_weight"] == 0
        for seen in ("with_margin", "bare"):
            assert set(entry["flicker"][seen]) == {"static", "pan", "object"}
            assert all(0 < ratio < 10 for ratio in entry["flicker"][seen].values())
    assert night["flicker"] == twin["flicker"]  # the same network gives the same frames
    assert night["flicker"] != wave["flicker"]
    video = page.split("## Video flicker")[1].split("\n## ")[0]
    assert f"| `duo:night` | – | {night['flicker']['with_margin']['static']:.2f} |" in video
    assert report["torch"] == torch.__version__

    # Re-measuring the multi-style model alone (its twin's folder gone): the other entries and its twin are kept.
    earlier = json.loads(json.dumps(report))
    again = evaluate_models.evaluate([duo], None, SHARED_DATA / "photos", SHARED_DATA / "vgg" / "vgg16_features.pth",
                                     64, previous=earlier, keep_others=True)["models"]
    assert list(again) == list(models) and again["cafe"] == earlier["models"]["cafe"]
    assert again["duo:night"]["single_style"] == "night_single" and "single_style" not in again["duo:wave"]


def test_a_style_is_set_beside_the_single_style_model_named_like_it() -> None:
    """Two single-style models of one painting (one of them trained for video): the style's twin is the one with
    its name, whatever the order; a style whose name none has takes the first."""
    def unit(name: str, painting: str) -> SimpleNamespace:
        return SimpleNamespace(name=name, model=name.split(":")[0], painting=f"/styles/{painting}")

    for singles in (["night", "night_video"], ["night_video", "night"]):
        units = [unit(name, "starry.jpg") for name in singles]
        units += [unit("duo:night", "starry.jpg"), unit("duo:wave", "wave.jpg"), unit("trio:stars", "starry.jpg")]
        twins = evaluate_models.single_style_twins(units)
        assert twins == {"duo:night": "night", "trio:stars": singles[0]}


def test_a_model_grown_from_a_base_is_measured_on_the_rows_its_run_learned(tmp_path: Path) -> None:
    """A ``--base`` run's config names only its new styles: each is found by name among the model's rows (not taken
    as row 0, 1, …, which are the base's), and the base's styles, trained by another recipe, are not measured."""
    duo, _ = write_credited_models(tmp_path, SHARED_DATA)
    network, info = load_model(duo)
    grown = extend(network, 1)
    draws = torch.Generator().manual_seed(3)  # its own generator: the trained row must not depend on test order
    with torch.no_grad():
        for key in sorted(grown.style_keys()):  # a set: a fixed order keeps the draws seeded
            grown.state_dict()[key][2].normal_(1.0 if key.endswith("weight") else 0.0, 2.0, generator=draws)
    painting = str(SHARED_DATA / "styles" / SINGLE_PAINTING)
    config = config_from_dict(info.metadata["config"], "test").replace(
        style_images=(), style_names=(), style_image=painting, style_name="late", base=str(duo))
    styles = [*info.metadata["styles"], {"name": "late", "image": SINGLE_PAINTING}]
    save_model(grown, tmp_path / "grown", {**info.metadata, "styles": styles, "config": config.to_dict(),
                                           "spec": None})
    single = config.replace(style_images=(), style_names=(), base="", style_image=painting)
    save_model(bake(grown, [0, 0, 1]), tmp_path / "late_single", {**info.metadata, "styles": None,
                                                                  "config": single.to_dict()})
    # The run's step 0: the new style's rows start at the mean of the base's (a 50/50 mix of its two styles).
    save_model(bake(grown, [0.5, 0.5, 0]), tmp_path / "start", {**info.metadata, "styles": None,
                                                                "config": single.to_dict()})
    report = evaluate_models.evaluate([tmp_path / "grown", tmp_path / "late_single", tmp_path / "start"], None,
                                      SHARED_DATA / "photos", SHARED_DATA / "vgg" / "vgg16_features.pth", 64)
    models = report["models"]
    assert list(models) == ["grown:late", "late_single", "start"]
    assert models["grown:late"]["trained"] == models["late_single"]["trained"]
    assert models["grown:late"]["style"] == "late"
    # Its run named one painting (config.style_image, as a single-style run does) but it is a multi-style model.
    assert models["grown:late"]["single_style"] in ("late_single", "start")  # the single-style models of its painting
    assert "single_style" not in models["late_single"]
    untrained, start = models["grown:late"]["untrained"], models["start"]["trained"]
    assert untrained["style"] == pytest.approx(start["style"], rel=1e-4)
    assert untrained["content"] == pytest.approx(start["content"], rel=1e-4)
    assert untrained["style"] != pytest.approx(models["grown:late"]["trained"]["style"], rel=1e-2)


def test_every_style_of_a_relearned_model_is_measured_with_its_own_runs_recipe(tmp_path: Path) -> None:
    """A model whose ``lineage`` says a later run (``--relearn``, its own painting and style weight) learned one row
    again: that row is measured with that run's recipe and step 0 (its rows restarted from the mean of the rows
    kept), the rows the first run left with the first run's."""
    duo, _ = write_credited_models(tmp_path, SHARED_DATA)
    network, info = load_model(duo)
    relearned = restart_rows(network, [1])
    draws = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for key in sorted(relearned.style_keys()):
            relearned.state_dict()[key][1].normal_(1.0 if key.endswith("weight") else 0.0, 2.0, generator=draws)
    painting = str(SHARED_DATA / "styles" / SINGLE_PAINTING)
    first = config_from_dict(info.metadata["config"], "test")
    second = first.replace(style_images=(), style_names=(), style_image=painting, style_name="wave", base=str(duo),
                           relearn=True, style_weight=first.style_weight / 4)
    styles = [info.metadata["styles"][0], {"name": "wave", "image": SINGLE_PAINTING}]
    run = {"hardware": "cpu × 1", "precision": "float32"}
    lineage = [*lineage_of(info.metadata), run_record(second, steps=5, losses={}, seconds=2.0, run_info=run)]
    save_model(relearned, tmp_path / "relearned", {**info.metadata, "styles": styles, "config": second.to_dict(),
                                                   "lineage": lineage, "steps": 5})
    # The relearned row as a single-style model of its run, and that run's step 0 (the night row, the only one kept).
    alone = second.replace(base="", relearn=False)
    save_model(bake(relearned, [0, 1]), tmp_path / "wave_single", {**info.metadata, "styles": None,
                                                                   "config": alone.to_dict()})
    save_model(bake(network, [1, 0]), tmp_path / "start", {**info.metadata, "styles": None,
                                                           "config": alone.to_dict()})
    folders = [duo, tmp_path / "relearned", tmp_path / "wave_single", tmp_path / "start"]
    vgg = SHARED_DATA / "vgg" / "vgg16_features.pth"
    report = evaluate_models.evaluate(folders, None, SHARED_DATA / "photos", vgg, 64)
    models = report["models"]
    assert list(models) == ["duo:night", "duo:wave", "relearned:night", "relearned:wave", "wave_single", "start"]
    kept, again = models["relearned:night"], models["relearned:wave"]
    # The row the first run left: its recipe, its losses, its step 0 — exactly the base's.
    for key in ("trained", "untrained", "photo", "loss", "steps"):
        assert kept[key] == models["duo:night"][key], key
    # The relearned row: its own run's painting, style weight, steps and step 0.
    assert again["trained"] == models["wave_single"]["trained"] and again["steps"] == 5
    assert again["loss"]["style_weight"] == first.style_weight / 4
    assert again["untrained"]["style"] == pytest.approx(models["start"]["trained"]["style"], rel=1e-4)
    assert again["untrained"]["content"] == pytest.approx(models["start"]["trained"]["content"], rel=1e-4)
    assert again["from_base"] and not kept["from_base"]
    note = next(line for line in evaluate_models.markdown(report).splitlines() if "fastnst train --base" in line)
    assert "`relearned:wave`" in note and "`relearned:night`" not in note
