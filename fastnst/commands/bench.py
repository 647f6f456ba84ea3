"""``fastnst bench``: inference latency per backend × precision × size, against the plain PyTorch reference."""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from fastnst.utils.errors import FastNSTError

SIZE_NAMES = ("256", "512", "1080p", "4k")  # keys of fastnst.bench.runner.SIZES (not imported: it needs torch)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "bench", help="measure inference speed per backend, precision and size",
        description="Time every backend × precision at each size, interleaved with the plain reference (fp32 eager "
                    "PyTorch, NCHW, default settings), and write the results as JSON.")
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
                        help="threads for PyTorch and ONNX Runtime in every case, reference included "
                             "[default: theirs]")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: time with process CPU time (needs --threads 1), which a machine shared with other "
                             "jobs does not inflate [default: wall]")
    parser.add_argument("--quick", action="store_true",
                        help="only the goals' cases (GPU: 1080p fp16; CPU: 512² fp32 and int8), 1 warm-up, 3 repeats")
    parser.add_argument("--compile", action="store_true",
                        help="also time each torch case through torch.compile (compiles once per size first)")
    parser.add_argument("-o", "--output",
                        help="results JSON; a file git tracks is never overwritten [default: "
                             "./fastnst-bench-<host>-<YYYYmmdd-HHMMSS>.json in the current folder]")
    parser.set_defaults(handler=run)


def default_output() -> Path:
    """A new file in the current folder, named by host and start time, so no earlier result (committed or not)
    is replaced."""
    return Path(f"fastnst-bench-{socket.gethostname()}-{time.strftime('%Y%m%d-%H%M%S')}.json")


def tracked_by_git(path: Path) -> bool:
    """True when ``path`` is a file git tracks; False without git, outside a repository, or if git fails."""
    git = shutil.which("git")
    target = path.resolve()
    if git is None or not target.parent.is_dir():
        return False
    try:
        result = subprocess.run([git, "-C", str(target.parent), "ls-files", "--error-unmatch", "--", target.name],
                                capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


def run(args: argparse.Namespace) -> int:
    from fastnst.bench.runner import format_table, run_benchmark
    from fastnst.utils.atomic import atomic_write_text

    if args.quick:
        from fastnst.utils.device import resolve_device

        gpu = resolve_device(args.device).type == "cuda"
        # The goals' cases only: 1080p fp16 on GPUs (each TensorRT precision costs an engine build), 512² on CPUs.
        args.sizes = args.sizes or (["1080p"] if gpu else ["512"])
        args.precisions = args.precisions or (["fp16"] if gpu else ["fp32", "int8"])
        args.warmup, args.repeats = min(args.warmup, 1), min(args.repeats, 3)
    if args.repeats < 1 or args.warmup < 0:
        raise FastNSTError("--repeats must be at least 1 and --warmup at least 0")
    output = Path(args.output) if args.output else default_output()
    if tracked_by_git(output):  # checked before the benchmark runs: minutes of work are not lost to a refusal
        raise FastNSTError(f"{output} is tracked by git and would be overwritten; write to another -o and copy "
                           "the file over it yourself if you mean to replace the committed results")

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    report = run_benchmark(model=args.model, backends=args.backends, precisions=args.precisions, sizes=args.sizes,
                           device=args.device, warmup=args.warmup, repeats=args.repeats,
                           max_seconds=args.max_seconds, threads=args.threads, clock=args.clock,
                           compile=args.compile,
                           progress=None if args.quiet else progress)
    atomic_write_text(output, json.dumps(report, indent=2) + "\n")
    if not args.quiet:
        print(format_table(report))
        print(f"wrote {output}")
    return 0
