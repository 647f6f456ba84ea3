"""Stylize image files and folders with a trained transform network through any backend, whole image at once."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from fastnst.utils.errors import FastNSTError, ImageError
from fastnst.utils.images import DEFAULT_MAX_PIXELS, check_output_path, list_images, load_image, save_image
from fastnst.runtime.base import Backend
from fastnst.runtime.color import Controls
from fastnst.runtime.margin import DEFAULT_MARGIN
from fastnst.runtime.tiling import DEFAULT_OVERLAP, stylize_image
from fastnst.runtime.video import VIDEO_EXTENSIONS, check_video_output, is_video
from fastnst.model.transformer import TransformerNet


@dataclass(frozen=True)
class Job:
    """One input file and where its result goes."""

    source: Path
    target: Path


def plan_jobs(inputs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str],
              out_format: str | None = None) -> list[Job]:
    """Map inputs (files and folders) to output paths, checking everything before any work is done.

    One input file and an output with an image extension → that file. Otherwise the output is a folder and each
    result keeps its name (and its sub-folder, for folder inputs) with the input's or ``out_format``'s extension.
    """
    if not inputs:
        raise FastNSTError("no input images given")
    output_arg = output
    output = Path(output)
    sources: list[tuple[Path, Path]] = []  # (file, path relative to the output folder)
    for item in map(Path, inputs):
        if item.is_dir():
            found = list_images(item, recursive=True)
            if not found:
                raise ImageError(f"{item} holds no images")
            sources += [(path, path.relative_to(item)) for path in found]
        elif item.is_file() or not item.exists():
            if not item.exists():
                raise ImageError(f"{item} does not exist")
            sources.append((item, Path(item.name)))
        else:
            raise ImageError(f"{item} is neither a file nor a folder")

    suffix = f".{out_format.lower().lstrip('.')}" if out_format else None
    # One input file and an output that looks like a file name (has an extension, is no folder, no trailing
    # slash) → that file; an unknown extension is then an error rather than a surprise folder.
    names_folder = output.is_dir() or str(output_arg).endswith(("/", os.sep)) or not output.suffix
    single_file = len(sources) == 1 and not Path(inputs[0]).is_dir() and not names_folder
    if single_file:
        _check_target(sources[0][0], output)
        return [Job(sources[0][0], output)]
    if output.exists() and not output.is_dir():
        raise ImageError(f"output {output} is a file, but several inputs need an output folder")
    # Videos keep their container: --format names an image format.
    jobs = [Job(src, (output / rel).with_suffix(rel.suffix if is_video(src) else suffix or rel.suffix))
            for src, rel in sources]
    for job in jobs:
        _check_target(job.source, job.target)
    targets = [job.target for job in jobs]
    if len(set(targets)) != len(targets):
        raise FastNSTError("two inputs would write the same output file; stylize them into separate folders")
    return jobs


def _check_target(source: Path, target: Path) -> None:
    """Images go to image files and videos to video files; either is checked before any work is done."""
    if is_video(source) and not is_video(target):
        raise FastNSTError(f"{source} is a video, so {target} needs a video extension "
                           f"({', '.join(sorted(VIDEO_EXTENSIONS))})")
    if is_video(target) and not is_video(source):
        raise FastNSTError(f"{source} is an image, so {target} needs an image extension, not {target.suffix}")
    if is_video(target):
        check_video_output(target)
    else:
        check_output_path(target)


Runner = Backend | TransformerNet
"""What stylizes a batch: any runtime :class:`~fastnst.runtime.base.Backend`, or a bare TransformerNet."""


def stylize_tensor(runner: Runner, image: torch.Tensor) -> torch.Tensor:
    """[N,3,H,W] in [0,1] → stylized [N,3,H,W] in [0,1] on the CPU, through a backend (or the bare network)."""
    if isinstance(runner, TransformerNet):
        with torch.inference_mode():
            device = next(runner.parameters()).device
            return runner(image.to(device)).float().clamp_(0, 1).cpu()
    return runner.stylize(image)


def stylize_file(runner: Runner, source: Path, target: Path, *,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS, tile: int | None = None,
                 overlap: int = DEFAULT_OVERLAP, controls: Controls | None = None,
                 margin: int = DEFAULT_MARGIN) -> Path:
    """Stylize one file; transparency is carried over where the output format supports it.

    ``tile``/``overlap``/``controls``/``margin``: see :func:`fastnst.runtime.tiling.stylize_image` (tile None/0 =
    the whole image when it fits the memory budget, else exact tiles).
    """
    loaded = load_image(source, max_pixels=max_pixels)
    result: Image.Image = stylize_image(runner, loaded.rgb, tile=tile, overlap=overlap, controls=controls,
                                        margin=margin)
    return save_image(result, target, alpha=loaded.alpha)


def stylize_paths(runner: Runner, inputs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str],
                  *, out_format: str | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                  on_done: Callable[[Job], None] | None = None) -> list[Path]:
    """Stylize every input into ``output``; returns the written paths."""
    written = []
    for job in plan_jobs(inputs, output, out_format):
        written.append(stylize_file(runner, job.source, job.target, max_pixels=max_pixels))
        if on_done is not None:
            on_done(job)
    return written
