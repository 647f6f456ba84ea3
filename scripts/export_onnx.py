#!/usr/bin/env python3
"""Export a model to verified ONNX: the same as ``fastnst export``, every argument (``-q`` too) passed through.

Example: python scripts/export_onnx.py -m starry_night -q
"""

import sys

from fastnst.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
