"""``fastnst stylize``: stylize image files and folders with a trained model."""

from __future__ import annotations

import argparse
import sys

from ..errors import FastNSTError

EXIT_ERROR = 1


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
    parser.add_argument("--max-pixels", type=int, default=None,
                        help="refuse images with more decoded pixels than this [default: 100000000]")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from ..images import DEFAULT_MAX_PIXELS
    from ..runtime.select import load_backend
    from ..stylize import plan_jobs, stylize_file

    if args.device == "cuda" and not torch.cuda.is_available():
        raise FastNSTError("--device cuda was asked for but no CUDA device is available")
    if args.max_pixels is not None and args.max_pixels < 1:
        raise FastNSTError(f"--max-pixels must be positive, got {args.max_pixels}")
    device = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    max_pixels = args.max_pixels if args.max_pixels is not None else DEFAULT_MAX_PIXELS
    jobs = plan_jobs(args.inputs, args.output, args.out_format)  # validate everything before loading the model
    model, _info = load_backend(args.model, backend=args.backend, precision=args.precision, device=device)
    failures = 0
    show_bar = len(jobs) > 1 and not args.quiet
    for job in tqdm(jobs, desc="stylize", unit="img", disable=not show_bar, dynamic_ncols=True):
        try:
            stylize_file(model, job.source, job.target, max_pixels=max_pixels)
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
