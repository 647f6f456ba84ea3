#!/usr/bin/env python3
"""Train a style network: the same as ``fastnst train``, every argument (``-q`` too) passed through.

Example: python scripts/train.py -c configs/styles/X.toml -q; python scripts/train.py --output-dir RUN --resume
"""

import sys

from fastnst.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
