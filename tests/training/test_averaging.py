"""The weight average (``ema_width``): its arithmetic on a toy module, and a trainer run that writes it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_train_overrides
from safetensors.torch import load_file
from torch import nn

from fastnst.training.averaging import WeightAverage, exponent_for_width, relative_width
from fastnst.training.config import config_from_dict, config_to_toml, load_config, load_run_config
from fastnst.training.trainer import Trainer, export_checkpoint
from fastnst.utils.errors import CheckpointError, ConfigError


@pytest.mark.parametrize("width", [0.01, 0.05, 0.1, 0.2, 0.28])
def test_the_exponent_gives_the_asked_width(width: float) -> None:
    assert relative_width(exponent_for_width(width)) == pytest.approx(width, rel=1e-9)


@pytest.mark.parametrize("width", [0.0, -0.1, 0.29, float("nan")])
def test_widths_outside_the_profile_family_are_refused(width: float) -> None:
    with pytest.raises(ValueError, match="averaging width"):
        exponent_for_width(width)
    with pytest.raises(ConfigError, match="ema_width"):
        load_config(None, {"style_image": "s.jpg", "data_dir": "d", "ema_width": width if width else -1.0})


def test_the_average_is_the_power_function_weighting_of_every_step() -> None:
    """After t updates the average is Σ_k w_k·θ_k with w_k = (1 − β_k)·Π_{j>k} β_j, β_j = (1 − 1/j)^(γ+1): the first
    update copies the weights, and a weight that never changes stays bit-equal."""
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        layer.bias.fill_(0.3)  # never changed below
    average = WeightAverage(layer, 0.1)
    history = []
    for step in range(1, 8):
        with torch.no_grad():
            layer.weight.copy_(torch.full_like(layer.weight, float(step * step)))
        history.append(layer.weight.detach().clone())
        average.update(layer)
        if step == 1:
            assert torch.equal(average.state["weight"], history[0])
    betas = [(1 - 1 / j) ** (average.gamma + 1) for j in range(1, 8)]
    expected = torch.zeros_like(history[0])
    for k, weights in enumerate(history):
        share = (1 - betas[k]) * torch.tensor(betas[k + 1:]).prod()
        expected += share * weights
    torch.testing.assert_close(average.state["weight"], expected, rtol=1e-6, atol=0)
    assert torch.equal(average.state["bias"], torch.full_like(layer.bias, 0.3))
    assert average.state["weight"].max() < history[-1].max()  # an average, behind the last weights


def test_a_run_writes_the_average_and_resumes_it_exactly(shared_data: Path, tmp_path: Path) -> None:
    straight = load_config(None, tiny_train_overrides(shared_data, tmp_path / "straight", steps=6, ema_width=0.1,
                                                      schedule="constant"))
    Trainer(straight).run()
    checkpoint = torch.load(tmp_path / "straight" / "checkpoints" / "last.pt", weights_only=True)
    written = load_file(tmp_path / "straight" / "model.safetensors")
    average = checkpoint["weight_average"]["weights"]
    assert checkpoint["weight_average"]["updates"] == 6
    assert all(torch.equal(written[key], average[key].float()) for key in written)
    assert any(not torch.equal(average[key], checkpoint["model"][key]) for key in written)  # not the last weights
    exported = export_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt", tmp_path / "exported")
    assert all(torch.equal(load_file(exported)[key], written[key]) for key in written)

    # Three steps, then resumed to six: the same average as the straight run (the width does not depend on the
    # planned length, so a constant-rate run's snapshots stay the shorter runs' models).
    Trainer(straight.replace(steps=3, output_dir=str(tmp_path / "split"))).run()
    Trainer(straight.replace(output_dir=str(tmp_path / "split")), resume=True).run()
    resumed = load_file(tmp_path / "split" / "model.safetensors")
    for key in written:
        torch.testing.assert_close(resumed[key], written[key], rtol=0, atol=1e-6, msg=key)


def test_resuming_a_run_without_the_average_under_another_width_is_refused(shared_data: Path,
                                                                           tmp_path: Path) -> None:
    values = tiny_train_overrides(shared_data, tmp_path / "run", steps=2, ema_width=0.0)
    Trainer(load_config(None, values)).run()
    with pytest.raises(CheckpointError, match="'ema_width' was 0.0"):
        Trainer(load_config(None, {**values, "ema_width": 0.1, "steps": 3}), resume=True)


def test_a_config_saved_before_the_average_existed_reads_back_without_it(tmp_path: Path) -> None:
    """Run folders and model metadata written before ``ema_width`` existed were trained without an average: they
    read back as ``ema_width = 0`` (not today's default), so such a run resumes as it was trained."""
    config = load_config(None, {"style_image": "s.jpg", "data_dir": "d", "output_dir": str(tmp_path)})
    assert config.ema_width == 0.05  # today's default
    old = {key: value for key, value in config.to_dict().items() if key != "ema_width"}
    assert config_from_dict(old, "model.json").ema_width == 0.0
    saved = tmp_path / "checkpoints" / "config.toml"
    saved.parent.mkdir()
    saved.write_text("".join(line + "\n" for line in config_to_toml(config).splitlines()
                             if not line.startswith("ema_width")))
    assert load_run_config(tmp_path).ema_width == 0.0
    assert config_from_dict(config.to_dict(), "model.json").ema_width == 0.05  # a saved value is kept
