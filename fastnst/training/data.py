"""Training photos: a folder searched recursively, random crops that are a pure function of (seed, position).

Determinism is what makes ``--resume`` exact: sample number k of the run always maps to the same file and the
same crop, whichever worker loads it and whether or not the run was interrupted. Under DDP, step s of rank r
takes positions [(s·W + r)·B, (s·W + r + 1)·B), so ranks never see the same sample within a step.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from fastnst.utils.errors import DatasetError, ImageError
from fastnst.utils.images import image_to_tensor, list_images, load_rgb

# How many other files to try when one is unreadable, before giving up on this sample.
_MAX_REPLACEMENTS = 16


@dataclass(frozen=True)
class CropSpec:
    size: int
    max_upscale_ratio: float = 1.5  # shorter side is resized to size × U[1, this] (bounded by the photo's size)
    hflip: bool = True  # flip half of the crops left-right


def _generator(seed: int, *keys: int) -> torch.Generator:
    gen = torch.Generator()
    value = seed & 0xFFFFFFFF
    for key in keys:
        value = (value * 6364136223846793005 + key + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
    gen.manual_seed(value)
    return gen


def random_crop(image: Image.Image, spec: CropSpec, gen: torch.Generator) -> torch.Tensor:
    """Resize so the shorter side is ≥ ``spec.size`` (random scale), random crop, random flip → [3, S, S].

    The flip's coin is drawn even when ``spec.hflip`` is off, so both settings cut the same crops."""
    w, h = image.size
    short = min(w, h)
    upper = max(1.0, min(spec.max_upscale_ratio, short / spec.size))
    scale = 1.0 + (upper - 1.0) * float(torch.rand((), generator=gen))
    target_short = max(spec.size, round(spec.size * scale))
    ratio = target_short / short
    new_w, new_h = max(spec.size, round(w * ratio)), max(spec.size, round(h * ratio))
    image = image.resize((new_w, new_h), Image.BICUBIC, reducing_gap=3.0)
    left = int(torch.randint(0, new_w - spec.size + 1, (), generator=gen))
    top = int(torch.randint(0, new_h - spec.size + 1, (), generator=gen))
    crop = image.crop((left, top, left + spec.size, top + spec.size))
    tensor = image_to_tensor(crop)[0]
    if bool(torch.rand((), generator=gen) < 0.5) and spec.hflip:
        tensor = tensor.flip(-1)
    return tensor


def split_holdout(files: Sequence[Path], holdout_every: int) -> tuple[list[Path], list[Path]]:
    """(training files, held-out files): every ``holdout_every``-th file of the sorted list is held out."""
    if holdout_every <= 0:
        return list(files), []
    train = [f for i, f in enumerate(files) if i % holdout_every != holdout_every - 1]
    held = [f for i, f in enumerate(files) if i % holdout_every == holdout_every - 1]
    return train, held


def find_photos(folder: str | os.PathLike[str]) -> list[Path]:
    """All images under ``folder`` (sorted), or a DatasetError saying why there are none."""
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"training folder {root} does not exist or is not a folder")
    files = list_images(root, recursive=True)
    if not files:
        raise DatasetError(f"training folder {root} holds no images (searched recursively for jpg/png/…)")
    return files


class PhotoCrops(Dataset):
    """Indexed by global sample position; returns (crop [3,S,S], paths of unreadable files skipped)."""

    def __init__(self, folder: str | os.PathLike[str], crop: CropSpec, seed: int, max_pixels: int | None,
                 holdout_every: int = 0) -> None:
        self.files, self.held_out = split_holdout(find_photos(folder), holdout_every)
        if not self.files:
            raise DatasetError(f"training folder {folder} holds no images after holding out every "
                               f"{holdout_every}th one")
        self.crop = crop
        self.seed = seed
        self.max_pixels = max_pixels

    def __len__(self) -> int:  # positions are unbounded; the length is the size of one epoch
        return len(self.files)

    def file_index(self, position: int) -> int:
        """File shown at a global position: a fresh seeded permutation of the files every epoch."""
        epoch, offset = divmod(position, len(self.files))
        perm = torch.randperm(len(self.files), generator=_generator(self.seed, 1, epoch))
        return int(perm[offset])

    def __getitem__(self, position: int) -> tuple[torch.Tensor, list[str]]:
        bad: list[str] = []
        index = self.file_index(position)
        for attempt in range(_MAX_REPLACEMENTS):
            path = self.files[(index + attempt * 7919) % len(self.files)]
            try:
                image = load_rgb(path, max_pixels=self.max_pixels)
            except ImageError:
                bad.append(str(path))
                continue
            return random_crop(image, self.crop, _generator(self.seed, 2, position)), bad
        raise DatasetError(f"{_MAX_REPLACEMENTS} consecutive unreadable images in {self.files[index].parent}")


def draw_styles(seed: int, step: int, batch_size: int, styles: int, rank: int = 0, world_size: int = 1) -> list[int]:
    """The style (0 … ``styles``-1) of each sample this rank trains at ``step``.

    The step's global batch (every rank's samples in rank order) walks a fresh seeded permutation of the styles
    cyclically, so each style appears ⌊B·W/S⌋ or ⌈B·W/S⌉ times per step, which ones get the extra sample changes
    from step to step, and the draw is a pure function of (seed, step): a resumed run draws what it would have.
    """
    order = torch.randperm(styles, generator=_generator(seed, 3, step)).tolist()
    first = rank * batch_size
    return [order[(first + index) % styles] for index in range(batch_size)]


class StepBatches:
    """Batch sampler: for each step from ``start_step``, the positions this rank loads."""

    def __init__(self, start_step: int, steps: int, batch_size: int, rank: int = 0, world_size: int = 1) -> None:
        self.start_step, self.steps = start_step, steps
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size

    def positions(self, step: int) -> list[int]:
        first = (step * self.world_size + self.rank) * self.batch_size
        return list(range(first, first + self.batch_size))

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start_step, self.steps):
            yield self.positions(step)

    def __len__(self) -> int:
        return max(0, self.steps - self.start_step)


def collate(items: Sequence[tuple[torch.Tensor, list[str]]]) -> tuple[torch.Tensor, list[str]]:
    return torch.stack([item[0] for item in items]), [path for item in items for path in item[1]]


def make_loader(dataset: PhotoCrops, batches: StepBatches, num_workers: int, pin_memory: bool) -> DataLoader:
    """A DataLoader over exactly the remaining steps, in order."""
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=num_workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        persistent_workers=False,
        prefetch_factor=4 if num_workers > 0 else None,
    )
