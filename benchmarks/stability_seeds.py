#!/usr/bin/env python3
"""One table over seeds from ``benchmarks/stability.py`` reports (issue 16, part 3).

Each report holds one seed's variants, trained by the same recipe; the goal is judged per seed against that seed's
own ``off`` (style and content ratios) and on the mean over seeds. For every variant this prints one row per seed
and a mean row: plain per-frame flicker (static, pan, object), held-out style and content ÷ the seed's ``off``,
the border luma shift (flagged beyond ±fastnst.training.quality.BORDER_LUMA_MAX) and the same clips' flicker
through the runtime's default margin. Usage:

    python benchmarks/stability_seeds.py benchmarks/results/stability_scratch_1524_ema_seed{0,1,2}.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fastnst.training.quality import BORDER_LUMA_MAX  # noqa: E402

PER_RUN = ("seed", "stability_noise", "stability_shift", "stability_margin")  # seeds differ; variants record the rest
COLUMNS = ("static", "pan", "object", "panned still", "style vs off", "content vs off", "checkerboard levels",
           "border", "margin: static", "margin: pan")


def row_of(entry: dict, off: dict | None) -> dict[str, float | None]:
    """The table's numbers for one variant of one seed (ratios None where the seed has no ``off``)."""
    flicker, heldout, margin = entry["flicker"], entry["heldout"], entry.get("with_margin")
    return {
        "static": flicker["static"], "pan": flicker["pan"], "object": flicker["object"],
        "panned still": flicker["panned_still"],
        "style vs off": heldout["style"] / off["heldout"]["style"] if off else None,
        "content vs off": heldout["content"] / off["heldout"]["content"] if off else None,
        "checkerboard levels": entry["artifacts"]["grid_levels_4"],
        "border": entry["artifacts"]["border_luma_shift"],
        "margin: static": margin["flicker"]["static"] if margin else None,
        "margin: pan": margin["flicker"]["pan"] if margin else None,
    }


def cell(value: float | None, column: str) -> str:
    if value is None:
        return "–"
    if column == "checkerboard levels":  # the flag's amplitude half; its share half is in the reports
        return f"{value:.2f}"
    if column == "border":
        text = f"{value:+.3f}".replace("-", "−")
        return f"**{text}**" if abs(value) > BORDER_LUMA_MAX else text
    return f"{value:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path, help="stability.py reports, one per seed")
    parser.add_argument("--json", type=Path, help="also write the rows and means here")
    args = parser.parse_args()
    rows: dict[str, list[tuple[int, dict]]] = {}
    first: dict | None = None
    for path in args.reports:
        report = json.loads(path.read_text())
        recipe = {k: v for k, v in report["recipe"].items() if k not in PER_RUN}
        first = first or recipe
        if recipe != first:
            differ = {k: recipe.get(k) for k in recipe.keys() | first.keys() if recipe.get(k) != first.get(k)}
            raise SystemExit(f"{path}: trained by another recipe than {args.reports[0]} ({differ}); "
                             "a mean over seeds needs one recipe")
        seed, variants = report["recipe"]["seed"], report["variants"]
        for name, entry in variants.items():
            if name != "shipped":
                rows.setdefault(name, []).append((seed, row_of(entry, variants.get("off"))))
    print("| variant | seed | " + " | ".join(COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    summary: dict[str, dict] = {}
    for name, seeds in rows.items():
        for seed, row in seeds:
            print(f"| {name} | {seed} | " + " | ".join(cell(row[c], c) for c in COLUMNS) + " |")
        means = {c: statistics.fmean(v) if len(v := [r[c] for _, r in seeds if r[c] is not None]) == len(seeds)
                 else None for c in COLUMNS}
        if len(seeds) > 1:
            print(f"| {name}, mean of {len(seeds)} | | " + " | ".join(cell(means[c], c) for c in COLUMNS) + " |")
        summary[name] = {"seeds": [seed for seed, _ in seeds], "rows": [row for _, row in seeds], "mean": means}
    if args.json:
        args.json.write_text(json.dumps({"reports": [str(p) for p in args.reports], "variants": summary},
                                        indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
