"""``fastnst stylize``: stylize image files and folders with a trained model."""

from __future__ import annotations

import argparse
import sys

from fastnst.utils.errors import FastNSTError

EXIT_ERROR = 1
PRESERVE_COLOR = ("none", "luminance", "histogram")  # = runtime.color.PRESERVE_COLOR_CHOICES (torch-free import)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("stylize", help="stylize images with a trained model")
    parser.add_argument("inputs", nargs="+", help="image files and/or folders")
    parser.add_argument("-m", "--model", required=True,
                        help="model folder, .safetensors or .onnx file, or name of a model under ./models")
    parser.add_argument("-o", "--output", required=True,
                        help="output file (one input) or folder (several inputs or a folder)")
    parser.add_argument("--format", dest="out_format", choices=["jpg", "png", "webp", "bmp", "tif"],
                        help="output format for folder outputs (default: keep each input's)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--backend", choices=["auto", "torch", "onnxruntime"], default="auto",
                        help="runtime: auto = ONNX Runtime when the model has an ONNX export of the precision "
                             "(`fastnst export`), else PyTorch [default: auto]")
    parser.add_argument("--precision", choices=["auto", "fp32", "fp16", "bf16", "int8"], default="auto",
                        help="auto = fp32 on CPUs, fp16 on GPUs; bf16 needs the torch backend, int8 the "
                             "onnxruntime backend and model.int8.onnx [default: auto]")
    parser.add_argument("--compile", action="store_true",
                        help="run the network through torch.compile (torch backend): on GPUs about 3× faster per "
                             "frame after a minute of compiling per input size, so for videos and same-size batches")
    parser.add_argument("--max-pixels", type=int, default=None,
                        help="refuse images with more decoded pixels than this [default: 100000000]")
    _register_controls(parser)
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


def _needs_torch(args: argparse.Namespace, jobs: list, max_pixels: int) -> bool:
    """True when tiles are asked for, or an image is too large to stylize whole (tiles need the torch network)."""
    from fastnst.runtime.tiling import too_large_for_whole
    from fastnst.runtime.video import is_video

    if args.tile > 0:
        return True
    return any(not is_video(job.source) and too_large_for_whole(job.source, max_pixels) for job in jobs)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from fastnst.utils.images import DEFAULT_MAX_PIXELS
    from fastnst.runtime.color import Controls
    from fastnst.runtime.select import load_backend
    from fastnst.runtime.video import is_video, probe_video, stylize_video_file
    from fastnst.runtime.pipeline import plan_jobs, stylize_file
    from fastnst.utils.device import resolve_device

    if args.max_pixels is not None and args.max_pixels < 1:
        raise FastNSTError(f"--max-pixels must be positive, got {args.max_pixels}")
    device = resolve_device(args.device).type
    max_pixels = args.max_pixels if args.max_pixels is not None else DEFAULT_MAX_PIXELS
    controls = Controls(args.strength, args.preserve_color)
    if args.tile < 0 or args.tile_overlap < 0 or args.margin < 0 or args.batch_size < 1:
        raise FastNSTError("--tile, --tile-overlap and --margin must be 0 or more, --batch-size 1 or more")
    jobs = plan_jobs(args.inputs, args.output, args.out_format)  # validate everything before loading the model
    backend = args.backend
    if backend == "auto" and _needs_torch(args, jobs, max_pixels):
        backend = "torch"  # tiles need the PyTorch network's norm layers
    model, _info = load_backend(args.model, backend=backend, precision=args.precision, device=device,
                                compile=args.compile)
    failures = 0
    show_bar = len(jobs) > 1 and not args.quiet
    for job in tqdm(jobs, desc="stylize", unit="img", disable=not show_bar, dynamic_ncols=True):
        try:
            if is_video(job.source):
                frames = probe_video(job.source).frames
                with tqdm(total=frames, desc=job.source.name, unit="frame", disable=args.quiet, leave=False,
                          dynamic_ncols=True) as bar:
                    stylize_video_file(model, job.source, job.target, flicker=args.flicker_reduction,
                                       batch_size=args.batch_size, controls=controls, max_pixels=max_pixels,
                                       progress=bar.update, margin=args.margin)
            else:
                stylize_file(model, job.source, job.target, max_pixels=max_pixels, tile=args.tile,
                             overlap=args.tile_overlap, controls=controls, margin=args.margin)
        except FastNSTError as exc:
            if len(jobs) == 1:
                raise
            failures += 1
            tqdm.write(f"fastnst: skipped: {exc}", file=sys.stderr)
    if len(jobs) == 1 and not args.quiet:
        print(f"wrote {jobs[0].target}")
    if failures:
        print(f"fastnst: error: {failures} of {len(jobs)} image(s) could not be stylized", file=sys.stderr)
        return EXIT_ERROR
    return 0
