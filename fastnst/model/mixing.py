"""Which style, or which mix of styles, a multi-style model runs: names resolved to normalised weights.

A request names one style (``style="great_wave"``) or a mix (``mix={"starry_night": 0.7, "great_wave": 0.3}``,
or the command line's ``starry_night=0.7,great_wave=0.3``); weights are normalised to sum to 1. A model's styles
are listed in its metadata (``"styles"``); a single-style model holds its one style.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from fastnst.utils.errors import FastNSTError

Mix = Mapping[str, float]


def style_entries(metadata: Mapping[str, Any], default_name: str) -> list[dict[str, str]]:
    """The styles a model holds, in the order of its norm rows, as ``{"name", "image"}`` (the painting's file name,
    "" when unknown): model.json's ``styles`` list, or a single-style model's ``style_name`` and ``style_image``."""
    styles = metadata.get("styles")
    if isinstance(styles, list) and styles:
        return [{"name": str(entry.get("name", f"style{index}")), "image": str(entry.get("image") or "")}
                if isinstance(entry, Mapping) else {"name": str(entry), "image": ""}
                for index, entry in enumerate(styles)]
    return [{"name": str(metadata.get("style_name") or default_name),
             "image": str(metadata.get("style_image") or "")}]


def model_styles(metadata: Mapping[str, Any], default_name: str) -> list[str]:
    """The style names a model holds, in the order of its norm rows."""
    return [entry["name"] for entry in style_entries(metadata, default_name)]


def parse_mix(text: str) -> dict[str, float]:
    """``"starry_night=0.7,great_wave=0.3"`` → ``{"starry_night": 0.7, "great_wave": 0.3}``."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        try:
            weight = float(value) if sep else math.nan
        except ValueError:
            weight = math.nan
        if not name or math.isnan(weight):
            raise FastNSTError("a mix is NAME=WEIGHT,NAME=WEIGHT (e.g. starry_night=0.7,great_wave=0.3), got "
                               f"{text!r}", setting="mix")
        if name in mix:
            raise FastNSTError(f"style {name!r} appears twice in the mix {text!r}", setting="mix")
        mix[name] = weight
    return mix


def style_weights(styles: Sequence[str], *, style: str | None = None, mix: Mix | None = None) -> list[float]:
    """One weight per style of ``styles``, summing to 1: ``style`` alone, the normalised ``mix``, or the first
    style when neither is given. Unknown names are refused with the list of the model's styles."""
    if style is not None and mix:
        raise FastNSTError("give a style or a mix, not both", setting="style")
    wanted: Mix = {style: 1.0} if style is not None else (mix or {styles[0]: 1.0})
    unknown = [name for name in wanted if name not in styles]
    if unknown:
        raise FastNSTError(f"the model has no style {', '.join(map(repr, unknown))}; its styles: {', '.join(styles)}",
                           setting="style")
    if any(not math.isfinite(weight) or weight < 0 for weight in wanted.values()):
        raise FastNSTError("mix weights must be finite and not negative", setting="mix")
    total = sum(wanted.values())
    if total <= 0:
        raise FastNSTError("a mix needs at least one positive weight", setting="mix")
    return [wanted.get(name, 0.0) / total for name in styles]
