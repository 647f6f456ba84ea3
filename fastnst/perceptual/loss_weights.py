"""The global weights of the perceptual loss's three terms, as a value with no torch behind it.

Option classes (the classic optimizer's) carry default weights per VGG; the CLI builds its flags from them, and
``fastnst --help`` must not import torch. :mod:`fastnst.perceptual.losses` re-exports this class.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LossWeights:
    """Global weights of the three terms."""

    content: float
    style: float
    tv: float
