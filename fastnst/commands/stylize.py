"""``fastnst stylize``: stylize image files and folders with a trained model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fastnst.utils.errors import FastNSTError

if TYPE_CHECKING:  # imported for annotations only: registering the command stays free of torch

    from fastnst.runtime.base import Backend
    from fastnst.runtime.pipeline import Reporter, StylizeOptions, Summary

EXIT_ERROR = 1
DEFAULT_WORKERS = 1
RAY_FLAGS = ("address", "workers", "worker_cpus", "worker_gpus")
PRESERVE_COLOR = ("none", "luminance", "histogram")  # = runtime.color.PRESERVE_COLOR_CHOICES (torch-free import)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("stylize", help="stylize images with a trained model")
    parser.add_argument("inputs", nargs="+", help="image files and/or folders")
    parser.add_argument("-m", "--model", required=True,
                        help="model folder, .safetensors or .onnx file, or a model name (`fastnst models` "
                             "lists them)")
    parser.add_argument("-o", "--output", required=True,
                        help="output file (one input) or folder (several inputs or a folder)")
    parser.add_argument("--format", dest="out_format", choices=["jpg", "png", "webp", "bmp", "tif"],
                        help="output format for folder outputs (default: keep each input's, PNG for GIF/PPM/PGM); "
                             "with an output file it must agree with the file's extension")
    parser.add_argument("--overwrite", action="store_true",
                        help="let an input file named here be replaced by its own stylization (the images of a "
                             "folder input are never overwritten)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--backend", choices=["auto", "torch", "onnxruntime"], default="auto",
                        help="runtime: auto = ONNX Runtime when the model has an ONNX export of the precision "
                             "(`fastnst export`), else PyTorch [default: auto]")
    parser.add_argument("--precision", choices=["auto", "fp32", "fp16", "bf16", "int8"], default="auto",
                        help="auto = fp32 on CPUs, fp16 on GPUs; bf16 needs the torch backend, int8 the "
                             "onnxruntime backend and model.int8.onnx [default: auto]")
    parser.add_argument("--compile", action="store_true",
                        help="run the network through torch.compile (torch backend): on GPUs several times faster "
                             "per frame after half a minute of compiling per input size (seconds once cached), so "
                             "for videos and same-size batches")
    parser.add_argument("--max-pixels", type=int, default=None,
                        help="refuse images with more decoded pixels than this [default: 100000000]")
    parser.add_argument("--style", metavar="NAME",
                        help="multi-style models: the style to apply [default: the model's first]")
    parser.add_argument("--mix", metavar="NAME=W,...",
                        help="multi-style models: blend styles, e.g. starry_night=0.7,great_wave=0.3 (weights are "
                             "normalised)")
    parser.add_argument("--skip-existing", action="store_true",
                        help="leave the inputs whose output file already exists alone: every output is written "
                             "atomically, so an existing one is complete and a stopped run resumes where it was")
    _register_controls(parser)
    _register_ray(parser)
    parser.set_defaults(handler=run)


def _register_controls(parser: argparse.ArgumentParser) -> None:
    """Tiling, output controls and video options (issue #4); the library validates the values."""
    parser.add_argument("--tile", type=int, default=0, metavar="SIZE",
                        help="stylize in SIZE px tiles with whole-image normalisation statistics (the same result "
                             "in bounded memory); 0 = auto: whole image when it fits ~2 GB, else 512 [default: 0]")
    parser.add_argument("--tile-overlap", type=int, default=16, metavar="PX",
                        help="real context around each tile; 16 makes tiles exact [default: 16]")
    parser.add_argument("--margin", type=int, default=32, metavar="PX",  # = runtime.margin.DEFAULT_MARGIN
                        help="mirror the image outward by PX on every side before the network and crop it after, "
                             "which keeps the networks' darkened edge out of the result; 0 = off [default: 32]")
    parser.add_argument("--strength", type=float, default=1.0,
                        help="style strength: 1 = fully stylized, 0 = the original, a blend between [default: 1]")
    parser.add_argument("--preserve-color", choices=PRESERVE_COLOR, default="none",
                        help="keep the original's colours: luminance = stylized luma with the photo's chroma, "
                             "histogram = match each colour channel's histogram [default: none]")
    parser.add_argument("--flicker-reduction", type=float, nargs="?", const=0.8, default=0.0, metavar="M",
                        help="videos: carry the previous stylized frame over where the input did not move, with "
                             "weight M (0.8 if given alone) [default: off]")
    parser.add_argument("--batch-size", type=int, default=4, help="videos: frames per batch [default: 4]")


def _register_ray(parser: argparse.ArgumentParser) -> None:
    """Batch stylization as a Ray Data job; Ray is imported only when --ray runs."""
    group = parser.add_argument_group(
        "Ray", 'run the same pipeline as a Ray Data job over a pool of actors, each loading the model once; inputs, '
               'outputs and the model must be visible to every worker (needs pip install "fastnst[ray]")')
    group.add_argument("--ray", action="store_true", help="stylize on Ray instead of in this process")
    group.add_argument("--address", metavar="ADDR",
                       help="the Ray cluster to join: auto (the one this machine belongs to), HOST:PORT, or "
                            "ray://HOST:PORT (Ray Client) [default: start a local Ray instance for this run]")
    group.add_argument("--workers", type=int, metavar="N",
                       help="actors stylizing at once, each holding one copy of the model "
                            f"[default: {DEFAULT_WORKERS}]")
    group.add_argument("--worker-cpus", type=float, metavar="C",
                       help="CPUs each actor reserves, also its thread count [default: 1]")
    group.add_argument("--worker-gpus", type=float, metavar="G",
                       help="GPUs each actor reserves [default: 1 with --device cuda, else 0]")


def _progress_bars(quiet: bool):  # -> a Reporter (its class needs tqdm, imported here)
    """A pipeline Reporter drawing progress bars (one over several jobs, one per video over its frames) and
    printing skipped files, on stderr."""
    from tqdm import tqdm

    from fastnst.runtime.pipeline import Job, Reporter
    from fastnst.runtime.video import is_video

    class Bars(Reporter):
        def __init__(self) -> None:
            self.jobs: tqdm | None = None
            self.frames: tqdm | None = None

        def planned(self, jobs: list[Job]) -> None:
            self.jobs = tqdm(total=len(jobs), desc="stylize", unit="img", disable=len(jobs) < 2 or quiet,
                             dynamic_ncols=True)

        def job_started(self, job: Job, frames: int | None) -> None:
            if is_video(job.source):
                self.frames = tqdm(total=frames, desc=job.source.name, unit="frame", disable=quiet, leave=False,
                                   dynamic_ncols=True)

        def frames_done(self, job: Job, count: int) -> None:
            if self.frames is not None:
                self.frames.update(count)

        def job_failed(self, job: Job, error: FastNSTError) -> None:
            tqdm.write(f"fastnst: skipped: {error}", file=sys.stderr)

        def job_finished(self, job: Job, written: Path | None) -> None:
            if self.frames is not None:
                self.frames.close()
                self.frames = None
            if self.jobs is not None:
                self.jobs.update(1)

        def close(self) -> None:
            if self.jobs is not None:
                self.jobs.close()

    return Bars()


def run(args: argparse.Namespace) -> int:
    from fastnst.model.mixing import parse_mix
    from fastnst.runtime.pipeline import StylizeOptions, backend_for, stylize_paths
    from fastnst.runtime.select import load_backend
    from fastnst.utils.device import resolve_device
    from fastnst.utils.images import DEFAULT_MAX_PIXELS

    given = [f"--{name.replace('_', '-')}" for name in RAY_FLAGS if getattr(args, name) is not None]
    if given and not args.ray:
        raise FastNSTError(f"{', '.join(given)} only apply with --ray")
    options = StylizeOptions(strength=args.strength, preserve_color=args.preserve_color, margin=args.margin,
                             tile=args.tile, overlap=args.tile_overlap,
                             max_pixels=DEFAULT_MAX_PIXELS if args.max_pixels is None else args.max_pixels,
                             flicker=args.flicker_reduction, batch_size=args.batch_size)
    device = None if args.ray else resolve_device(args.device).type  # Ray's actors resolve it where they run
    mix = parse_mix(args.mix) if args.mix else None

    def runner_for(wants_torch: bool) -> Backend:
        runner, _info = load_backend(args.model, backend=backend_for(args.backend, wants_torch),
                                     precision=args.precision, device=device, compile=args.compile,
                                     style=args.style, mix=mix)
        return runner

    bars = _progress_bars(args.quiet)
    try:  # every input and output is checked before the model is loaded (or Ray is started)
        if args.ray:
            summary = _run_on_ray(args, options, bars, mix)
        else:
            summary = stylize_paths(runner_for, args.inputs, args.output, out_format=args.out_format,
                                    options=options, reporter=bars, overwrite=args.overwrite,
                                    skip_existing=args.skip_existing)
    finally:
        bars.close()
    if summary.skipped and not args.quiet:
        print(f"skipped {len(summary.skipped)} input(s) whose output already exists")
    if len(summary.jobs) == 1 and not summary.skipped and not args.quiet:
        print(f"wrote {summary.jobs[0].target}")
    if summary.as_png and not args.quiet:
        kinds = ", ".join(sorted({job.source.suffix.lower() for job in summary.as_png}))
        print(f"note: {len(summary.as_png)} input(s) in a format fastnst cannot write ({kinds}) are written as PNG")
    if summary.failures:
        print(f"fastnst: error: {len(summary.failures)} of {len(summary.jobs)} image(s) could not be stylized",
              file=sys.stderr)
        return EXIT_ERROR
    return 0


def _run_on_ray(args: argparse.Namespace, options: StylizeOptions, bars: Reporter,
                mix: dict[str, float] | None) -> Summary:
    from fastnst.batch.ray_data import stylize_paths_on_ray

    return stylize_paths_on_ray(args.model, args.inputs, args.output, out_format=args.out_format, options=options,
                                backend=args.backend, precision=args.precision, device=args.device,
                                compile=args.compile, style=args.style, mix=mix,
                                workers=args.workers or DEFAULT_WORKERS,
                                worker_cpus=args.worker_cpus or 1.0, worker_gpus=args.worker_gpus,
                                skip_existing=args.skip_existing, overwrite=args.overwrite, address=args.address,
                                reporter=bars)
