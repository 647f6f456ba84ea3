"""The file pipeline behind ``fastnst stylize`` and :meth:`fastnst.Model.stylize_paths`: one code path, so the
command line and the Python API write the same pixels.

Inputs (files and folders, images and videos) are planned into jobs by :mod:`fastnst.runtime.plan`, which checks
every target before any model is loaded or any pixel is stylized. Each job then runs whole or in tiles, with the
mirrored margin and the colour controls, and is written atomically. With several jobs a failing one is collected
and reported to the :class:`Reporter` and the rest go on; a single job raises. Nothing here prints.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from fastnst.model.transformer import TransformerNet
from fastnst.runtime.base import Backend
from fastnst.runtime.color import Controls, PreserveColor
from fastnst.runtime.margin import DEFAULT_MARGIN
from fastnst.runtime.plan import Job, plan_jobs
from fastnst.runtime.tiling import DEFAULT_OVERLAP, stylize_image, too_large_for_whole
from fastnst.runtime.video import (
    DEFAULT_BATCH,
    TemporalBlend,
    is_video,
    probe_video,
    stylize_video_file,
)
from fastnst.utils.errors import FastNSTError
from fastnst.utils.images import (
    DEFAULT_MAX_PIXELS,
    load_image,
    save_image,
)

Runner = Backend | TransformerNet
"""What stylizes a batch: any runtime :class:`~fastnst.runtime.base.Backend`, or a bare TransformerNet."""


@dataclass(frozen=True)
class StylizeOptions:
    """Everything besides the model that shapes a result; the CLI's flags and the API's keywords map onto it.

    ``tile`` 0 = automatic (the whole image when it fits the memory budget, else tiles), a positive size forces
    tiles; ``max_pixels`` caps decoded files and video frames (None = no cap); ``flicker`` and ``batch_size``
    apply to videos.
    """

    strength: float = 1.0
    preserve_color: PreserveColor = "none"
    margin: int = DEFAULT_MARGIN
    tile: int = 0
    overlap: int = DEFAULT_OVERLAP
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    flicker: float = 0.0
    batch_size: int = DEFAULT_BATCH

    def __post_init__(self) -> None:
        if self.max_pixels is not None and self.max_pixels < 1:
            raise FastNSTError(f"max_pixels must be positive, got {self.max_pixels}", setting="max_pixels")
        for name in ("tile", "overlap", "margin"):
            if getattr(self, name) < 0:
                raise FastNSTError(f"{name} must be 0 or more pixels, got {getattr(self, name)}", setting=name)
        if self.batch_size < 1:
            raise FastNSTError(f"batch_size must be 1 or more, got {self.batch_size}", setting="batch_size")
        self.controls  # noqa: B018 - checks strength and preserve_color
        TemporalBlend(self.flicker)  # checks its range

    @property
    def controls(self) -> Controls:
        return Controls(self.strength, self.preserve_color)


class Reporter:
    """What the pipeline tells its caller as it works; every hook does nothing unless overridden.

    The CLI draws progress bars and prints skipped files from these; API callers may pass their own.
    """

    def planned(self, jobs: Sequence[Job]) -> None:
        """Every job is planned and checked; none has run yet."""

    def job_started(self, job: Job, frames: int | None) -> None:
        """A job begins; ``frames`` is a video's frame count from its header (None for images or when unknown)."""

    def frames_done(self, job: Job, count: int) -> None:
        """``count`` more frames of a video were written."""

    def job_failed(self, job: Job, error: FastNSTError) -> None:
        """A job of several failed; the others go on and the failure is in the summary."""

    def job_finished(self, job: Job, written: Path | None) -> None:
        """A job is over: ``written`` is its output, or None when it failed (called after :meth:`job_failed`)."""


@dataclass
class Summary:
    """What a pipeline run did."""

    jobs: list[Job]
    written: list[Path] = field(default_factory=list)
    failures: list[tuple[Job, FastNSTError]] = field(default_factory=list)
    skipped: list[Job] = field(default_factory=list)
    """Jobs left alone because their output already existed (``skip_existing``); not in ``jobs``."""

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def as_png(self) -> list[Job]:
        """The jobs whose input format cannot be written, so their results are PNGs."""
        return [job for job in self.jobs if job.as_png]


def needs_torch(sources: Sequence[Path | tuple[int, int]], options: StylizeOptions) -> bool:
    """Whether these inputs need the PyTorch network: tiles are asked for, or an image (a file, or a (width,
    height)) is too large to stylize whole. Tiles use whole-image norm statistics, which only it can run."""
    if options.tile > 0:
        return True
    return any(not (isinstance(source, Path) and is_video(source))
               and too_large_for_whole(source, options.max_pixels) for source in sources)


def backend_for(requested: str, wants_torch: bool) -> str:
    """The backend to load: ``requested``, except ``"auto"`` becomes ``"torch"`` when the work needs the PyTorch
    network (:func:`needs_torch`); an explicit choice stands and the pipeline reports what it cannot do."""
    return "torch" if wants_torch and requested == "auto" else requested


def stylize_tensor(runner: Runner, image: torch.Tensor) -> torch.Tensor:
    """[N,3,H,W] in [0,1] → stylized [N,3,H,W] in [0,1] on the CPU, through a backend (or the bare network)."""
    if isinstance(runner, TransformerNet):
        with torch.inference_mode():
            device = next(runner.parameters()).device
            return runner(image.to(device)).float().clamp_(0, 1).cpu()
    return runner.stylize(image)


def stylize_picture(runner: Runner, image: Image.Image, options: StylizeOptions | None = None) -> Image.Image:
    """Stylize one RGB image in memory, whole or in tiles, with the margin and colour controls of ``options``."""
    options = options or StylizeOptions()
    return stylize_image(runner, image, tile=options.tile or None, overlap=options.overlap,
                         controls=options.controls, margin=options.margin)


def stylize_file(runner: Runner, source: Path, target: Path, options: StylizeOptions | None = None) -> Path:
    """Stylize one image file into ``target``; transparency is carried over where the output format stores it."""
    options = options or StylizeOptions()
    loaded = load_image(source, max_pixels=options.max_pixels)
    return save_image(stylize_picture(runner, loaded.rgb, options), target, alpha=loaded.alpha)


def run_job(runner: Runner, job: Job, options: StylizeOptions, reporter: Reporter | None = None) -> Path:
    """Stylize one planned job, image or video; ``reporter`` hears when it starts and each video batch."""
    reporter = reporter or Reporter()
    if not is_video(job.source):
        reporter.job_started(job, None)
        return stylize_file(runner, job.source, job.target, options)
    reporter.job_started(job, probe_video(job.source).frames)
    return stylize_video_file(runner, job.source, job.target, flicker=options.flicker,
                              batch_size=options.batch_size, controls=options.controls,
                              max_pixels=options.max_pixels, margin=options.margin,
                              progress=lambda count: reporter.frames_done(job, count))


def run_jobs(runner: Runner, jobs: Sequence[Job], options: StylizeOptions | None = None, *,
             reporter: Reporter | None = None, keep_going: bool | None = None) -> Summary:
    """Run every job through ``runner``. ``keep_going`` (default: when there are several jobs) collects a failed
    job's error and goes on; otherwise the error is raised."""
    options = options or StylizeOptions()
    reporter = reporter or Reporter()
    keep_going = len(jobs) > 1 if keep_going is None else keep_going
    summary = Summary(jobs=list(jobs))
    for job in jobs:
        written = None
        try:
            written = run_job(runner, job, options, reporter)
            summary.written.append(written)
        except FastNSTError as exc:
            if not keep_going:
                raise
            summary.failures.append((job, exc))
            reporter.job_failed(job, exc)
        finally:
            reporter.job_finished(job, written)
    return summary


def unfinished_jobs(jobs: Sequence[Job], skip_existing: bool) -> tuple[list[Job], list[Job]]:
    """(jobs to run, jobs skipped): with ``skip_existing`` a job whose target exists is done. Every output is
    written atomically, so an existing target is a complete file and a stopped run resumes where it was."""
    if not skip_existing:
        return list(jobs), []
    return [job for job in jobs if not job.target.exists()], [job for job in jobs if job.target.exists()]


RunnerFor = Callable[[bool], Runner]
"""Gives the runner for a set of jobs, told whether they need the PyTorch network (:func:`needs_torch`)."""


def stylize_paths(runner_for: RunnerFor, inputs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str],
                  *, out_format: str | None = None, options: StylizeOptions | None = None,
                  reporter: Reporter | None = None, keep_going: bool | None = None,
                  overwrite: bool = False, skip_existing: bool = False) -> Summary:
    """The whole file pipeline: plan and check every job, get the runner, stylize each job (see :func:`run_jobs`).

    ``runner_for`` is called after the plan is checked, so a bad input or output fails before a model is loaded
    (and not at all when ``skip_existing`` finds every output there); ``overwrite`` lets a named input file be
    replaced by its own result (see :func:`plan_jobs`); ``skip_existing`` leaves alone the jobs whose output
    exists (see :func:`unfinished_jobs`).
    """
    options = options or StylizeOptions()
    jobs = plan_jobs(inputs, output, out_format, overwrite=overwrite)
    keep_going = len(jobs) > 1 if keep_going is None else keep_going
    todo, skipped = unfinished_jobs(jobs, skip_existing)
    if reporter is not None:
        reporter.planned(todo)
    if not todo:
        return Summary(jobs=[], skipped=skipped)
    runner = runner_for(needs_torch([job.source for job in todo], options))
    summary = run_jobs(runner, todo, options, reporter=reporter, keep_going=keep_going)
    summary.skipped = skipped
    return summary
