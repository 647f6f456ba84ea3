"""The stability loss (fastnst.training.stability), its wiring into the trainer, and the crop augmentation keys."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_train_overrides
from PIL import Image

from fastnst.model.transformer import TransformerNet, TransformerSpec
from fastnst.training.config import load_config
from fastnst.training.data import CropSpec, _generator, random_crop
from fastnst.training.stability import StabilitySpec, draw_perturbation, stability_loss, step_generator
from fastnst.training.trainer import StepReport, Trainer
from fastnst.utils.errors import CheckpointError, ConfigError
from fastnst.utils.images import image_to_tensor

REPO = Path(__file__).resolve().parents[2]


def photo_batch(size: int = 40, batch: int = 2) -> torch.Tensor:
    """Textured images in [0.2, 0.8], so pixel noise of a few hundredths is never clamped."""
    gen = torch.Generator().manual_seed(0)
    return 0.2 + 0.6 * torch.rand(batch, 3, size, size, generator=gen)


def loss_of(network, x: torch.Tensor, spec: StabilitySpec, step: int = 0) -> float:
    with torch.no_grad():
        return float(stability_loss(network, x, network(x), step_generator(0, step), spec))


def stride4_network(x: torch.Tensor) -> torch.Tensor:
    """Equivariant to shifts by multiples of 4 only, like the transform network's stride-4 grid."""
    return F.interpolate(F.avg_pool2d(x, 4), scale_factor=4, mode="nearest")


def test_zero_for_an_equivariant_network_positive_otherwise() -> None:
    x = photo_batch()
    shift_only = StabilitySpec(1.0, noise=0.0, shift=4)
    noisy = StabilitySpec(1.0, noise=0.02, shift=4)
    assert all(loss_of(lambda t: t, x, shift_only, step) == 0.0 for step in range(8))  # identity: shift-equivariant
    assert all(loss_of(torch.zeros_like, x, noisy, step) == 0.0 for step in range(8))  # constant: invariant to both
    # Identity passes the noise through: the loss is its variance, σ².
    assert sum(loss_of(lambda t: t, x, noisy, step) for step in range(4)) / 4 == pytest.approx(0.02**2, rel=0.05)
    # A stride-4 network is only hit by shifts off its grid; over 8 steps some draw is off it.
    assert max(loss_of(stride4_network, x, shift_only, step) for step in range(8)) > 1e-4
    torch.manual_seed(0)
    network = TransformerNet(TransformerSpec(width=8, residual_blocks=1)).eval()
    assert loss_of(network, x, shift_only) > 0 and loss_of(network, x, StabilitySpec(1.0, 0.02, 0)) > 0


def test_perturbation_is_a_pure_function_of_seed_step_rank() -> None:
    spec = StabilitySpec(1.0, noise=0.01, shift=6)
    shape = (2, 3, 48, 40)

    def draw(seed: int, step: int, rank: int = 0):
        return draw_perturbation(shape, spec, step_generator(seed, step, rank))

    first, again = draw(3, 17), draw(3, 17)
    assert (first.top, first.left) == (again.top, again.left) and torch.equal(first.noise, again.noise)
    for other in (draw(3, 18), draw(4, 17), draw(3, 17, rank=1)):
        assert not torch.equal(first.noise, other.noise)
    # The window is 8 px smaller (6 rounded up to the network's multiple of 4) and every shift 0…6 occurs.
    draws = [draw(0, step) for step in range(200)]
    assert {(d.height, d.width) for d in draws} == {(40, 32)}
    assert {d.top for d in draws} == set(range(7)) and {d.left for d in draws} == set(range(7))
    assert first.noise.std().item() == pytest.approx(0.01, rel=0.1)


def test_margin_leaves_the_window_edges_out_of_the_loss() -> None:
    x = photo_batch(size=40, batch=2)

    def frame_only(t: torch.Tensor) -> torch.Tensor:
        """Passes noise through only in a 5-px frame, as a padding effect would; the interior is constant."""
        out = torch.zeros_like(t)
        out[..., :5, :], out[..., -5:, :], out[..., :, :5], out[..., :, -5:] = (
            t[..., :5, :], t[..., -5:, :], t[..., :, :5], t[..., :, -5:])
        return out

    whole, inner = StabilitySpec(1.0, 0.02, 0), StabilitySpec(1.0, 0.02, 0, margin=5)
    assert loss_of(frame_only, x, whole) > 1e-5
    assert loss_of(frame_only, x, inner) == 0.0
    # With the identity, the margin only changes which pixels are averaged: the noise variance stays σ².
    assert loss_of(lambda t: t, x, inner) == pytest.approx(0.02**2, rel=0.1)
    with pytest.raises(ConfigError, match="stability_margin"):
        load_config(None, {"style_image": "s.jpg", "data_dir": "d", "image_size": 32, "stability_margin": 15})
    keys = {"style_image": "s.jpg", "data_dir": "d", "image_size": 32, "stability_margin": 14}
    assert load_config(None, keys).stability_margin == 14


def test_clean_output_is_a_fixed_target_unless_asked() -> None:
    x = photo_batch()
    gain = torch.nn.Parameter(torch.tensor(1.5))
    for clean_gradient in (False, True):
        clean = x.clone().requires_grad_(True)
        loss = stability_loss(lambda t: t * gain, x, clean, step_generator(0, 0),
                              StabilitySpec(1.0, 0.01, 4, clean_gradient=clean_gradient))
        loss.backward()
        assert (clean.grad is not None) == clean_gradient
        assert gain.grad is not None and float(gain.grad) != 0.0


def test_multi_style_network_under_autocast_gives_an_fp32_loss() -> None:
    torch.manual_seed(0)
    network = TransformerNet(TransformerSpec(width=8, residual_blocks=1, styles=2))
    with torch.no_grad():  # a fresh network's style rows are equal: make style 1 another style
        for norm in network.conditional_norms().values():
            norm.weight[1].mul_(2.0)
    x = photo_batch()
    losses = []
    for style in ([1.0, 0.0], [0.0, 1.0]):
        weights = torch.tensor([style] * x.shape[0])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = network(x, weights)
            loss = stability_loss(lambda t, w=weights: network(t, w), x, y, step_generator(0, 5),
                                  StabilitySpec(1.0, 0.01, 4))
        assert loss.dtype == torch.float32 and torch.isfinite(loss)
        loss.backward()
        losses.append(float(loss.detach()))
    assert losses[0] != losses[1]
    assert network.encoder[0][2].weight.grad is not None


# ------------------------------------------------------------------------------------------- crop keys


def test_default_keys_are_todays_crops() -> None:
    config = load_config(None, {"style_image": "s.jpg", "data_dir": "d"})
    assert CropSpec(config.image_size, config.crop_max_scale, config.hflip) == CropSpec(config.image_size)
    assert config.stability_weight == 0.0
    with pytest.raises(ConfigError, match="crop_max_scale"):
        load_config(None, {"style_image": "s.jpg", "data_dir": "d", "crop_max_scale": 0.5})
    with pytest.raises(ConfigError, match="stability_shift"):
        load_config(None, {"style_image": "s.jpg", "data_dir": "d", "image_size": 32, "stability_shift": 16})


def asymmetric_photo() -> Image.Image:
    gen = torch.Generator().manual_seed(1)
    array = (torch.rand(48, 64, 3, generator=gen) * 255).byte().numpy()  # 64 wide, 48 high
    return Image.fromarray(array)


def test_crop_max_scale_one_is_a_plain_crop() -> None:
    photo = asymmetric_photo()
    resized = image_to_tensor(photo.resize((43, 32), Image.BICUBIC, reducing_gap=3.0))[0]  # shorter side → 32
    windows = [resized[:, :, left : left + 32] for left in range(43 - 32 + 1)]
    for seed in range(6):
        crop = random_crop(photo, CropSpec(32, max_upscale_ratio=1.0, hflip=False), _generator(seed, 2, 0))
        assert any(torch.equal(crop, window) for window in windows), seed
    scaled = [random_crop(photo, CropSpec(32, 1.5, hflip=False), _generator(seed, 2, 0)) for seed in range(6)]
    assert not all(any(torch.equal(crop, window) for window in windows) for crop in scaled)


def test_hflip_false_never_flips_and_cuts_the_same_crops() -> None:
    photo = asymmetric_photo()
    flipped = 0
    for seed in range(12):
        plain = random_crop(photo, CropSpec(32, hflip=False), _generator(seed, 2, 0))
        maybe = random_crop(photo, CropSpec(32), _generator(seed, 2, 0))
        assert torch.equal(maybe, plain) or torch.equal(maybe, plain.flip(-1))
        flipped += not torch.equal(maybe, plain)
    assert 0 < flipped < 12


# ------------------------------------------------------------------------------------------- the trainer


def test_trainer_wires_the_crop_keys(shared_data: Path, tmp_path: Path) -> None:
    config = load_config(None, tiny_train_overrides(shared_data, tmp_path / "run", crop_max_scale=1.0,
                                                    hflip=False))
    assert Trainer(config).dataset.crop == CropSpec(64, 1.0, False)


def test_stability_run_logs_its_loss_and_resumes_exactly(shared_data: Path, tmp_path: Path) -> None:
    """4 steps straight vs 2 steps, then resumed to 4: the same weights, with the stability loss in the step."""
    values = tiny_train_overrides(shared_data, tmp_path / "straight", steps=4, checkpoint_every=2,
                                  schedule="constant", stability_weight=1e8)
    reports: list[StepReport] = []
    Trainer(load_config(None, values), on_step=reports.append).run()
    assert all(report.losses["stability"] > 0 for report in reports)
    assert reports[-1].losses["total"] == pytest.approx(
        sum(reports[-1].losses[k] for k in ("content", "style", "tv", "stability")), rel=1e-5)

    split = {**values, "output_dir": str(tmp_path / "split")}
    Trainer(load_config(None, {**split, "steps": 2})).run()
    Trainer(load_config(None, split), resume=True).run()
    straight = torch.load(tmp_path / "straight" / "checkpoints" / "last.pt", weights_only=True)["model"]
    resumed = torch.load(tmp_path / "split" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(straight[key], resumed[key]) for key in straight)

    plain = {**values, "output_dir": str(tmp_path / "plain"), "stability_weight": 0.0}
    Trainer(load_config(None, plain)).run()
    without = torch.load(tmp_path / "plain" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert any(not torch.equal(straight[key], without[key]) for key in straight)  # the term changes training
    with pytest.raises(CheckpointError, match="'stability_weight' was 100000000.0"):
        Trainer(load_config(None, {**split, "stability_weight": 1e7}), resume=True)


def test_multi_style_training_with_stability(shared_data: Path, tmp_path: Path) -> None:
    styles = shared_data / "styles"
    paintings = sorted(styles.glob("*.jpg"))[:2]
    values = tiny_train_overrides(shared_data, tmp_path / "multi", steps=2, stability_weight=1e8,
                                  style_images=tuple(str(p) for p in paintings))
    del values["style_image"]
    reports: list[StepReport] = []
    Trainer(load_config(None, values), on_step=reports.append).run()
    assert all(report.losses["stability"] > 0 for report in reports)


@pytest.mark.ddp
def test_stability_under_torchrun_two_cpu_processes(shared_data: Path, tmp_path: Path) -> None:
    """DDP with the extra forward pass: both passes' gradients reach the reducer and the run finishes."""
    values = tiny_train_overrides(shared_data, tmp_path / "ddp", steps=4, device="cpu", stability_weight=1e8)
    args = [f"--{key.replace('_', '-')}={value}" for key, value in values.items() if not isinstance(value, bool)]
    args += ["--no-tensorboard"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "fastnst.cli", "-q", "train", *args],
                          capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    payload = torch.load(tmp_path / "ddp" / "checkpoints" / "last.pt", weights_only=True)
    assert payload["step"] == 4 and payload["recent_losses"]["stability"] > 0
