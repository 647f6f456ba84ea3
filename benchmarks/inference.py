#!/usr/bin/env python3
"""Inference benchmark, the same as ``fastnst bench``: latency and images/s per backend × precision × size, with
the plain PyTorch reference (fp32, eager, NCHW, pytorch/examples' way) timed in the same run.

Run from the repository root (it reads models/ and samples/); it needs torch, numpy, pillow, safetensors and
onnxruntime(-gpu) only, not the rest of fastnst's dependencies:
    PYTHONPATH=. python benchmarks/inference.py              # CPU or GPU, all sizes (4K only on GPUs by default)
    PYTHONPATH=. python benchmarks/inference.py --quick      # the goals' cases only: a minute or two
    PYTHONPATH=. python benchmarks/inference.py --device cuda --precisions fp16 --sizes 1080p 4k
Results: ./fastnst-bench-<host>-<time>.json unless -o names a file (machine, versions, every timing; a file git
tracks is never overwritten: write elsewhere and copy it over to update one) and a Markdown table on stdout.
"""

import argparse
import logging
import sys

from fastnst.commands import bench
from fastnst.utils.errors import FastNSTError


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/inference.py")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress or info messages")
    bench.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench", *argv] if "-q" not in argv and "--quiet" not in argv
                             else ["-q", "bench", *[a for a in argv if a not in ("-q", "--quiet")]])
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        return args.handler(args)
    except FastNSTError as exc:
        print(f"inference.py: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
