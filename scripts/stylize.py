#!/usr/bin/env python3
"""Stylize images: the same as ``fastnst stylize``, every argument (``-q`` too) passed through.

Example: python scripts/stylize.py -m M photo.jpg -o out.jpg -q
"""

import sys

from fastnst.cli import main

if __name__ == "__main__":
    sys.exit(main(["stylize", *sys.argv[1:]]))
