"""Which run learned each style of a model grown from a base.

Why a module of its own: a model trained with ``--base`` holds rows learned by several runs, each with its own
recipe (weights, steps, paintings), while ``model.json``'s ``config`` is the last run's only. The trainer writes a
``lineage`` (one record per run, oldest first) so that evaluation and model cards can measure every style with the
definitions its own run optimised. The records are plain dicts of the metadata, so this module needs no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastnst.training.config import TrainConfig, painting_names

# What a lineage record keeps of a run besides its config and the styles it learned.
RUN_FACTS = ("steps", "final_losses", "train_seconds", "hardware", "precision")


def run_record(config: TrainConfig, *, steps: int, losses: Mapping[str, float], seconds: float,
               run_info: Mapping[str, str]) -> dict[str, Any]:
    """The lineage record of a run: the styles it learned, its config, its last losses and how long it ran."""
    return {"styles": [name for name, _ in config.paintings], "steps": steps, "final_losses": dict(losses),
            "train_seconds": round(seconds, 1),
            **{key: run_info[key] for key in ("hardware", "precision") if key in run_info},
            "config": config.to_dict()}


def lineage_of(metadata: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A model's runs, oldest first. A model without a ``lineage`` is one run (of every style, or, when an older
    fastnst grew it from a base, of the styles its config names)."""
    if "lineage" in metadata:
        return [dict(record) for record in metadata["lineage"]]
    config = dict(metadata.get("config", {}))
    names = painting_names(config.get("style_name", ""), config.get("style_images", ()),
                           config.get("style_names", ()))
    return [{"styles": list(names), **{key: metadata[key] for key in RUN_FACTS if key in metadata},
             "config": config}]


def learned_by(lineage: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Each style's run in ``lineage`` (its index): the last run that learned it, since a later run with
    ``relearn`` replaces an earlier one's row."""
    return {name: index for index, record in enumerate(lineage) for name in record["styles"]}
