from pathlib import Path

import pytest
import torch

from fastnst.training.data import CropSpec, PhotoCrops, StepBatches, collate, split_holdout
from fastnst.utils.errors import DatasetError


def test_crops_are_a_pure_function_of_position(photo_dir: Path) -> None:
    a = PhotoCrops(photo_dir, CropSpec(32), seed=3, max_pixels=None)
    b = PhotoCrops(photo_dir, CropSpec(32), seed=3, max_pixels=None)
    for position in (0, 5, 17):
        crop, bad = a[position]
        assert crop.shape == (3, 32, 32) and not bad
        assert torch.equal(crop, b[position][0])
    other = PhotoCrops(photo_dir, CropSpec(32), seed=4, max_pixels=None)
    assert not torch.equal(a[0][0], other[0][0])


def test_every_epoch_visits_every_file_once(photo_dir: Path) -> None:
    data = PhotoCrops(photo_dir, CropSpec(32), seed=0, max_pixels=None)
    n = len(data.files)
    assert sorted(data.file_index(p) for p in range(n)) == list(range(n))
    assert sorted(data.file_index(p) for p in range(n, 2 * n)) == list(range(n))
    assert [data.file_index(p) for p in range(n)] != [data.file_index(p) for p in range(n, 2 * n)]


def test_corrupt_files_are_skipped_and_reported(photo_dir: Path) -> None:
    (photo_dir / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (photo_dir / "empty.png").write_bytes(b"")
    data = PhotoCrops(photo_dir, CropSpec(32), seed=0, max_pixels=None)
    seen_bad: set[str] = set()
    for position in range(2 * len(data.files)):
        crop, bad = data[position]
        assert crop.shape == (3, 32, 32)
        seen_bad.update(bad)
    assert {Path(p).name for p in seen_bad} == {"broken.jpg", "empty.png"}


def test_empty_or_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(DatasetError, match="holds no images"):
        PhotoCrops(tmp_path / "empty", CropSpec(32), seed=0, max_pixels=None)
    with pytest.raises(DatasetError, match="does not exist"):
        PhotoCrops(tmp_path / "missing", CropSpec(32), seed=0, max_pixels=None)


def test_ddp_sharding_is_disjoint_and_complete() -> None:
    ranks = [StepBatches(0, 5, batch_size=3, rank=r, world_size=2) for r in range(2)]
    for step in range(5):
        a, b = (r.positions(step) for r in ranks)
        assert not set(a) & set(b)
        assert sorted(a + b) == list(range(step * 6, step * 6 + 6))
    resumed = StepBatches(2, 5, batch_size=3, rank=1, world_size=2)
    assert list(resumed)[0] == ranks[1].positions(2)


def test_holdout_split() -> None:
    files = [Path(f"{i:02d}.jpg") for i in range(25)]
    train, held = split_holdout(files, 10)
    assert [f.name for f in held] == ["09.jpg", "19.jpg"]
    assert len(train) == 23 and not set(train) & set(held)
    assert split_holdout(files, 0) == (files, [])


def test_collate_stacks_and_merges_bad_paths() -> None:
    batch, bad = collate([(torch.zeros(3, 4, 4), ["a"]), (torch.ones(3, 4, 4), [])])
    assert batch.shape == (2, 3, 4, 4) and bad == ["a"]
