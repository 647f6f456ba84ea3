"""Defaults that ``--help`` shows and the library uses, in a module that imports nothing.

Building the command line's parser reads these; keeping them here rather than beside the torch code that uses
them keeps ``fastnst --help`` from importing torch. The modules that use them re-export them under the same names.
"""

from __future__ import annotations

DEFAULT_MAX_PIXELS: int = 100_000_000
"""Largest width*height we decode by default: about 1.2 GB as 32-bit RGBA, enough for any real photo while a
crafted header claiming billions of pixels is refused before memory is allocated."""

DEFAULT_MARGIN = 32
"""Pixels mirrored onto every side before stylizing (costs (1 + 2·32/side)² the work: 1.27× at 512², 1.09× at
1080p); see :mod:`fastnst.runtime.margin`."""

DEFAULT_OPSET = 18  # the dynamo exporter's native opset
DEFAULT_TOLERANCE = 1e-4
"""Largest accepted |ONNX Runtime − PyTorch| on [0, 1] outputs of an ONNX export: 1/40 of an 8-bit step."""
DEFAULT_MIN_PSNR = 35.0
"""Reduced-precision ONNX models below this PSNR (dB) against fp32 on held-aside photos are refused."""
