"""``fastnst export``: a trained model → verified ONNX files (fp32, and optionally fp16 / int8)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fastnst.utils.defaults import DEFAULT_MIN_PSNR, DEFAULT_OPSET, DEFAULT_TOLERANCE
from fastnst.utils.errors import FastNSTError

PRECISION_CHOICES = ("fp32", "fp16", "int8")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "export", help="export a model to ONNX (verified against PyTorch)",
        description="Export a trained model to ONNX with dynamic batch/height/width and its metadata inside, check "
                    "it with onnx.checker and compare ONNX Runtime with PyTorch on random and real images. "
                    "fp16/int8 models are kept only if their PSNR against fp32 on held-aside photos reaches "
                    "--min-psnr.")
    parser.add_argument("-m", "--model", required=True,
                        help="model folder, .safetensors file, or a model name (`fastnst models` lists them)")
    parser.add_argument("-o", "--output", help="output .onnx file (one precision) or folder [default: the model's "
                        "folder, as model.onnx / model.fp16.onnx / model.int8.onnx]")
    parser.add_argument("--precision", nargs="+", choices=PRECISION_CHOICES, default=["fp32"],
                        help="one or more precisions to export [default: fp32]")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                        help=f"ONNX opset, ≥ 17 [default: {DEFAULT_OPSET}]")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help="largest accepted |ONNX Runtime − PyTorch| on [0,1] outputs "
                             f"[default: {DEFAULT_TOLERANCE:g}]")
    parser.add_argument("--min-psnr", type=float, default=DEFAULT_MIN_PSNR,
                        help="refuse fp16/int8 models below this mean PSNR (dB) against fp32 "
                             f"[default: {DEFAULT_MIN_PSNR:g}]")
    parser.add_argument("--photos", help="folder of real photos: every --holdout-every-th is held aside for the "
                        "checks, the rest calibrates int8 [default: the model's training folder, if present]")
    parser.add_argument("--holdout-every", type=int, default=None,
                        help="hold aside every Nth photo [default: the model's training value, else 10]")
    parser.add_argument("--eval-max-side", type=int, default=512,
                        help="held-aside photos are downscaled to this longer side for the PSNR [default: 512]")
    parser.set_defaults(handler=run)


def photo_sets(photos: str | None, holdout_every: int | None,
               config: dict[str, object]) -> tuple[list[Path], list[Path], str]:
    """(calibration photos, held-aside photos, where they came from) for an export."""
    from fastnst.training.data import find_photos, split_holdout

    folder = photos or str(config.get("data_dir") or "")
    if not folder or (not photos and not Path(folder).is_dir()):
        return [], [], "none"
    every = holdout_every or int(config.get("holdout_every") or 0) or 10  # type: ignore[call-overload]
    if every < 2:
        raise FastNSTError(f"--holdout-every must be at least 2, got {every}")
    train, held = split_holdout(find_photos(folder), every)
    return train, held, f"{folder} (every {every}th held aside)"


def run(args: argparse.Namespace) -> int:
    from fastnst.export.onnx import ONNX_FILES, export_onnx
    from fastnst.model.files import find_model, load_model

    if len(args.precision) > 1 and args.output and args.output.endswith(".onnx"):
        raise FastNSTError("several precisions need an output folder, not one .onnx file")
    weights = find_model(args.model)
    model, info = load_model(weights, device="cpu")
    calibration, held, source = photo_sets(args.photos, args.holdout_every, info.metadata.get("config") or {})
    check = held[:3] or sorted(Path("samples").glob("*.jpg"))[:3]
    reduced = [p for p in args.precision if p != "fp32"]
    if reduced and not held:
        raise FastNSTError(f"a {reduced[0]} export needs real photos to check its quality: pass --photos DIR "
                           "(the model's training folder is not here)")
    for precision in dict.fromkeys(args.precision):
        if args.output and args.output.endswith(".onnx"):
            target = Path(args.output)
        else:
            target = (Path(args.output) if args.output else weights.parent) / ONNX_FILES[precision]
        result = export_onnx(model, info, target, precision=precision, opset=args.opset, tolerance=args.tolerance,
                             check_images=check, calibration_photos=calibration, evaluation_photos=held,
                             min_psnr=args.min_psnr, eval_max_side=args.eval_max_side)
        if args.quiet:
            continue
        v = result.verification
        line = (f"wrote {result.path} ({precision}, opset {result.opset}, {result.size_bytes / 1e6:.1f} MB, "
                f"{result.seconds:.0f} s): max |ONNX Runtime − PyTorch| {v.max_abs_error:.2g} on {v.random_images} "
                f"random + {v.real_images} real images (tolerance {v.tolerance:g})")
        if result.quality is not None:
            q = result.quality
            line += (f"; PSNR against fp32 {q.psnr_mean:.1f} dB mean, {q.psnr_min:.1f} dB worst on {q.photos} "
                     f"held-aside photos from {source} (threshold {args.min_psnr:g} dB)")
        print(line, file=sys.stdout)
    return 0
