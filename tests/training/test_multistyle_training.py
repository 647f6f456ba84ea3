"""Multi-style training (conditional instance norm) and adding a style to a trained model.

Tiny networks (width 8, one residual block) on 64 px crops of the real photos, a few steps each; the tests that
train are skipped without ../shared/data.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import assert_one_clear_line, tiny_train_overrides
from safetensors.torch import load_file

from fastnst.model.files import load_model, save_model, tensors_sha256
from fastnst.model.transformer import TransformerNet, TransformerSpec, bake, extend
from fastnst.perceptual.losses import ContentLoss, LossWeights, PerceptualLoss, StyleLoss
from fastnst.training.config import load_config
from fastnst.training.data import draw_styles
from fastnst.training.trainer import Trainer, TrainingStopped
from fastnst.utils.errors import ConfigError
from fastnst.utils.machine import cpu_details

REPO = Path(__file__).resolve().parents[2]
STYLES = ("van_gogh_starry_night.jpg", "hokusai_great_wave.jpg", "durer_lion.jpg")
# tensors_sha256 of the model of a seeded 6-step single-style tiny run at the default recipe (constant learning
# rate, channels_last training layers, amp "auto"), per platform where it was recorded: a run must keep training
# these exact weights. Conv kernels and the autocast precision differ between CPU types and torch versions, so a
# run is compared only on its own platform (torch version, architecture, fastnst.utils.machine.cpu_details()).
SINGLE_STYLE_DIGESTS = {
    ("2.14.1+cu130", "x86_64", "Intel(R) Xeon(R) Processor @ 2.80GHz (family 6, model 106)"):  # Ice Lake: fp32
        "6b1a872c2658d487d26f568eb13bd6e38a8e2e9c691249495f7af126d6c24470",
    ("2.14.1+cu130", "x86_64", "Intel(R) Xeon(R) Processor (family 6, model 167, avx512_bf16)"):  # AMX: bf16
        "2e47758aef9b54bbb8a81e0af01dfb5676263a87d36fd9ed7529c4ab7a7eb645",
}


def paintings(shared: Path, count: int) -> tuple[str, ...]:
    return tuple(str(shared / "styles" / name) for name in STYLES[:count])


def multi_overrides(shared: Path, out: Path, count: int = 2, **extra: object) -> dict[str, object]:
    return tiny_train_overrides(shared, out, style_image="", style_images=paintings(shared, count), **extra)


def pick(styles: int, row: int) -> list[float]:
    weights = [0.0] * styles
    weights[row] = 1.0
    return weights


@pytest.fixture(scope="module")
def two_style_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-style tiny model folder trained for 4 steps (shared by the add-a-style tests)."""
    from conftest import SHARED_DATA, _have_shared

    if not _have_shared():
        pytest.skip(f"real photos and VGG weights not found under {SHARED_DATA}")
    out = tmp_path_factory.mktemp("two_styles") / "run"
    Trainer(load_config(None, multi_overrides(SHARED_DATA, out, steps=4))).run()
    return out


# --------------------------------------------------------------------------------------------- no data needed


def test_style_draw_is_balanced_seeded_and_split_over_ranks() -> None:
    for styles, batch in ((3, 4), (2, 2), (3, 9), (4, 2)):
        seen = Counter()
        for step in range(30):
            drawn = draw_styles(7, step, batch, styles)
            counts = Counter(drawn)
            assert max(counts.values()) - min(counts.get(s, 0) for s in range(styles)) <= 1, drawn
            assert drawn == draw_styles(7, step, batch, styles)  # a pure function of (seed, step)
            seen.update(drawn)
        assert set(seen) == set(range(styles))
        assert max(seen.values()) - min(seen.values()) <= 30  # balanced over steps too (30 steps)
    assert [draw_styles(0, step, 4, 3) for step in range(8)] != [draw_styles(1, step, 4, 3) for step in range(8)]
    assert len({tuple(draw_styles(0, step, 3, 3)) for step in range(12)}) > 1  # the order changes per step
    # Two ranks of batch 2 draw exactly the global batch of 4 a single process would.
    for step in range(5):
        together = draw_styles(3, step, 4, 3)
        assert draw_styles(3, step, 2, 3, rank=0, world_size=2) + draw_styles(3, step, 2, 3, 1, 2) == together


def test_config_lists_of_paintings(tmp_path: Path) -> None:
    config = load_config(None, {"style_images": ["a/starry.jpg", "b/wave.jpg"], "data_dir": "d"})
    assert config.paintings == (("starry", "a/starry.jpg"), ("wave", "b/wave.jpg"))
    assert config.style_name == "starry+wave" and config.style_image == ""
    named = load_config(None, {"style_images": ["s.jpg", "w.jpg"], "style_names": ["sn", "gw"], "data_dir": "d"})
    assert named.paintings == (("sn", "s.jpg"), ("gw", "w.jpg")) and named.style_name == "sn+gw"
    # One painting in the list is exactly a single-style config.
    one = load_config(None, {"style_images": ["x/s.jpg"], "style_names": ["sn"], "data_dir": "d"})
    assert one == load_config(None, {"style_image": "x/s.jpg", "style_name": "sn", "data_dir": "d"})
    toml = tmp_path / "zoo.toml"
    toml.write_text('data_dir = "d"\nstyle_images = ["s.jpg", "w.jpg"]\nstyle_names = ["a", "b"]\n')
    from_file = load_config(toml)
    assert from_file.style_name == "zoo" and from_file.paintings[1] == ("b", str((tmp_path / "w.jpg").resolve()))
    with pytest.raises(ConfigError, match="style_names has 3 entries but style_images has 2"):
        load_config(None, {"style_images": ["s.jpg", "w.jpg"], "style_names": ["a", "b", "c"], "data_dir": "d"})
    with pytest.raises(ConfigError, match="not both"):
        load_config(None, {"style_image": "s.jpg", "style_images": ["a.jpg", "b.jpg"], "data_dir": "d"})
    with pytest.raises(ConfigError, match="more than once"):
        load_config(None, {"style_images": ["a/s.jpg", "b/s.jpg"], "data_dir": "d"})


def test_each_painting_can_have_its_own_style_weight() -> None:
    config = load_config(None, {"style_images": ["a/s.jpg", "b/w.jpg"], "style_weights": [3e9, 5e9], "data_dir": "d",
                                "style_weight": 7e9})
    assert config.painting_weights == (3e9, 5e9)
    assert load_config(None, {"style_images": ["s.jpg", "w.jpg"], "data_dir": "d"}).painting_weights == (1e10, 1e10)
    one = config.for_style("w")  # the style's loss is defined as a single-style run of its painting would define it
    assert (one.style_image, one.style_name, one.style_weight, one.style_images, one.style_weights) == (
        "b/w.jpg", "w", 5e9, (), ())
    with pytest.raises(ConfigError, match="style_weights has 1 entries but there are 2 paintings"):
        load_config(None, {"style_images": ["s.jpg", "w.jpg"], "style_weights": [1e9], "data_dir": "d"})
    with pytest.raises(ConfigError, match="relearn needs a base"):
        load_config(None, {"style_image": "s.jpg", "relearn": True, "data_dir": "d"})

    # In the loss, each sample's style term is weighted by its own style's weight.
    features = [{"relu1_2": torch.rand(1, 4, 6, 6)} for _ in range(2)]
    output = {"relu1_2": torch.rand(3, 4, 6, 6)}
    style = StyleLoss(features, {"relu1_2": 1.0})
    index = torch.tensor([1, 0, 1])
    loss = PerceptualLoss(ContentLoss("relu1_2"), style, LossWeights(1.0, 7.0, 0.0), [2.0, 3.0])
    _, parts = loss(torch.rand(3, 3, 8, 8), output, output, index)
    expected = torch.tensor([3.0, 2.0, 3.0]) * style.per_sample(output, index)
    assert torch.allclose(parts["style_per_sample"], expected) and torch.allclose(parts["style"], expected.mean())
    with pytest.raises(ValueError, match="1 style weights for 2 styles"):
        PerceptualLoss(ContentLoss("relu1_2"), style, LossWeights(1.0, 7.0, 0.0), [2.0])


# --------------------------------------------------------------------------------------------- training


def test_single_style_run_is_unchanged(shared_data: Path, tmp_path: Path) -> None:
    """A one-painting run (as style_image or a one-entry style_images) trains exactly the weights it did before
    multi-style training existed, and its files say nothing about styles."""
    runs = {}
    for name, painting in (("image", {}), ("list", {"style_image": "", "style_images": paintings(shared_data, 1)})):
        values = tiny_train_overrides(shared_data, tmp_path / name, steps=6, checkpoint_every=3, learning_rate=1e-3,
                                      ema_width=0.0, **painting)  # the recipe the digests were recorded with
        result = Trainer(load_config(None, values)).run()
        runs[name] = tensors_sha256(load_file(result.model_path))
        meta = json.loads((tmp_path / name / "model.json").read_text())
        assert "styles" not in meta and "styles" not in meta["spec"]
        assert meta["style_name"] == "van_gogh_starry_night" and meta["style_image"] == STYLES[0]
        assert "styles" not in torch.load(tmp_path / name / "checkpoints" / "last.pt", weights_only=True)
    assert runs["image"] == runs["list"]
    recorded = SINGLE_STYLE_DIGESTS.get((torch.__version__, platform.machine(), cpu_details()))
    if recorded is not None:
        assert runs["image"] == recorded


def test_multistyle_run_writes_styles_logs_each_and_resumes_exactly(shared_data: Path, tmp_path: Path) -> None:
    values = multi_overrides(shared_data, tmp_path / "straight", count=3, steps=6, batch_size=2,
                             style_names=("sn", "gw", "lion"), tensorboard=True, log_every=2, preview_every=6,
                             preview_images=(str(next((shared_data / "photos").rglob("*.jpg"))),))
    result = Trainer(load_config(None, values)).run()
    model, info = load_model(result.model_path)
    assert model.spec == TransformerSpec(width=8, residual_blocks=1, styles=3)
    assert info.metadata["styles"] == [{"name": "sn", "image": STYLES[0]}, {"name": "gw", "image": STYLES[1]},
                                       {"name": "lion", "image": STYLES[2]}]
    assert info.metadata["style_name"] == "sn+gw+lion" and "style_image" not in info.metadata
    assert {"style/sn", "style/gw", "style/lion"} <= set(result.final_losses)
    # Each style's rows were trained: they no longer equal the initial ones (ones and zeros).
    for key in model.style_keys():
        rows = model.state_dict()[key]
        assert all(not torch.equal(rows[i], rows[0].new_full(rows[0].shape, float(key.endswith("weight"))))
                   for i in range(3)), key

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(tmp_path / "straight" / "tb")).Reload().Tags()
    assert {"loss/style/sn", "loss/style/gw", "loss/style/lion", "loss/style"} <= set(tags["scalars"])
    assert {"preview/sn/0", "preview/gw/0", "preview/lion/0"} <= set(tags["images"])

    # Stopped after step 3 and resumed: the same weights as the straight run.
    stopped_values = {**values, "output_dir": str(tmp_path / "stopped"), "tensorboard": False}
    trainer = Trainer(load_config(None, stopped_values))
    trainer.on_step = lambda report: trainer.request_stop() if report.step == 3 else None
    with pytest.raises(TrainingStopped):
        trainer.run()
    resumed = Trainer(load_config(None, stopped_values), resume=True).run()
    a, b = load_file(result.model_path), load_file(resumed.model_path)
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


@pytest.mark.parametrize("ema_width", [0.0, 0.1])  # the weight average keeps them too
def test_add_a_style_keeps_the_old_ones_bit_equal(two_style_model: Path, shared_data: Path, tmp_path: Path,
                                                 ema_width: float) -> None:
    base, base_info = load_model(two_style_model)
    values = tiny_train_overrides(shared_data, tmp_path / "added", steps=4, style_image=str(shared_data / "styles" /
                                  STYLES[2]), base=str(two_style_model), width=32, residual_blocks=5,
                                  ema_width=ema_width)
    trainer = Trainer(load_config(None, values))
    trainable = {name for name, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable == trainer.model.style_keys()  # only the norms' rows learn (the old rows' grads are zeroed)
    result = trainer.run()
    added, info = load_model(result.model_path)
    assert added.spec == TransformerSpec(width=8, residual_blocks=1, styles=3)  # the base's architecture
    assert info.metadata["styles"] == [*base_info.metadata["styles"], {"name": "durer_lion", "image": STYLES[2]}]
    assert info.metadata["config"]["base"] == str(two_style_model) and info.metadata["config"]["width"] == 8
    old, new = base.state_dict(), added.state_dict()
    for key, value in old.items():
        if key in base.style_keys():
            assert torch.equal(new[key][:2], value), key  # the base's styles' rows, bit for bit
        else:
            assert torch.equal(new[key], value), key  # every shared weight
    start = extend(base).state_dict()
    assert all(not torch.equal(new[key][2], start[key][2]) for key in base.style_keys())  # the new row learned
    image = torch.rand(1, 3, 48, 40)
    with torch.no_grad():
        for row in range(2):
            assert torch.equal(bake(added, pick(3, row))(image), bake(base, pick(2, row))(image))


def test_add_a_style_to_a_single_style_model(shared_data: Path, tiny_model: Path, tmp_path: Path) -> None:
    base, _ = load_model(tiny_model)
    values = tiny_train_overrides(shared_data, tmp_path / "added", steps=2, style_name="lion",
                                  style_image=str(shared_data / "styles" / STYLES[2]), base=str(tiny_model))
    added, info = load_model(Trainer(load_config(None, values)).run().model_path)
    assert info.metadata["styles"] == [{"name": "tiny", "image": "tiny.jpg"}, {"name": "lion", "image": STYLES[2]}]
    assert info.metadata["style_name"] == "tiny+lion"
    image = torch.rand(1, 3, 40, 44)
    with torch.no_grad():
        assert torch.equal(bake(added, [1.0, 0.0])(image), base(image))


def test_add_a_style_refuses_a_name_the_base_holds(shared_data: Path, tiny_model: Path, tmp_path: Path) -> None:
    values = tiny_train_overrides(shared_data, tmp_path / "run", steps=2, style_name="tiny", base=str(tiny_model))
    with pytest.raises(ConfigError, match="already holds a style named tiny.*--relearn"):
        Trainer(load_config(None, values))
    # Relearning needs a row to start from: a single-style base has none besides the one relearned.
    with pytest.raises(ConfigError, match="leaves no row to start from"):
        Trainer(load_config(None, {**values, "relearn": True}))


def test_relearn_a_style_restarts_its_row_and_keeps_every_other_bit_equal(two_style_model: Path, shared_data: Path,
                                                                         tmp_path: Path) -> None:
    base, base_info = load_model(two_style_model)
    names = [style["name"] for style in base_info.metadata["styles"]]
    lion = str(shared_data / "styles" / STYLES[2])
    values = tiny_train_overrides(shared_data, tmp_path / "relearned", steps=4, base=str(two_style_model),
                                  relearn=True, style_images=(lion, str(shared_data / "styles" / STYLES[0])),
                                  style_image="", style_names=(names[0], "extra"), style_weights=(3e9, 1e9))
    trainer = Trainer(load_config(None, values))
    start = {key: value.clone() for key, value in trainer.model.state_dict().items()}
    assert trainer.learned == [0, 2]  # the relearned row keeps its place; the new style is appended
    for key in base.style_keys():  # both learned rows start from the mean of the rows kept: row 1 alone
        assert torch.equal(start[key][0], base.state_dict()[key][1]) and torch.equal(start[key][2], start[key][0])
    assert trainer.loss.style_weights.tolist() == [3e9, 1e9]  # each painting's own weight, by slot
    relearned, info = load_model(trainer.run().model_path)
    assert info.metadata["styles"] == [{"name": names[0], "image": STYLES[2]}, base_info.metadata["styles"][1],
                                       {"name": "extra", "image": STYLES[0]}]
    new = relearned.state_dict()
    for key, value in base.state_dict().items():
        if key in base.style_keys():
            assert torch.equal(new[key][1], value[1]), key  # the row kept, bit for bit
            assert not torch.equal(new[key][0], start[key][0]), key  # the relearned row learned
        else:
            assert torch.equal(new[key], value), key  # every shared weight
    image = torch.rand(1, 3, 40, 36)
    with torch.no_grad():
        assert torch.equal(bake(relearned, pick(3, 1))(image), bake(base, pick(2, 1))(image))
    # The lineage: the base's run (both styles, its config) and this one (the styles it learned, its config).
    first, last = info.metadata["lineage"]
    assert first["styles"] == names and first["config"] == base_info.metadata["config"]
    assert first["steps"] == base_info.metadata["steps"]
    assert last["styles"] == [names[0], "extra"] and last["config"]["style_weights"] == [3e9, 1e9]
    assert last["config"] == info.metadata["config"] and last["steps"] == 4


# --------------------------------------------------------------------------------------------- command line


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fastnst.cli", *args], capture_output=True, text=True, timeout=900,
                          cwd=REPO)


def common_flags(shared: Path, out: Path) -> list[str]:
    return ["--data-dir", str(shared / "photos"), "--style-size", "128", "--width", "8", "--residual-blocks", "1",
            "--image-size", "64", "--batch-size", "2", "--steps", "2", "--num-workers", "0", "--no-tensorboard",
            "--output-dir", str(out)]


def test_cli_repeated_style_image_trains_one_network(shared_data: Path, tmp_path: Path) -> None:
    a, b = paintings(shared_data, 2)
    done = run_cli("-q", "train", "--style-image", a, "--style-image", b, "--style-name", "sn", "--style-name", "gw",
                   *common_flags(shared_data, tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["spec"]["styles"] == 2 and [s["name"] for s in meta["styles"]] == ["sn", "gw"]


def test_cli_bad_style_input_is_one_clear_line(shared_data: Path, tmp_path: Path) -> None:
    a, b = paintings(shared_data, 2)
    names = run_cli("train", "--style-image", a, "--style-image", b, "--style-name", "x", "--style-name", "y",
                    "--style-name", "z", *common_flags(shared_data, tmp_path / "names"))
    assert_one_clear_line(names.returncode, names.stderr, "style_names has 3 entries", "style_images has 2")
    base = run_cli("train", "--style-image", a, "--base", "no_such_model_anywhere",
                   *common_flags(shared_data, tmp_path / "base"))
    assert_one_clear_line(base.returncode, base.stderr, "base model", "no_such_model_anywhere", "not found")
    relearn = run_cli("train", "--style-image", a, "--relearn", "--style-weights", "1e9", "2e9",
                      *common_flags(shared_data, tmp_path / "relearn"))
    assert_one_clear_line(relearn.returncode, relearn.stderr, "style_weights has 2 entries but there are 1 paintings",
                          "relearn needs a base model")


def test_base_styles_come_from_the_base_metadata(tmp_path: Path) -> None:
    """A multi-style base lists its styles; a single-style base is its style_name and style_image."""
    torch.manual_seed(0)
    folder = tmp_path / "m"
    save_model(TransformerNet(TransformerSpec(width=8, residual_blocks=1, styles=2)), folder,
               {"style_name": "a+b", "styles": [{"name": "a", "image": "a.jpg"}, {"name": "b", "image": "b.jpg"}]})
    from fastnst.model.mixing import style_entries

    model, info = load_model(folder)
    assert style_entries(info.metadata, info.name) == [{"name": "a", "image": "a.jpg"},
                                                       {"name": "b", "image": "b.jpg"}]
    assert style_entries({"style_name": "solo", "style_image": "s.jpg"}, "x") == [{"name": "solo", "image": "s.jpg"}]
    assert extend(model).spec.styles == 3
