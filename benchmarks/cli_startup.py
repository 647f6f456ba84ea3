#!/usr/bin/env python3
"""How long the command line takes to answer ``--help`` and ``--version``, warm, against what torch costs.

Runs ``fastnst --help``, ``fastnst --version`` and ``fastnst COMMAND --help`` for every command as fresh
processes, interleaved round by round (one untimed warm-up round first, so the files are in the page cache), and
reports each case's median wall time and median process CPU time (user + system of the child, which other jobs on
a shared machine inflate less than wall time). The baseline is ``python -c "import torch, torchvision"``: the
parsers used to import both, so every ``--help`` paid at least that. ``python -c pass`` is the interpreter's own
floor. The goal is every fastnst case at or under 1 s. Writes ``benchmarks/results/cli_startup.json``.

    python benchmarks/cli_startup.py                 # 5 timed rounds
    python benchmarks/cli_startup.py --repeats 9 -o /tmp/cli_startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from fastnst.commands import COMMANDS
from fastnst.utils.machine import cpu_model

REPO = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 1.0


def fastnst_command() -> list[str]:
    """The installed entry point beside this interpreter (as a user runs it), else ``python -m fastnst.cli``."""
    script = shutil.which("fastnst", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "fastnst.cli"]


def cases() -> dict[str, list[str]]:
    fastnst = fastnst_command()
    found = {"fastnst --help": [*fastnst, "--help"], "fastnst --version": [*fastnst, "--version"]}
    found.update({f"fastnst {name} --help": [*fastnst, name, "--help"] for name in COMMANDS})
    found["baseline: python -c 'import torch, torchvision'"] = [sys.executable, "-c", "import torch, torchvision"]
    found["floor: python -c pass"] = [sys.executable, "-c", "pass"]
    return found


def timed_run(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, child CPU seconds) of one run; a failing command is an error, not a fast sample."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited with {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def version_of(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def measure(repeats: int) -> dict[str, object]:
    runs = cases()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    load_before = os.getloadavg()
    for round_index in range(repeats + 1):  # round 0 warms the page cache and is not kept
        for name, argv in runs.items():
            sample = timed_run(argv)
            if round_index:
                samples[name].append(sample)
    results = {}
    for name, kept in samples.items():
        walls, cpus = [wall for wall, _ in kept], [cpu for _, cpu in kept]
        results[name] = {"argv": runs[name], "median_wall_s": statistics.median(walls), "max_wall_s": max(walls),
                         "median_cpu_s": statistics.median(cpus), "wall_s": walls, "cpu_s": cpus}
    fastnst_cases = [value for name, value in results.items() if name.startswith("fastnst ")]
    return {
        "what": "warm start-up of the fastnst CLI (fresh process per run), median of the timed rounds",
        "repeats": repeats,
        "goal_seconds": GOAL_SECONDS,
        "all_within_goal": all(case["median_wall_s"] <= GOAL_SECONDS for case in fastnst_cases),
        "slowest_fastnst_median_wall_s": max(case["median_wall_s"] for case in fastnst_cases),
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "load_average_before": load_before,
                    "load_average_after": os.getloadavg(), "python": platform.python_version(),
                    "torch": version_of("torch"), "torchvision": version_of("torchvision"),
                    "fastnst": version_of("fastnst")},
        "cases": results,
    }


def format_table(report: dict[str, object]) -> str:
    lines = ["| case | median wall (s) | max wall (s) | median CPU (s) |", "|---|---:|---:|---:|"]
    for name, case in report["cases"].items():  # type: ignore[union-attr]
        lines.append(f"| `{name}` | {case['median_wall_s']:.3f} | {case['max_wall_s']:.3f} | "
                     f"{case['median_cpu_s']:.3f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds after the warm-up round [default: 5]")
    parser.add_argument("-o", "--output", default=str(REPO / "benchmarks" / "results" / "cli_startup.json"),
                        help="results JSON [default: benchmarks/results/cli_startup.json]")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    report = measure(args.repeats)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(format_table(report))
    machine = report["machine"]
    print(f"\n{machine['cpu']}, {machine['cpu_count']} cores, load {machine['load_average_before'][0]:.2f} → "  # type: ignore[index]
          f"{machine['load_average_after'][0]:.2f}; every fastnst case ≤ {GOAL_SECONDS:g} s: "  # type: ignore[index]
          f"{report['all_within_goal']}; wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
