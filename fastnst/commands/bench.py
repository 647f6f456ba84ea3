"""``fastnst bench``: inference latency per backend × precision × size, against the plain PyTorch reference."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fastnst.utils.errors import FastNSTError

SIZE_NAMES = ("256", "512", "1080p", "4k")  # keys of fastnst.bench.runner.SIZES (not imported: it needs torch)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "bench", help="measure inference speed per backend, precision and size",
        description="Time every backend × precision at each size, interleaved with the plain reference (fp32 eager "
                    "PyTorch, NCHW, default settings), and write benchmarks/results/<host>.json.")
    parser.add_argument("-m", "--model", default="starry_night", help="model name or folder [default: starry_night]")
    parser.add_argument("--backends", nargs="+", choices=["torch", "onnxruntime"], default=["torch", "onnxruntime"])
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "fp16", "bf16", "int8"],
                        help="[default: fp32, bf16 and int8 on CPUs; fp32, fp16 and bf16 on GPUs]")
    parser.add_argument("--sizes", nargs="+", choices=SIZE_NAMES,
                        help="[default: all; 4k is skipped on CPUs unless named here]")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed runs per case and size, at least 2 (the first may build engines) [default: 2]")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case and size [default: 5]")
    parser.add_argument("--max-seconds", type=float, default=30.0,
                        help="skip a case at a size when one run takes longer [default: 30]")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for PyTorch and ONNX Runtime in every case, reference included [default: theirs]")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: time with process CPU time (needs --threads 1), which a machine shared with other "
                             "jobs does not inflate [default: wall]")
    parser.add_argument("--quick", action="store_true",
                        help="only the goals' cases (GPU: 1080p fp16; CPU: 512² fp32 and int8), 1 warm-up, 3 repeats")
    parser.add_argument("--compile", action="store_true",
                        help="also time each torch case through torch.compile (compiles once per size first)")
    parser.add_argument("-o", "--output", help="results JSON [default: benchmarks/results/<host>.json]")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from fastnst.utils.atomic import atomic_write_text
    from fastnst.bench.runner import format_table, run_benchmark

    if args.quick:
        from fastnst.utils.device import resolve_device

        gpu = resolve_device(args.device).type == "cuda"
        # The goals' cases only: 1080p fp16 on GPUs (each TensorRT precision costs an engine build), 512² on CPUs.
        args.sizes = args.sizes or (["1080p"] if gpu else ["512"])
        args.precisions = args.precisions or (["fp16"] if gpu else ["fp32", "int8"])
        args.warmup, args.repeats = min(args.warmup, 1), min(args.repeats, 3)
    if args.repeats < 1 or args.warmup < 0:
        raise FastNSTError("--repeats must be at least 1 and --warmup at least 0")

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    report = run_benchmark(model=args.model, backends=args.backends, precisions=args.precisions, sizes=args.sizes,
                           device=args.device, warmup=args.warmup, repeats=args.repeats,
                           max_seconds=args.max_seconds, threads=args.threads, clock=args.clock,
                           compile=args.compile,
                           progress=None if args.quiet else progress)
    output = Path(args.output or Path("benchmarks") / "results" / f"{report['machine']['host']}.json")
    atomic_write_text(output, json.dumps(report, indent=2) + "\n")
    if not args.quiet:
        print(format_table(report))
        print(f"wrote {output}")
    return 0
