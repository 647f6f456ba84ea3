"""Model cards and the gallery for a multi-style model: every style credited, a strip of pure styles and of mixes,
one gallery column per style (a small seeded network; the paintings' credits come from ../shared/data)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from conftest import REPO, SHARED_DATA, requires_shared
from multistyle_zoo import PAINTINGS, SINGLE_PAINTING, write_credited_models
from PIL import Image

from fastnst.training.config import config_from_dict
from fastnst.training.lineage import lineage_of, run_record

sys.path.insert(0, str(REPO / "scripts"))
import make_gallery
import make_model_cards

pytestmark = requires_shared


def test_multistyle_card_credits_every_style_and_shows_pure_styles_and_mixes(tmp_path: Path, monkeypatch) -> None:
    duo, _ = write_credited_models(tmp_path, SHARED_DATA)
    monkeypatch.setattr(sys, "argv", ["make_model_cards.py", str(duo), "--quality", str(tmp_path / "none.json")])
    assert make_model_cards.main() == 0

    text = (duo / "README.md").read_text()
    assert "2 styles in one feed-forward transform network" in text
    assert "| `night` | Vincent van Gogh, *The Starry Night*" in text
    assert "| `wave` | Katsushika Hokusai" in text
    assert "--mix night=0.5,wave=0.5" in text and "0/100 %" in text
    assert "POST /v1/stylize?model=duo&style=wave" in text
    assert "the full config is in `model.json`" in text  # no configs/styles/duo.toml

    sample, mix = Image.open(duo / "sample.jpg"), Image.open(duo / "mix.jpg")
    tile = (mix.width - 4 * 4) // 5
    assert sample.width == 2 * tile + 4 and sample.height == mix.height
    # The strips are the model's outputs: the ends of the mix strip are the pure styles.
    pure = [make_model_cards.stylized_sample(duo, mix={name: 1.0}) for name in PAINTINGS]
    ends = [make_model_cards.stylized_sample(duo, mix={"night": 1 - share, "wave": share}) for share in (0, 1)]
    for a, b in zip(pure, ends, strict=True):
        assert a.tobytes() == b.tobytes()
    assert pure[0].tobytes() != pure[1].tobytes()


def _entry(style: float, content: float, judge_style: float, *, recipe: str = "cpu", **extra: object) -> dict:
    """A report entry of scripts/evaluate_models.py with just what the card reads."""
    flags = {"checkerboard_flag": False, "border_flag": style > 2}
    return {"recipe": recipe, "loss": {"style_layer_weights": [1.0, 1.0], "style_weight": 5e9, "content_weight": 1e5},
            "trained": {"style": style, "content": content}, "untrained": {"style": 10.0},
            "judge": {"trained": {"style": judge_style, "content": 1.0}}, "artifacts": {"trained": flags}, **extra}


def test_multistyle_card_sets_each_style_beside_its_single_style_model() -> None:
    report = {
        "duo:night": _entry(1.0, 5.0, 2.0, single_style="night_single"),
        "duo:wave": _entry(3.0, 5.0, 2.0, single_style="wave_single"),
        "night_single": _entry(2.0, 4.0, 4.0),
        "wave_single": {**_entry(3.0, 5.0, 1.0, recipe="gpu"),
                        "loss": {"style_layer_weights": [0.25, 1.0], "style_weight": 5e9, "content_weight": 1e5}},
    }
    lines = make_model_cards.style_quality_section("duo", ["night", "wave"], report, 17)
    rows = {line.split(" | ")[0]: line for line in lines if line.startswith("| `")}
    # style ÷ untrained, own style ratio, judge style and content ratios, flags
    assert rows["| `night`"].endswith("| 0.100 | [`night_single`](../night_single/README.md) | 0.50 | 0.50 | 1.00 | "
                                     "none |")
    # Weighted differently: no own-loss ratio; the judge still compares. The border flag shows.
    assert rows["| `wave`"].endswith("| 0.300 | [`wave_single`](../wave_single/README.md) | – | 2.00 | 1.00 | "
                                    "border |")
    assert any("another recipe (`gpu`)" in line for line in lines)  # wave_single's recipe differs

    assert not any("later `--base` run" in line for line in lines)
    report["duo:wave"]["from_base"] = True  # learned again from a trained network: its step 0 is another start
    lines = make_model_cards.style_quality_section("duo", ["night", "wave"], report, 17)
    assert any(line.startswith("`wave` learned by a later `--base` run") for line in lines)

    alone = make_model_cards.style_quality_section("duo", ["night", "wave"], {"duo:night": _entry(1.0, 5.0, 2.0)}, 17)
    assert any(line.startswith("| `night` |") and " | – | – | – | – | none |" in line for line in alone)
    assert make_model_cards.style_quality_section("duo", ["night"], {}, 17)[0].startswith("- Held-out losses: not")


def test_gallery_gives_a_multistyle_model_one_column_per_style(tmp_path: Path) -> None:
    duo, cafe = write_credited_models(tmp_path, SHARED_DATA)
    columns = make_gallery.gallery_columns([cafe, duo])
    assert [column.title for column in columns] == ["cafe", "duo: night", "duo: wave"]
    assert [column.painting.file for column in columns] == [SINGLE_PAINTING, *PAINTINGS.values()]

    photo = SHARED_DATA / "photos" / make_gallery.DEFAULT_PHOTOS[0]
    grid = make_gallery.build_grid(columns, [photo], 120)
    cell_w, cell_h = make_gallery.CELL
    assert grid.size == (4 * cell_w, make_gallery.LABEL_HEIGHT + cell_h)
    cells = [grid.crop((i * cell_w, make_gallery.LABEL_HEIGHT, (i + 1) * cell_w, grid.height)) for i in (2, 3)]
    assert cells[0].tobytes() != cells[1].tobytes()  # each column runs its own style
    page = make_gallery.page(columns, [photo], "gallery.jpg", 120)
    assert "| `duo: wave` | Katsushika Hokusai" in page and "not measured" in page


def test_card_of_a_relearned_model_describes_each_run(tmp_path: Path) -> None:
    """A model whose later ``--base`` run relearned a style: the training table is the first run's (which trained
    the shared weights), and a row per later run says which rows it learned, at what weight, how long."""
    duo, _ = write_credited_models(tmp_path, SHARED_DATA)
    meta = json.loads((duo / "model.json").read_text())
    first = config_from_dict(meta["config"], "test")
    again = first.replace(style_images=(str(SHARED_DATA / "styles" / SINGLE_PAINTING),), style_names=("wave",),
                          base=str(duo), relearn=True, style_weights=(1.25e9,), learning_rate=0.01)
    run = {"hardware": "cpu × 1", "precision": "bfloat16"}
    lineage = [*lineage_of(meta), run_record(again, steps=5, losses={"total": 9.0}, seconds=12.0, run_info=run)]
    grown = {**meta, "config": again.to_dict(), "steps": 5, "final_losses": {"total": 9.0}, "lineage": lineage}
    paintings = make_model_cards.model_paintings(grown, duo, make_model_cards.read_manifest(SHARED_DATA))
    text = make_model_cards.card(duo, grown, paintings, (155, 17, "x"), None, {})
    assert "| steps | 3 × batch 4 random 256² crops" in text  # the first run's, not the relearning run's
    assert "learning rate 0.002, constant schedule" in text and "(step 3)" in text
    assert "seed 0; the model is the weight average of width 0.05 |" in text
    assert ("| then | `fastnst train --base`: `wave` (relearned, style weight 1.25e9); only their norm rows learn, "
            "every other weight and row stays bit-equal; 5 × batch 4 random 256² crops, Adam, learning rate "
            "0.01, 12 s on cpu × 1 |") in text
