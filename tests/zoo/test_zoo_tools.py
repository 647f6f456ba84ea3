"""The tools around the model zoo: the recipe-variant screen's pick rule, train_zoo's hard time limit and parts of
the model cards."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

from fastnst.training.config import inherited_configs
from fastnst.utils.errors import ConfigError

sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "benchmarks"))
import make_model_cards
import train_zoo
from screen_models import choose, style_of


def entry(style: float, grid: float, flagged: bool) -> dict:
    return {"style": style, "grid_levels_4": grid, "checkerboard_flag": flagged}


def test_variant_names_split_into_style_and_variant() -> None:
    assert style_of(Path("runs/models/great_wave__tv3e6_l1q")) == ("great_wave", "tv3e6_l1q")
    assert style_of(Path("moulin_de_la_galette")) == ("moulin_de_la_galette", "base")


def test_screen_picks_the_unflagged_variant_with_the_lowest_style_loss() -> None:
    results = {
        "starry_night__a": entry(1.9e5, 2.7, True),   # lowest style loss, but shows the grid
        "starry_night__b": entry(2.7e5, 1.8, False),
        "starry_night__c": entry(2.4e5, 1.2, False),
        "night_cafe__a": entry(1.2e5, 1.6, True),
        "night_cafe__b": entry(1.1e5, 1.9, True),
    }
    # Every night_cafe variant is flagged: the faintest grid wins, not the lowest style loss.
    assert choose(results) == {"starry_night": "c", "night_cafe": "a"}


def test_train_zoo_max_seconds_sets_a_deadline_without_probing(monkeypatch, tmp_path: Path) -> None:
    calls = []

    def fake_run_all(configs, steps, runs_dir, recipe, extra, threads, deadline):
        calls.append((steps, deadline, extra))
        return {c.stem: 1 for c in configs}

    monkeypatch.setattr(train_zoo, "run_all", fake_run_all)
    config = tmp_path / "style.toml"
    config.write_text("")
    monkeypatch.setattr(sys, "argv", ["train_zoo.py", str(config), "--steps", "762", "--max-seconds", "90",
                                      "--runs-dir", str(tmp_path / "runs"), "--models-dir", str(tmp_path / "m"),
                                      "--", "--num-workers", "1"])
    started = time.time()
    assert train_zoo.main() == 1  # the fake runs all "failed": nothing exported
    (steps, deadline, extra), = calls  # one call: no probe
    assert steps == 762 and extra == ["--num-workers", "1"]
    assert started + 89 <= deadline <= time.time() + 90


def test_a_card_names_the_stability_loss_only_when_the_model_was_trained_with_it() -> None:
    assert make_model_cards.stability_row({"stability_weight": 0.0}) == []
    assert make_model_cards.stability_row({}) == []
    (row,) = make_model_cards.stability_row({"stability_weight": 6e7, "stability_noise": 0.01, "stability_shift": 0})
    assert row.startswith("| stability loss | weight 6e7: ") and "σ 0.01" in row and "shift" not in row
    (row,) = make_model_cards.stability_row({"stability_weight": 3e7, "stability_noise": 0.02, "stability_shift": 4})
    assert "σ 0.02 and a shift of up to 4 px" in row


def test_a_card_gives_the_flicker_through_the_margin_and_of_the_bare_network() -> None:
    assert make_model_cards.video_section("x", None) == []
    flicker = {"margin": 32, "with_margin": {"static": 0.712, "pan": 1.034, "object": 0.9},
               "bare": {"static": 0.601, "pan": 0.903, "object": 0.776}}
    text = "\n".join(make_model_cards.video_section("starry_night_video", flicker))
    assert "## Video" in text and "`fastnst stylize in.mp4 --model starry_night_video`" in text
    assert ("(32 px margin): static view 0.71, pan 1.03, moving object 0.90; the bare network: 0.60, 0.90, "
            "0.78") in text


def test_a_multistyle_card_gives_each_styles_flicker() -> None:
    flicker = {"margin": 32, "with_margin": {"static": 1.666, "pan": 1.2, "object": 1.38},
               "bare": {"static": 1.449, "pan": 1.06, "object": 1.22}}
    report = {"zoo:starry_night": {"flicker": flicker}, "zoo:night_cafe": {}}
    assert make_model_cards.style_video_section("zoo", ["night_cafe"], report) == []
    lines = make_model_cards.style_video_section("zoo", ["night_cafe", "starry_night"], report)
    assert "## Video" in lines and "| `starry_night` | 1.67 | 1.20 | 1.38 | 1.45 | 1.06 | 1.22 |" in lines
    assert not any("night_cafe" in line for line in lines)
    assert "`fastnst stylize in.mp4 --model zoo --style S`" in "\n".join(lines)


def test_a_card_names_every_config_its_config_inherits() -> None:
    assert inherited_configs(REPO / "configs" / "styles" / "starry_night_video.toml") == [
        REPO / "configs" / "styles" / "starry_night.toml", REPO / "configs" / "defaults.toml"]
    assert inherited_configs(REPO / "configs" / "defaults.toml") == []
    card = (REPO / "models" / "starry_night_video" / "README.md").read_text(encoding="utf-8")
    assert "(inherits `configs/styles/starry_night.toml`, which inherits `configs/defaults.toml`)" in card


def test_an_inherit_loop_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('inherit = "b.toml"\n')
    (tmp_path / "b.toml").write_text('inherit = "a.toml"\n')
    with pytest.raises(ConfigError, match="loops back"):
        inherited_configs(tmp_path / "a.toml")
