"""The Python front door: load a model and stylize, train a network, or optimise one image.

.. code-block:: python

    import fastnst

    model = fastnst.load("starry_night")  # a name, folder, .safetensors or .onnx file
    out = model.stylize("photo.jpg", strength=0.8, preserve_color="luminance")  # path, PIL image or array → PIL
    out.save("styled.png")
    model.stylize_video("clip.mp4", "styled.mp4", flicker=0.8)
    model.stylize_paths(["photos/"], "out/", out_format="webp")  # files and folders, like the CLI
    model.stylize_paths_on_ray(["photos/"], "out/", workers=4)  # the same, as a Ray Data job (fastnst[ray])
    styled = fastnst.stylize_dataset(ray.data.read_images("photos/"), "starry_night", workers=4)  # a Ray Dataset

Public names (also importable from ``fastnst``): :func:`load`, :class:`Model`, :func:`train`, :func:`optimize`,
:func:`stylize_dataset`.
Every ``Model`` method runs :mod:`fastnst.runtime.pipeline`, the code ``fastnst stylize`` runs, so the same
options give the same pixels. Problems raise :class:`fastnst.utils.errors.FastNSTError` with a one-line message.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from fastnst.model.files import ModelInfo
from fastnst.model.mixing import Mix, style_weights
from fastnst.runtime.base import Backend
from fastnst.runtime.color import PreserveColor
from fastnst.runtime.margin import DEFAULT_MARGIN
from fastnst.runtime.pipeline import (
    Job,
    Reporter,
    StylizeOptions,
    Summary,
    backend_for,
    needs_torch,
    stylize_picture,
)
from fastnst.runtime.pipeline import stylize_paths as run_pipeline
from fastnst.runtime.select import load_backend
from fastnst.runtime.tiling import DEFAULT_OVERLAP
from fastnst.runtime.video import DEFAULT_BATCH, VIDEO_EXTENSIONS, is_video
from fastnst.utils.device import resolve_device
from fastnst.utils.errors import FastNSTError, ImageError, VideoError
from fastnst.utils.images import DEFAULT_MAX_PIXELS, check_output_path, load_image, save_image

if TYPE_CHECKING:  # training, the optimizer and Ray are imported when the functions that use them run
    import ray.data

    from fastnst.optimizer.loop import OptimizeResult, ProgressCallback
    from fastnst.training.config import TrainConfig
    from fastnst.training.trainer import StepReport, TrainResult

__all__ = ["ImageInput", "Model", "load", "optimize", "stylize_dataset", "train"]

PathLike = str | os.PathLike[str]
ImageInput = PathLike | Image.Image | np.ndarray
"""An image file's path, a PIL image, or a uint8 array of shape [H, W, 3] (RGB) or [H, W, 4] (RGBA)."""


class Model:
    """A loaded style network on one backend; made by :func:`load`.

    When tiles are needed (``tile`` > 0, or an image too large for one pass) and the backend was chosen
    automatically, the PyTorch network is loaded once beside it, as ``fastnst stylize`` does.
    """

    def __init__(self, backend: Backend, info: ModelInfo, *, source: PathLike, requested_backend: str,
                 precision: str, device: str, compile: bool, requested_device: str = "auto",
                 style: str | None = None, mix: Mix | None = None) -> None:
        self._backend = backend
        self._info = info
        self._source = source
        self._requested_backend = requested_backend
        self._precision = precision
        self._device = device
        self._compile = compile
        self._requested_device = requested_device
        self._style, self._mix = style, dict(mix) if mix else None
        self._variants: dict[tuple[float, ...], Model] = {}
        self._torch: Backend | None = None

    @property
    def name(self) -> str:
        """The model's style name (its folder's name when the metadata has none)."""
        return self._info.name

    @property
    def style(self) -> str:
        """The style image it learned, as recorded in its metadata ("" when unknown)."""
        return str(self._info.metadata.get("style_image") or "")

    @property
    def styles(self) -> list[str]:
        """The styles the model holds: one, or several for a multi-style model (see :meth:`with_style`)."""
        return self._info.styles

    def with_style(self, style: str | None = None, mix: Mix | None = None) -> Model:
        """This model running one of its styles or a mix of them (``{"starry_night": 0.7, "great_wave": 0.3}``,
        normalised); loaded once per mix and kept."""
        key = tuple(style_weights(self.styles, style=style, mix=mix))
        if key not in self._variants:
            self._variants[key] = load(self._source, backend=self._requested_backend, precision=self._precision,
                                       device=self._requested_device, compile=self._compile, style=style, mix=mix)
        return self._variants[key]

    @property
    def info(self) -> ModelInfo:
        """Name, architecture and metadata (``model.json``)."""
        return self._info

    @property
    def backend(self) -> str:
        """The runtime: ``"torch"`` or ``"onnxruntime"``."""
        return self._backend.name

    @property
    def device(self) -> str:
        """Where it runs, e.g. ``"cpu"``, ``"cuda:0"`` or an ONNX Runtime provider."""
        return self._backend.device

    @property
    def precision(self) -> str:
        """``"fp32"``, ``"fp16"``, ``"bf16"`` or ``"int8"``."""
        return self._backend.precision

    def __repr__(self) -> str:
        return f"Model({self.name!r}, backend={self.backend!r}, precision={self.precision!r}, device={self.device!r})"

    def _runner(self, wants_torch: bool) -> Backend:
        """The backend for a piece of work: the loaded one, or the PyTorch one when tiles need it."""
        backend = backend_for(self._requested_backend, wants_torch)
        if backend == self._requested_backend or self._backend.name == backend:
            return self._backend
        if self._torch is None:
            self._torch, _ = load_backend(self._source, backend=backend, precision=self._precision,
                                          device=self._device, compile=self._compile, style=self._style,
                                          mix=self._mix)
        return self._torch

    def stylize(self, image: ImageInput, *, strength: float = 1.0, preserve_color: PreserveColor = "none",
                margin: int = DEFAULT_MARGIN, tile: int | None = None, overlap: int = DEFAULT_OVERLAP,
                max_pixels: int | None = DEFAULT_MAX_PIXELS, style: str | None = None,
                mix: Mix | None = None) -> Image.Image:
        """Stylize one image and return it (RGB, or RGBA when the input has transparency).

        ``strength`` 1 = fully stylized, 0 = the original; ``preserve_color`` ``"luminance"`` or ``"histogram"``
        keeps the photo's colours; ``margin`` px are mirrored onto each side before the network and cropped after;
        ``tile`` None/0 = whole image when it fits memory, else tiles, a size forces tiles of that size;
        ``max_pixels`` caps the decoded size of a file (None = no cap); ``style`` or ``mix`` pick what a
        multi-style model runs for this image (see :meth:`with_style`).
        """
        if style is not None or mix:
            return self.with_style(style, mix).stylize(image, strength=strength, preserve_color=preserve_color,
                                                       margin=margin, tile=tile, overlap=overlap,
                                                       max_pixels=max_pixels)
        options = StylizeOptions(strength=strength, preserve_color=preserve_color, margin=margin, tile=tile or 0,
                                 overlap=overlap, max_pixels=max_pixels)
        if isinstance(image, (str, os.PathLike)):
            loaded = load_image(image, max_pixels=max_pixels)
            rgb, alpha, source = loaded.rgb, loaded.alpha, Path(image)
        else:
            rgb, alpha = _rgb_and_alpha(image)
            source = rgb.size
        result = stylize_picture(self._runner(needs_torch([source], options)), rgb, options)
        if alpha is not None:
            result.putalpha(alpha)
        return result

    def stylize_file(self, source: PathLike, target: PathLike, *, strength: float = 1.0,
                     preserve_color: PreserveColor = "none", margin: int = DEFAULT_MARGIN, tile: int | None = None,
                     overlap: int = DEFAULT_OVERLAP, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                     flicker: float = 0.0, batch_size: int = DEFAULT_BATCH, overwrite: bool = False) -> Path:
        """Stylize one image or video file into ``target`` (a file, or a folder to write it into); returns the
        path written (a PNG in a folder when the source's format cannot be written, e.g. GIF). The write is
        atomic: a failure leaves no partial file. A ``target`` that is ``source`` itself (or a link of it) is
        refused unless ``overwrite``."""
        summary = self.stylize_paths([source], target, strength=strength, preserve_color=preserve_color,
                                     margin=margin, tile=tile, overlap=overlap, max_pixels=max_pixels,
                                     flicker=flicker, batch_size=batch_size, keep_going=False, overwrite=overwrite)
        return summary.written[0]

    def stylize_paths(self, inputs: PathLike | Sequence[PathLike], output: PathLike, *,
                      out_format: str | None = None, strength: float = 1.0, preserve_color: PreserveColor = "none",
                      margin: int = DEFAULT_MARGIN, tile: int | None = None, overlap: int = DEFAULT_OVERLAP,
                      max_pixels: int | None = DEFAULT_MAX_PIXELS, flicker: float = 0.0,
                      batch_size: int = DEFAULT_BATCH, progress: Reporter | None = None,
                      keep_going: bool | None = None, overwrite: bool = False,
                      skip_existing: bool = False) -> Summary:
        """Stylize image and video files and folders as ``fastnst stylize`` does.

        One input file and an ``output`` with an extension → that file (``out_format`` must then agree with it);
        otherwise ``output`` is a folder and each result keeps its name (and sub-folder) with its own or
        ``out_format``'s extension, PNG for formats that cannot be written (listed in ``Summary.as_png``). Every
        input and target is checked, and the output folders created and probed, before any work. No output may
        be an input (by path or link): ``overwrite=True`` lets a file named in ``inputs`` be replaced by its own
        result; a folder's images are never overwritten. ``progress`` (a
        :class:`~fastnst.runtime.pipeline.Reporter`) hears each job start, video frames and failures. With several
        inputs (or ``keep_going=True``) a failed file is collected in the returned
        :class:`~fastnst.runtime.pipeline.Summary` and the rest go on; a single one raises. ``skip_existing``
        leaves alone the inputs whose output exists (listed in ``Summary.skipped``): a stopped run resumes.
        """
        options = StylizeOptions(strength=strength, preserve_color=preserve_color, margin=margin, tile=tile or 0,
                                 overlap=overlap, max_pixels=max_pixels, flicker=flicker, batch_size=batch_size)
        paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
        return run_pipeline(self._runner, paths, output, out_format=out_format, options=options, reporter=progress,
                            keep_going=keep_going, overwrite=overwrite, skip_existing=skip_existing)

    def stylize_video(self, source: PathLike, target: PathLike, *, flicker: float = 0.0,
                      batch_size: int = DEFAULT_BATCH, strength: float = 1.0, preserve_color: PreserveColor = "none",
                      margin: int = DEFAULT_MARGIN, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                      progress: Callable[[int], None] | None = None, overwrite: bool = False) -> Path:
        """Stylize a video into ``target`` (container from its extension; audio kept); returns the path written.

        ``flicker`` (0 = off, below 1) carries the previous stylized frame over where the input did not move;
        ``batch_size`` frames go through the network at once; ``progress`` is called with each batch's frame
        count; ``max_pixels`` caps the frame size; ``overwrite`` lets ``target`` be ``source`` itself.
        """
        if not is_video(source):
            raise VideoError(f"{source} is not a video file ({', '.join(sorted(VIDEO_EXTENSIONS))})")
        summary = self.stylize_paths([source], target, strength=strength, preserve_color=preserve_color,
                                     margin=margin, max_pixels=max_pixels, flicker=flicker, batch_size=batch_size,
                                     progress=_FrameCounter(progress) if progress is not None else None,
                                     keep_going=False, overwrite=overwrite)
        return summary.written[0]


    def stylize_paths_on_ray(self, inputs: PathLike | Sequence[PathLike], output: PathLike, *,
                             out_format: str | None = None, strength: float = 1.0,
                             preserve_color: PreserveColor = "none", margin: int = DEFAULT_MARGIN,
                             tile: int | None = None, overlap: int = DEFAULT_OVERLAP,
                             max_pixels: int | None = DEFAULT_MAX_PIXELS, workers: int = 1, worker_cpus: float = 1.0,
                             worker_gpus: float | None = None, address: str | None = None,
                             skip_existing: bool = False, progress: Reporter | None = None,
                             overwrite: bool = False) -> Summary:
        """:meth:`stylize_paths` as a Ray Data job (``pip install "fastnst[ray]"``), like ``fastnst stylize --ray``:
        the same files, byte for byte, written by ``workers`` actors that each load this model (its name or path,
        backend, precision and device) once.

        ``address`` joins a Ray cluster (``"auto"``, ``"HOST:PORT"``, ``"ray://HOST:PORT"``; None: this process's
        Ray, else a new local instance); inputs, outputs and the model must be visible to every worker.
        ``skip_existing`` leaves the inputs whose output exists alone (listed in the summary's ``skipped``).
        See :func:`fastnst.batch.ray_data.stylize_paths_on_ray`.
        """
        from fastnst.batch.ray_data import stylize_paths_on_ray

        options = StylizeOptions(strength=strength, preserve_color=preserve_color, margin=margin, tile=tile or 0,
                                 overlap=overlap, max_pixels=max_pixels)
        paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
        return stylize_paths_on_ray(self._source, paths, output, out_format=out_format, options=options,
                                    **self._worker_settings(), workers=workers, worker_cpus=worker_cpus,
                                    worker_gpus=worker_gpus, skip_existing=skip_existing, overwrite=overwrite,
                                    address=address, reporter=progress)

    def _worker_settings(self) -> dict[str, Any]:
        """How Ray's workers load this model: as it was asked for, since their devices are their own."""
        return {"backend": self._requested_backend, "precision": self._precision, "device": self._requested_device,
                "style": self._style, "mix": self._mix,
                "compile": self._compile}


class _FrameCounter(Reporter):
    """A Reporter that passes each batch's frame count to a plain callback."""

    def __init__(self, callback: Callable[[int], None]) -> None:
        self.callback = callback

    def frames_done(self, job: Job, count: int) -> None:
        self.callback(count)


def load(model: PathLike, *, backend: str = "auto", precision: str = "auto", device: str = "auto",
         compile: bool = False, style: str | None = None, mix: Mix | None = None) -> Model:
    """Load a style model: a name on the search path (``fastnst models`` lists them), a model folder, a
    ``.safetensors`` or an ``.onnx`` file.

    ``backend`` ``"auto"`` picks ONNX Runtime when the model has an export of the precision, else PyTorch;
    ``precision`` ``"auto"`` is fp32 on CPUs and fp16 on GPUs; ``device`` ``"auto"``, ``"cpu"`` or ``"cuda"``;
    ``compile`` runs the network through torch.compile (torch backend). The same choices as ``fastnst stylize``.
    ``style`` or ``mix`` (``{"starry_night": 0.7, "great_wave": 0.3}``, normalised) pick what a multi-style
    model runs (default: its first style).
    """
    target = resolve_device(device).type
    runner, info = load_backend(model, backend=backend, precision=precision, device=target, compile=compile,
                                style=style, mix=mix)
    return Model(runner, info, source=model, requested_backend=backend, precision=precision, device=target,
                 compile=compile, requested_device=device, style=style, mix=mix)


def stylize_dataset(dataset: ray.data.Dataset, model: PathLike | Model, *, column: str = "image",
                    strength: float = 1.0, preserve_color: PreserveColor = "none", margin: int = DEFAULT_MARGIN,
                    tile: int | None = None, overlap: int = DEFAULT_OVERLAP, workers: int = 1,
                    worker_cpus: float = 1.0, worker_gpus: float | None = None, batch_size: int = 4,
                    backend: str = "auto", precision: str = "auto", device: str = "auto", style: str | None = None,
                    mix: Mix | None = None) -> ray.data.Dataset:
    """A stylized copy of a Ray Dataset of images (``pip install "fastnst[ray]"``), e.g. to augment a training set.

    ``column`` holds uint8 arrays [H, W, 3|4] or [H, W], as ``ray.data.read_images`` gives; each is replaced by
    the pixels ``fastnst.load(model).stylize(image, ...)`` returns for the same options, and the other columns
    pass through. ``model`` is a name or path (loaded with ``backend``, ``precision`` and ``device``) or a
    :class:`Model` (its settings). ``workers`` actors each load the model once, reserving ``worker_cpus`` CPUs
    and ``worker_gpus`` GPUs; ``batch_size`` images go to an actor at a time. The result is lazy, like any
    Dataset: write it (``.write_images``, ``.write_parquet``) or iterate it to run the job.
    """
    from fastnst.batch.ray_data import stylize_dataset as stylize_on_ray

    options = StylizeOptions(strength=strength, preserve_color=preserve_color, margin=margin, tile=tile or 0,
                             overlap=overlap)
    if isinstance(model, Model):
        return stylize_on_ray(dataset, model._source, column=column, options=options, workers=workers,
                              worker_cpus=worker_cpus, worker_gpus=worker_gpus, batch_size=batch_size,
                              **model._worker_settings())
    return stylize_on_ray(dataset, model, column=column, options=options, backend=backend, precision=precision,
                          device=device, style=style, mix=mix, workers=workers, worker_cpus=worker_cpus,
                          worker_gpus=worker_gpus, batch_size=batch_size)


def train(config: TrainConfig | PathLike | dict[str, Any], *, resume: bool = False,
          on_step: Callable[[StepReport], None] | None = None, log: Callable[[str], None] | None = None,
          **overrides: Any) -> TrainResult:
    """Train a style network, as ``fastnst train`` does; returns the :class:`TrainResult` (``model_path``,
    ``steps``, ``final_losses``).

    ``config``: a :class:`TrainConfig`, a TOML file's path, or a dict of config keys; ``overrides`` are config
    keys too (``steps=100``) and win. ``resume`` continues from ``<output_dir>/checkpoints/last.pt``;
    ``on_step`` gets a :class:`StepReport` after every step and ``log`` the run's messages.
    """
    from fastnst.training.config import SCHEMA, TrainConfig, load_config
    from fastnst.training.trainer import train as run_training

    source = "fastnst.train()"
    values = {key: SCHEMA.coerce(key, value, source) for key, value in overrides.items()}
    if isinstance(config, TrainConfig):
        resolved = load_config(None, {**config.to_dict(), **values})
    elif isinstance(config, dict):
        given = {key: SCHEMA.coerce(key, value, source) for key, value in config.items()}
        resolved = load_config(None, {**given, **values})
    else:
        resolved = load_config(config, values)
    try:
        return run_training(resolved, resume=resume, on_step=on_step, log=log)
    except FloatingPointError as exc:
        raise FastNSTError(str(exc)) from None


def optimize(content: ImageInput, styles: ImageInput | Sequence[ImageInput], output: PathLike | None = None, *,
             on_progress: ProgressCallback | None = None, **options: Any) -> OptimizeResult:
    """Classic style transfer (Gatys et al.): optimise the image itself, as ``fastnst optimize`` does.

    ``content`` and ``styles`` (one or several, blended by ``style_blend_weights``) are paths, PIL images or
    arrays; ``options`` are :class:`~fastnst.optimizer.config.OptimizeOptions` fields (``sizes=(256,)``,
    ``iterations=(100,)``, ...). Returns the :class:`~fastnst.optimizer.loop.OptimizeResult`: ``.image`` is the
    picture, with the losses and timing beside it. With ``output`` the image is also written there atomically
    (from files: keeping the content's transparency and the snapshots ``save_every`` asks for, like the CLI).
    ``on_progress`` gets every iteration's Progress and may return True to stop early.
    """
    from fastnst.optimizer.config import SCHEMA, OptimizeOptions
    from fastnst.optimizer.loop import optimize as optimize_images
    from fastnst.optimizer.loop import optimize_files

    chosen = OptimizeOptions(**{key: SCHEMA.coerce(key, value, "fastnst.optimize()")
                                for key, value in options.items()})
    style_list = list(styles) if isinstance(styles, (list, tuple)) else [styles]
    if output is not None and all(isinstance(item, (str, os.PathLike)) for item in [content, *style_list]):
        return optimize_files(content, style_list, output, chosen, on_progress=on_progress)  # type: ignore[arg-type]
    if output is not None:
        check_output_path(output)  # fail before minutes of work
    result = optimize_images(_rgb(content, chosen.max_pixels), [_rgb(item, chosen.max_pixels) for item in style_list],
                             chosen, on_progress=on_progress)
    if output is not None:
        save_image(result.image, output)
    return result


def _rgb(image: ImageInput, max_pixels: int | None) -> Image.Image:
    if isinstance(image, (str, os.PathLike)):
        return load_image(image, max_pixels=max_pixels).rgb
    return _rgb_and_alpha(image)[0]


def _rgb_and_alpha(image: Image.Image | np.ndarray) -> tuple[Image.Image, Image.Image | None]:
    """An in-memory image as RGB plus its alpha channel (None when opaque); colour values as stored."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4) or 0 in image.shape:
            raise ImageError(f"expected a uint8 array of shape [H, W, 3] or [H, W, 4], got {image.dtype} "
                             f"{list(image.shape)}")
        image = Image.fromarray(np.ascontiguousarray(image), "RGBA" if image.shape[2] == 4 else "RGB")
    if not isinstance(image, Image.Image):
        raise ImageError(f"expected an image path, a PIL image or a numpy array, got {type(image).__name__}")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    alpha = image.getchannel("A") if "A" in image.getbands() else None
    return image.convert("RGB"), alpha
