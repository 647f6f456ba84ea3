"""Batch stylization on Ray Data: the file pipeline of ``fastnst stylize`` spread over a pool of actors, and a
stylize step for Ray Datasets (a stylized copy of a photo dataset, for data augmentation).

The driver plans and checks every job with :func:`fastnst.runtime.plan.plan_jobs`, as a local run does, before Ray
is joined. Each actor loads one backend once and runs :func:`fastnst.runtime.pipeline.run_job`, the function the
local pipeline runs, so the files are byte-identical to a local run's. Every write is atomic and a job always writes
the same file, so when an actor dies Ray restarts it and runs its batch again, leaving no partial file and every
output written. Inputs, outputs and the model must be visible to every worker (one machine, or a shared file
system), with fastnst installed there. Ray is imported only when a function runs
(:func:`fastnst.utils.ray_cluster.require_ray` names the extra when it is missing).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from fastnst.model.files import find_model
from fastnst.model.mixing import Mix
from fastnst.runtime import pipeline
from fastnst.runtime.base import Backend
from fastnst.runtime.pipeline import Reporter, StylizeOptions, Summary, backend_for, needs_torch, unfinished_jobs
from fastnst.runtime.plan import Job, plan_jobs
from fastnst.utils import errors
from fastnst.utils.atomic import remove_leftover_temporaries
from fastnst.utils.errors import CheckpointError, FastNSTError, ImageError
from fastnst.utils.ray_cluster import connect, require_ray

if TYPE_CHECKING:
    import ray.data

PathLike = str | os.PathLike[str]

JOB_DELAY_ENV = "FASTNST_BATCH_JOB_DELAY_S"
"""Seconds each file job waits in its actor before it runs (unset: none); fault-tolerance tests set it through
the actors' ``runtime_env`` so that killing an actor lands mid-job."""

MAX_BLOCKS = 1000
"""File jobs go to Ray in at most this many blocks: one job per block up to it, so progress comes back per job and
a killed actor's retry redoes one job; beyond it, blocks share jobs to bound Ray's bookkeeping."""


def stylize_paths_on_ray(model: PathLike, inputs: Sequence[PathLike], output: PathLike, *,
                         out_format: str | None = None, options: StylizeOptions | None = None,
                         backend: str = "auto", precision: str = "auto", device: str = "auto",
                         compile: bool = False, style: str | None = None, mix: Mix | None = None,
                         workers: int = 1, worker_cpus: float = 1.0,
                         worker_gpus: float | None = None, skip_existing: bool = False, overwrite: bool = False,
                         address: str | None = None, reporter: Reporter | None = None,
                         keep_going: bool | None = None,
                         map_options: dict[str, Any] | None = None) -> Summary:
    """Stylize files and folders as ``fastnst stylize`` does, as a Ray Data job over ``workers`` actors.

    ``model``, ``backend``, ``precision``, ``device``, ``compile``, ``style`` and ``mix`` are
    :func:`fastnst.load`'s; inputs,
    ``output``, ``out_format``, ``options`` and ``overwrite`` are planned and checked as in a local run, before Ray
    is joined. ``skip_existing`` drops the jobs whose output exists (a stopped job resumes). ``address`` is
    ``"auto"``, ``"HOST:PORT"`` or ``"ray://HOST:PORT"`` (None: join this process's Ray, else start a local
    instance). Each actor reserves ``worker_cpus`` CPUs (its thread count) and ``worker_gpus`` GPUs (default: 1
    for ``device="cuda"``, else 0); ``map_options`` are more keywords for ``Dataset.map_batches`` (``resources``,
    ``accelerator_type``, ``runtime_env``...).
    ``reporter`` hears ``planned`` and, as results come back, ``job_failed`` / ``job_finished``. A failed file is
    collected in the summary and the rest go on (``keep_going``, default: when several jobs were planned).
    """
    if workers < 1:
        raise FastNSTError(f"workers must be 1 or more, got {workers}", setting="workers")
    if worker_cpus <= 0:
        raise FastNSTError(f"worker_cpus must be positive, got {worker_cpus}", setting="worker_cpus")
    require_ray()
    options = options or StylizeOptions()
    reporter = reporter or Reporter()
    jobs = plan_jobs(inputs, output, out_format, overwrite=overwrite)
    keep_going = len(jobs) > 1 if keep_going is None else keep_going
    todo, skipped = unfinished_jobs(jobs, skip_existing)
    summary = Summary(jobs=todo, skipped=skipped)
    if not todo:
        reporter.planned(todo)
        return summary
    runner_args = {"model": _model_reference(model), "precision": precision, "device": device, "compile": compile,
                   "threads": _threads(worker_cpus), "style": style, "mix": dict(mix) if mix else None,
                   "backend": backend_for(backend, needs_torch([job.source for job in todo], options))}
    ray = connect(address, num_cpus=max(os.cpu_count() or 1, math.ceil(workers * worker_cpus)))
    reporter.planned(todo)  # after Ray's start-up, which logs lines of its own
    rows = [{"index": index, "source": str(job.source.absolute()), "target": str(job.target.absolute()),
             "as_png": job.as_png} for index, job in enumerate(todo)]
    outcomes: dict[int, FastNSTError | None] = {}
    with _own_progress(ray), _one_line_errors():
        pool = _pool(ray, min(workers, len(rows)), worker_cpus, worker_gpus, device, map_options)
        dataset = ray.data.from_items(rows, override_num_blocks=min(len(rows), MAX_BLOCKS)).map_batches(
            _FileJobRunner, fn_constructor_kwargs={**runner_args, "options": options}, batch_size=1,
            batch_format="numpy", **pool)
        try:
            for row in dataset.iter_rows():
                index = int(row["index"])
                job = todo[index]
                error = _rebuilt(str(row["error_type"]), str(row["error"]), todo[index], rows[index])
                outcomes[index] = error
                if error is not None:
                    if not keep_going:
                        raise error
                    reporter.job_failed(job, error)
                reporter.job_finished(job, None if error else job.target)
        finally:  # a worker killed mid-write (and retried) leaves its temporary file behind
            remove_leftover_temporaries(job.target for job in todo)
    summary.written = [job.target for index, job in enumerate(todo) if outcomes.get(index, True) is None]
    summary.failures = [(todo[index], error) for index, error in sorted(outcomes.items()) if error is not None]
    return summary


def stylize_dataset(dataset: ray.data.Dataset, model: PathLike, *, column: str = "image",
                    options: StylizeOptions | None = None, backend: str = "auto", precision: str = "auto",
                    device: str = "auto", compile: bool = False, style: str | None = None,
                    mix: Mix | None = None, workers: int = 1, worker_cpus: float = 1.0,
                    worker_gpus: float | None = None, batch_size: int = 4,
                    map_options: dict[str, Any] | None = None) -> ray.data.Dataset:
    """A Dataset like ``dataset`` with the images of ``column`` stylized (lazy, as Ray Datasets are).

    The column holds uint8 arrays [H, W, 3] (RGB), [H, W, 4] (RGBA: alpha kept) or [H, W] (grey: stylized as
    RGB), as ``ray.data.read_images`` gives; the other columns pass through. The pixels are those of
    ``fastnst.load(model, ...).stylize(image, ...)`` with the same ``options``. ``workers`` actors each load the
    model once, reserving ``worker_cpus`` CPUs and ``worker_gpus`` GPUs (default: 1 for ``device="cuda"``);
    ``batch_size`` images go to an actor at a time; ``map_options`` are more ``Dataset.map_batches`` keywords.
    """
    if workers < 1:
        raise FastNSTError(f"workers must be 1 or more, got {workers}", setting="workers")
    if worker_cpus <= 0:
        raise FastNSTError(f"worker_cpus must be positive, got {worker_cpus}", setting="worker_cpus")
    ray = require_ray("stylize_dataset")
    runner_args = {"model": _model_reference(model), "backend": backend, "precision": precision, "device": device,
                   "compile": compile, "threads": _threads(worker_cpus), "style": style,
                   "mix": dict(mix) if mix else None}
    return dataset.map_batches(
        _DatasetStylizer, fn_constructor_kwargs={**runner_args, "options": options or StylizeOptions(),
                                                 "column": column},
        batch_size=batch_size, batch_format="numpy",
        **_pool(ray, workers, worker_cpus, worker_gpus, device, map_options, elastic=True))


def _load_runner(model: str, backend: str, precision: str, device: str, compile: bool, threads: int,
                 style: str | None = None, mix: Mix | None = None) -> Backend:
    """The backend an actor holds, with as many threads as CPUs it reserved (Ray sets no torch threads)."""
    import torch

    from fastnst.runtime.select import load_backend
    from fastnst.utils.device import resolve_device

    torch.set_num_threads(threads)
    runner, _info = load_backend(model, backend=backend, precision=precision, device=resolve_device(device).type,
                                 threads=threads, compile=compile, style=style, mix=mix)
    return runner


class _FileJobRunner:
    """One actor of the file job: one backend, loaded once, running planned jobs as a local run does."""

    def __init__(self, *, options: StylizeOptions, **runner_args: Any) -> None:
        self.runner = _load_runner(**runner_args)
        self.options = options
        self.delay = float(os.environ.get(JOB_DELAY_ENV) or 0)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        error_types, messages = [], []
        for source, target, as_png in zip(batch["source"], batch["target"], batch["as_png"], strict=True):
            time.sleep(self.delay)
            try:
                pipeline.run_job(self.runner, Job(Path(source), Path(target), bool(as_png)), self.options)
                error_types.append("")
                messages.append("")
            except FastNSTError as exc:  # a bad file is reported and skipped; anything else is a bug and fails
                error_types.append(type(exc).__name__)
                messages.append(str(exc))
        return {"index": batch["index"], "error_type": np.array(error_types, dtype=object),
                "error": np.array(messages, dtype=object)}


class _DatasetStylizer:
    """One actor of :func:`stylize_dataset`: the model's backend, plus PyTorch when an image needs tiles (as
    :class:`fastnst.api.Model` does)."""

    def __init__(self, *, options: StylizeOptions, column: str, **runner_args: Any) -> None:
        self.options = options
        self.column = column
        self.runner_args = runner_args
        loaded = _load_runner(**runner_args)
        self.runners = {runner_args["backend"]: loaded, loaded.name: loaded}

    def _runner(self, wants_torch: bool) -> Backend:
        name = backend_for(self.runner_args["backend"], wants_torch)
        if name not in self.runners:
            self.runners[name] = _load_runner(**{**self.runner_args, "backend": name})
        return self.runners[name]

    def _stylize(self, array: np.ndarray) -> np.ndarray:
        if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
            raise ImageError(f"expected uint8 images of shape [H, W, 3], [H, W, 4] or [H, W], got {array.dtype} "
                             f"{list(array.shape)}")
        image = Image.fromarray(np.ascontiguousarray(array))
        alpha = image.getchannel("A") if image.mode == "RGBA" else None
        rgb = image.convert("RGB")
        result = pipeline.stylize_picture(self._runner(needs_torch([rgb.size], self.options)), rgb, self.options)
        if alpha is not None:
            result.putalpha(alpha)
        return np.asarray(result)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.column not in batch:
            raise ImageError(f"the dataset has no column {self.column!r} (it has {', '.join(batch)})")
        results = [self._stylize(image) for image in batch[self.column]]
        if len({result.shape for result in results}) == 1:
            stacked = np.stack(results)
        else:  # images of several sizes: a ragged column, one array per row
            stacked = np.empty(len(results), dtype=object)
            for index, result in enumerate(results):
                stacked[index] = result
        return {**batch, self.column: stacked}


def _model_reference(model: PathLike) -> str:
    """The model as an absolute path, since actors do not share the caller's working folder or model search path;
    a missing model fails here, before any actor starts."""
    if str(model).endswith(".onnx"):
        path = Path(model)
        if not path.is_file():
            raise CheckpointError(f"{model} does not exist")
        return str(path.absolute())
    return str(find_model(model).absolute())


def _threads(worker_cpus: float) -> int:
    return max(1, round(worker_cpus))


def _pool(ray: ModuleType, workers: int, worker_cpus: float, worker_gpus: float | None, device: str,
          extra: dict[str, Any] | None, *, elastic: bool = False) -> dict[str, Any]:
    """``map_batches`` keywords for a pool of ``workers`` actors and the resources each reserves.

    ``elastic`` lets the pool run with 1 to ``workers`` actors: a Dataset's read and write tasks need CPUs too,
    and a fixed pool holding every CPU of a small cluster would leave them none and wait for ever.

    Fault tolerance is Ray Data's default for actor pools (``max_restarts=-1``, ``max_task_retries=-1``): a killed
    actor is restarted and the batch it held runs again, which is safe since every job's write is atomic and
    idempotent (tests/batch kills an actor to prove it; passing them again is deprecated in Ray 2.60).
    """
    gpus = worker_gpus if worker_gpus is not None else (1 if device == "cuda" else 0)
    compute = ray.data.ActorPoolStrategy(min_size=1, max_size=workers) if elastic else \
        ray.data.ActorPoolStrategy(size=workers)
    return {"compute": compute, "num_cpus": worker_cpus, "num_gpus": gpus,
            **(extra or {})}


def _rebuilt(error_type: str, message: str, job: Job, row: dict[str, Any]) -> FastNSTError | None:
    """An actor's error as the error a local run raises: its class, and the job's paths as the caller gave them
    (actors were sent absolute ones)."""
    if not error_type:
        return None
    kind = getattr(errors, error_type, FastNSTError)
    if not (isinstance(kind, type) and issubclass(kind, FastNSTError)):
        kind = FastNSTError
    message = message.replace(row["source"], str(job.source)).replace(row["target"], str(job.target))
    return kind(message)


class _DropProgressNotice(logging.Filter):
    """Ray Data warns once that its progress bars are off; the caller's reporter draws progress instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Progress bars disabled")


@contextlib.contextmanager
def _own_progress(ray: ModuleType) -> Iterator[None]:
    """Ray Data's progress bars, plan printing and per-run INFO lines off while the file job runs: the caller's
    reporter shows progress (the Dataset copies the context when it is made, so this wraps its creation)."""
    context = ray.data.DataContext.get_current()
    saved = context.enable_progress_bars, context.print_on_execution_start
    context.enable_progress_bars, context.print_on_execution_start = False, False
    data_log, notice = logging.getLogger("ray.data"), _DropProgressNotice()
    level = data_log.level
    data_log.setLevel(max(level, logging.WARNING))
    progress_log = logging.getLogger("ray.data._internal.progress")
    progress_log.addFilter(notice)
    try:
        yield
    finally:
        context.enable_progress_bars, context.print_on_execution_start = saved
        data_log.setLevel(level)
        progress_log.removeFilter(notice)


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """A fastnst error raised inside an actor (a model that does not load, say) comes out as itself, without the
    layers of Ray's wrapping and remote tracebacks."""
    try:
        yield
    except Exception as exc:
        cause = _fastnst_cause(exc)
        if cause is None:
            raise
        raise cause from None


def _fastnst_cause(exc: BaseException) -> FastNSTError | None:
    """The innermost-known plain FastNSTError behind Ray's wrappers (``RayTaskError.cause``, chained causes)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        cause = getattr(current, "cause", None)
        if isinstance(cause, BaseException):
            current = cause
            continue
        if isinstance(current, FastNSTError) and type(current).__module__ == errors.__name__:
            return type(current)(str(current), setting=current.setting, action=current.action)
        current = current.__cause__ or current.__context__
    return None
