#!/usr/bin/env python3
"""Inference benchmark, the same as ``fastnst bench``: latency and images/s per backend × precision × size, with
the plain PyTorch reference (fp32, eager, NCHW, pytorch/examples' way) timed in the same run.

Run from the repository root (it reads models/ and samples/):
    PYTHONPATH=. python benchmarks/inference.py              # CPU or GPU, all sizes (4K only on GPUs by default)
    PYTHONPATH=. python benchmarks/inference.py --quick      # 512² and 1080p, 3 repeats: a couple of minutes
    PYTHONPATH=. python benchmarks/inference.py --device cuda --precisions fp16 --sizes 1080p
Results: benchmarks/results/<host>.json (machine, versions, every timing) and a Markdown table on stdout.
"""

import sys

from fastnst.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
