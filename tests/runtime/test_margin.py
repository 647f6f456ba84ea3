"""The mirrored margin: exact bookkeeping, and on a shipped model it removes the dark edge it exists for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from fastnst.model.files import load_model
from fastnst.runtime.margin import (
    DEFAULT_MARGIN,
    add_image_margin,
    add_margin,
    crop_image_margin,
    crop_margin,
    margin_for,
    with_margin,
)
from fastnst.runtime.tiling import stylize_image
from fastnst.training.quality import heldout_photos, load_eval_image, luminance

REPO = Path(__file__).resolve().parents[2]


def darken_edges(batch: torch.Tensor, width: int = 4) -> torch.Tensor:
    """A stand-in for a trained network's artifact: the outer ``width`` px of its input come out darker."""
    out = batch.clone()
    out[..., :width, :] *= 0.5
    out[..., -width:, :] *= 0.5
    out[..., :, :width] *= 0.5
    out[..., :, -width:] *= 0.5
    return out


def test_margin_round_trip_and_small_images() -> None:
    batch = torch.rand(2, 3, 20, 30)
    padded, used = add_margin(batch, 8)
    assert used == 8 and padded.shape == (2, 3, 36, 46)
    assert torch.equal(crop_margin(padded, used), batch)
    assert torch.equal(padded[..., 8 - 1, 8:-8], batch[..., 1, :])  # reflection, not replication
    assert margin_for(5, 40, 32) == 4  # reflection needs fewer pixels than the side it mirrors
    assert add_margin(batch[..., :1, :], 8)[1] == 0
    assert add_margin(batch, 0) == (batch, 0)
    with pytest.raises(ValueError, match="margin"):
        margin_for(10, 10, -1)


def test_image_margin_matches_tensor_margin() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (24, 18, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    padded, used = add_image_margin(image, 6)
    tensor = torch.from_numpy(pixels).permute(2, 0, 1)[None].float()
    expected = add_margin(tensor, 6)[0][0].permute(1, 2, 0).numpy().astype(np.uint8)
    assert used == 6 and np.array_equal(np.asarray(padded), expected)
    assert np.array_equal(np.asarray(crop_image_margin(padded, used)), pixels)


def test_margin_moves_an_edge_artifact_out_of_the_result() -> None:
    batch = torch.rand(1, 3, 32, 32) * 0.5 + 0.25
    assert not torch.equal(darken_edges(batch), batch)  # the artifact shows without a margin
    assert torch.equal(with_margin(darken_edges, 4)(batch), batch)  # and is cropped away with one
    assert with_margin(darken_edges, 0) is darken_edges


def test_stylize_image_applies_the_margin_by_default() -> None:
    image = Image.fromarray(np.full((40, 48, 3), 200, dtype=np.uint8))
    plain = np.asarray(stylize_image(darken_edges, image, margin=0))
    framed = np.asarray(stylize_image(darken_edges, image))
    assert plain[0, 24, 0] == 100 and plain[20, 24, 0] == 200
    assert (framed == 200).all()


def test_cli_default_is_the_library_default() -> None:
    done = subprocess.run([sys.executable, "-m", "fastnst.cli", "stylize", "--help"], capture_output=True,
                          text=True, check=True, cwd=REPO)
    assert f"[default: {DEFAULT_MARGIN}]" in " ".join(done.stdout.split())


def test_margin_removes_the_dark_edge_of_a_shipped_model(shared_data: Path) -> None:
    """starry_night darkens pixels at its input's edge; with the default margin the same pixels stylized at a
    crop's edge match the whole image's far more closely (measured in full by benchmarks/border_margin.py)."""
    torch.set_num_threads(2)
    model = load_model(REPO / "models" / "starry_night", device="cpu")[0].eval()
    photos = [load_eval_image(path, 256) for path in heldout_photos(shared_data / "photos", 10)[:4]]

    def run(batch: torch.Tensor) -> torch.Tensor:
        return model(batch).clamp(0, 1)

    def edge_shift(margin: int) -> float:
        """Mean luma of (crop result − whole result) over the crop's outer 2 px, across the photos."""
        shifts = []
        with torch.inference_mode():
            for photo in photos:
                whole = run(photo)[..., 64:-64, 64:-64]
                crop = with_margin(run, margin)(photo[..., 64:-64, 64:-64])
                diff = luminance(crop) - luminance(whole)
                ring = torch.ones_like(diff, dtype=torch.bool)
                ring[2:-2, 2:-2] = False
                shifts.append(float(diff[ring].mean() - diff[~ring].mean()))
        return sum(shifts) / len(shifts)

    without, with_default = edge_shift(0), edge_shift(DEFAULT_MARGIN)
    print(f"edge luma shift: {without:+.3f} without a margin, {with_default:+.3f} with {DEFAULT_MARGIN} px")
    # Measured (256 px, these 4 photos): −0.057 without a margin, +0.022 with the default; deterministic on the CPU.
    assert without < -0.04  # the artifact is there to remove
    assert abs(with_default) < abs(without) / 2


def test_margin_reaches_the_padded_network_not_the_output_size() -> None:
    seen: list[tuple[int, ...]] = []

    def record(batch: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(batch.shape))
        return F.avg_pool2d(F.pad(batch, (1, 1, 1, 1), mode="replicate"), 3, stride=1)

    out = with_margin(record, 10)(torch.rand(1, 3, 30, 40))
    assert seen == [(1, 3, 50, 60)] and out.shape == (1, 3, 30, 40)
