#!/usr/bin/env python3
"""Train several styles at once on one machine within a time budget, and collect the models.

Used to (re)build ``models/``: every style config given is trained by its own ``fastnst train`` process (they
share the GPU), with the recipe's overrides. With ``--budget-seconds``, a short probe first measures how many
steps per second all runs together reach, and the step count is set so the runs finish inside the budget; a run
still going at the deadline is stopped and exported from its last checkpoint, and can be continued later with
``fastnst train --resume``. Examples:

    python scripts/train_zoo.py configs/styles/*.toml --recipe gpu --budget-seconds 420 --models-dir models
    python scripts/train_zoo.py configs/styles/starry_night.toml --recipe cpu --steps 800
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from fastnst.training.trainer import export_checkpoint

# Recipes: overrides on top of each style's config. The GPU recipe trains at 256² like Johnson et al.; the CPU
# recipe uses smaller crops so a 2-core machine finishes a recognisable model in about half an hour.
RECIPES: dict[str, dict[str, str]] = {
    "gpu": {"--image-size": "256", "--batch-size": "8", "--amp": "bf16", "--learning-rate": "1e-3",
            "--num-workers": "3", "--checkpoint-every": "250", "--preview-every": "500"},
    "cpu": {"--image-size": "128", "--batch-size": "4", "--amp": "auto", "--learning-rate": "2e-3",
            "--num-workers": "1", "--checkpoint-every": "100", "--preview-every": "200"},
}


# Config fields a recipe pins, so a trained model's recipe can be read back from its model.json.
_RECIPE_FIELDS = {"--image-size": "image_size", "--batch-size": "batch_size", "--amp": "amp",
                  "--learning-rate": "learning_rate"}


def recipe_of(config: dict) -> str:
    """Name of the recipe whose settings a run's config (model.json "config") matches, else "custom"."""
    for name, flags in RECIPES.items():
        if all(str(config.get(key)) == value or _same_number(config.get(key), value)
               for flag, key in _RECIPE_FIELDS.items() if (value := flags.get(flag)) is not None):
            return name
    return "custom"


def _same_number(a: object, b: str) -> bool:
    try:
        return float(a) == float(b)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def launch(config: Path, steps: int, run_dir: Path, recipe: dict[str, str], extra: list[str], threads: int,
           log_path: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "fastnst.cli", "-q", "train", "-c", str(config), "--steps", str(steps),
            "--output-dir", str(run_dir)]
    for flag, value in recipe.items():
        args += [flag, value]
    args += extra
    if (run_dir / "checkpoints" / "last.pt").is_file():
        args.append("--resume")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    return subprocess.Popen(args, stdout=open(log_path, "w"), stderr=subprocess.STDOUT, env=env)


def run_all(configs: list[Path], steps: int, runs_dir: Path, recipe: dict[str, str], extra: list[str],
            threads: int, deadline: float | None) -> dict[str, int | None]:
    """Run every config in parallel; returns each style's exit code (None when stopped at the deadline)."""
    procs = {}
    for config in configs:
        run_dir = runs_dir / config.stem
        run_dir.mkdir(parents=True, exist_ok=True)
        procs[config.stem] = launch(config, steps, run_dir, recipe, extra, threads, run_dir / "train.log")
    codes: dict[str, int | None] = {}
    while len(codes) < len(procs):
        for name, proc in procs.items():
            if name not in codes and proc.poll() is not None:
                codes[name] = proc.returncode
        if deadline is not None and time.time() > deadline:
            for name, proc in procs.items():
                if name not in codes:
                    proc.terminate()  # the trainer checkpoints the step it is on, then exits
            for name, proc in procs.items():
                if name not in codes:
                    proc.wait(timeout=120)
                    codes[name] = None
        time.sleep(0.5)
    return codes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+", type=Path, help="style config files")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="gpu")
    parser.add_argument("--steps", type=int, default=2000, help="steps per style (without --budget-seconds)")
    parser.add_argument("--budget-seconds", type=float, help="wall-clock budget for probe plus training")
    parser.add_argument("--max-seconds", type=float,
                        help="hard wall-clock limit for a fixed --steps (no probe): runs still going then stop "
                             "with a checkpoint and are exported from it")
    parser.add_argument("--probe-steps", type=int, default=40)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/zoo"))
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per training process")
    parser.epilog = "Flags after a lone '--' are passed to every 'fastnst train' run."
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    extra = argv[split + 1:]
    recipe = RECIPES[args.recipe]
    start = time.time()
    steps = args.steps
    if args.budget_seconds:
        # Probe: all runs in parallel for a few steps; the trainers' own step timings (model.json) separate the
        # per-step cost under contention from the start-up cost.
        probe_dir = args.runs_dir / "_probe"
        shutil.rmtree(probe_dir, ignore_errors=True)
        t0 = time.time()
        run_all(args.configs, args.probe_steps, probe_dir, recipe, extra + ["--no-tensorboard"], args.threads, None)
        wall = time.time() - t0
        step_seconds = [json.loads((probe_dir / c.stem / "model.json").read_text())["train_seconds"]
                        for c in args.configs if (probe_dir / c.stem / "model.json").is_file()]
        if not step_seconds:
            print(f"probe failed; see {probe_dir}/*/train.log", flush=True)
            return 1
        per_step = max(step_seconds) / args.probe_steps
        startup = max(0.0, wall - max(step_seconds))
        remaining = args.budget_seconds - (time.time() - start) - startup - 20  # 20 s for the final saves
        steps = max(args.probe_steps, int(0.9 * remaining / per_step))  # 10% for logging and previews
        print(f"probe: {per_step:.3f} s per step with {len(args.configs)} runs in parallel, start-up "
              f"{startup:.1f} s → {steps} steps each", flush=True)
    limit = args.budget_seconds or args.max_seconds
    deadline = start + limit if limit else None
    codes = run_all(args.configs, steps, args.runs_dir, recipe, extra, args.threads, deadline)

    summary = {}
    for config in args.configs:
        name, run_dir = config.stem, args.runs_dir / config.stem
        code = codes[config.stem]
        checkpoint = run_dir / "checkpoints" / "last.pt"
        target = args.models_dir / name
        if code == 0:
            target.mkdir(parents=True, exist_ok=True)
            for file in ("model.safetensors", "model.json"):
                shutil.copy2(run_dir / file, target / file)
        elif checkpoint.is_file():
            export_checkpoint(checkpoint, target)
        else:
            print(f"{name}: failed (exit {code}); see {run_dir / 'train.log'}", flush=True)
            continue
        meta = json.loads((target / "model.json").read_text())
        summary[name] = {"exit": code, "steps": meta["steps"], "final_losses": meta.get("final_losses")}
        print(f"{name}: {'finished' if code == 0 else 'stopped'} at step {meta['steps']} → {target}", flush=True)
    print(json.dumps(summary, indent=1))
    return 0 if summary else 1


if __name__ == "__main__":
    sys.exit(main())
