#!/usr/bin/env python3
"""Quality per step: fastnst's trainer against the pytorch/examples recipe, judged by Gatys et al.'s losses.

Both trainers learn the same painting from the same photos (every ``--holdout-every``-th photo of the sorted folder
is held out and never trained on) at 256² × batch 4. The reference runs as pytorch/examples ships it
(``benchmarks/reference_recipe.py``: fp32, constant learning rate, Resize + CenterCrop, no shuffling, the last
partial batch of each epoch kept); fastnst runs with its own defaults, plus any ``--variant`` (one config change
each, for ablations). With a constant learning rate (fastnst's default) one training serves every length: the model
after k steps of a longer run is the k-step model, written out as the run passes step k; a schedule that depends on
the run's length (cooldown, cosine) trains each length on its own. Each model then stylizes
the held-out photos (shorter side 256) and is scored by the judge (:class:`fastnst.training.quality.GatysJudge`,
Caffe VGG19, which neither trainer optimises); lower is better.

Runs are kept under ``--runs-dir`` and reused when their settings match, so training can be spread over several
processes (``--only``) and the evaluation run afterwards; ``--reference-from`` takes the (deterministic) reference's
results from an earlier report instead of training it again. Each process trains on ``--threads`` threads and records
process CPU time, so runs side by side on a shared machine still report comparable costs. Example:

    python benchmarks/quality_vs_reference.py --steps 200 800 \\
        --paintings ../shared/data/styles/van_gogh_the_harvest.jpg \\
                    ../shared/data/styles/hokusai_kazusa_sea_route.jpg \\
        --variant fp32:amp=none --equal-time 200
    python benchmarks/quality_vs_reference.py --steps 200 --seeds 0 1 2 --no-grid   # spread over seeds
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import re
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from PIL import Image
from torchvision import transforms

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference_recipe import ReferenceTrainer, ReferenceTransformerNet  # noqa: E402

from fastnst.model.files import load_model  # noqa: E402
from fastnst.perceptual.weights.resolve import load_vgg_features_state  # noqa: E402
from fastnst.training.config import TrainConfig, load_config  # noqa: E402
from fastnst.training.data import find_photos, split_holdout  # noqa: E402
from fastnst.training.quality import GatysJudge, load_eval_image  # noqa: E402
from fastnst.training.trainer import StepReport, Trainer, TrainingStopped  # noqa: E402
from fastnst.utils.atomic import atomic_path, atomic_write_text  # noqa: E402
from fastnst.utils.images import image_to_tensor, load_rgb, save_image, tensor_to_image  # noqa: E402
from fastnst.utils.machine import cpu_details  # noqa: E402

DEFAULT_PAINTINGS = ("van_gogh_the_harvest.jpg", "hokusai_kazusa_sea_route.jpg")  # no shipped model uses them
IMAGE_SIZE, BATCH_SIZE = 256, 4
GRID_PHOTOS, GRID_SIDE = 4, 160


@dataclass(frozen=True)
class Run:
    trainer: str  # "reference", "fastnst" or "fastnst-<variant>"
    painting: Path
    steps: int
    overrides: tuple[tuple[str, object], ...] = ()
    seed: int = 0  # the trainer's seed (the reference's: its network's initialisation)

    @property
    def name(self) -> str:
        return f"{self.trainer}/{self.painting.stem}/{self.steps}" + (f"/seed{self.seed}" if self.seed else "")

    @property
    def reference(self) -> Run:
        """The reference run this one is judged against: same painting, length and seed."""
        return Run("reference", self.painting, self.steps, seed=self.seed)

    def folder(self, root: Path) -> Path:
        """Where this run's model and run.json are written."""
        return self._seed_folder(root, f"steps{self.steps}")

    def training_folder(self, root: Path, length: int | None = None) -> Path:
        """Where this run's recipe trains: one training per recipe, painting and seed serves every length, or with
        ``length``, one training of that length (so processes training other lengths do not share it)."""
        return self._seed_folder(root, "train" if length is None else f"train{length}")

    def _seed_folder(self, root: Path, stem: str) -> Path:
        return root / self.trainer / self.painting.stem / (stem + (f"-seed{self.seed}" if self.seed else ""))

    def config_overrides(self) -> dict:
        """A fastnst run's config changes: its variant's, and its seed unless 0 (so earlier runs stay valid)."""
        return {**dict(self.overrides), **({"seed": self.seed} if self.seed else {})}

    def settings(self, data_dir: Path, holdout_every: int) -> dict:
        return {"trainer": self.trainer, "painting": str(self.painting), "steps": self.steps,
                "overrides": dict(self.overrides), "data_dir": str(data_dir), "holdout_every": holdout_every,
                "image_size": IMAGE_SIZE, "batch_size": BATCH_SIZE, **({"seed": self.seed} if self.seed else {})}


def parse_value(text: str) -> object:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_variant(text: str) -> tuple[str, tuple[tuple[str, object], ...]]:
    """``name:key=value,key=value`` → (name, overrides)."""
    name, _, body = text.partition(":")
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", name) or not body:
        raise SystemExit(f"--variant {text!r}: expected name:key=value[,key=value] (name in a-z, 0-9, '.', '-')")
    pairs = []
    for item in body.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--variant {text!r}: {item!r} is not key=value")
        pairs.append((key.strip(), parse_value(value.strip())))
    return name, tuple(pairs)


# --------------------------------------------------------------------------------------------- training


def reference_batches(train_files: list[Path], steps: int) -> list[torch.Tensor]:
    """pytorch/examples' data order: ImageFolder's sorted files, Resize + CenterCrop to 256, unshuffled batches of
    4 with the last partial one kept, epoch after epoch, on the 0..255 scale."""
    prepare = transforms.Compose([transforms.Resize(IMAGE_SIZE), transforms.CenterCrop(IMAGE_SIZE),
                                  transforms.ToTensor()])
    crops = [prepare(load_rgb(path)) * 255.0 for path in train_files]
    epoch = [torch.stack(crops[i:i + BATCH_SIZE]) for i in range(0, len(crops), BATCH_SIZE)]
    return [epoch[step % len(epoch)] for step in range(steps)]


def train_reference(painting: Path, snapshots: list[Run], train_files: list[Path], root: Path,
                    settings: dict[Run, dict], seed: int = 0) -> None:
    """One reference run to the longest requested length; its constant learning rate makes the model at step k
    the model of a k-step run, so every shorter length is a snapshot of the same run."""
    last = max(run.steps for run in snapshots)
    batches = reference_batches(train_files, last)
    trainer = ReferenceTrainer(load_vgg_features_state("vgg16"), image_to_tensor(load_rgb(painting)),
                               torch.device("cpu"), seed)
    wall, cpu = time.perf_counter(), time.process_time()
    for step, batch in enumerate(batches, start=1):
        trainer.step(batch)
        for run in (run for run in snapshots if run.steps == step):
            folder = run.folder(root)
            with atomic_path(folder / "model.pt") as tmp:
                torch.save(trainer.model.state_dict(), tmp)
            record = {"settings": settings[run], "wall_seconds": time.perf_counter() - wall,
                      "cpu_seconds": time.process_time() - cpu, "threads": torch.get_num_threads()}
            atomic_write_text(folder / "run.json", json.dumps(record, indent=2))
            print(f"{run.name}: {record['cpu_seconds']:.0f} CPU s", flush=True)


def fastnst_config(painting: Path, overrides: dict, data_dir: Path, holdout_every: int, folder: Path,
                   steps: int) -> TrainConfig:
    return load_config(None, {
        "style_image": str(painting), "data_dir": str(data_dir), "holdout_every": holdout_every, "steps": steps,
        "image_size": IMAGE_SIZE, "batch_size": BATCH_SIZE, "device": "cpu", "tensorboard": False,
        "num_workers": 0, "checkpoint_every": steps, "output_dir": str(folder), **overrides})


def recipe(config: TrainConfig) -> dict:
    """What decides a fastnst run's result, defaults included (a changed default makes old runs stale)."""
    skip = {"steps", "checkpoint_every", "output_dir"}
    values = {key: value for key, value in config.to_dict().items() if key not in skip}
    return json.loads(json.dumps(values))  # as run.json will read back (tuples become lists)


def train_fastnst(runs: list[Run], data_dir: Path, holdout_every: int, root: Path, settings: dict[Run, dict],
                  cpu_budget: float | None = None, length: int | None = None) -> None:
    """One training of one recipe on one painting, written out at each run's length.

    With a constant learning rate the model after k steps of a longer run is the model of a k-step run, so one run
    serves every length; ``cpu_budget`` adds the model reached when the run's process CPU time passes it (the last
    run of ``runs``, the equal-time one, whose ``steps`` is the reference length it matches). ``length`` trains the
    single run of ``runs`` for that many steps instead of its ``steps`` (an equal-time run of a schedule that
    depends on the run's length, sized beforehand)."""
    timed = runs[-1] if cpu_budget is not None else None
    lengths = {run.steps: run for run in runs if run is not timed}
    if length is not None:
        (only,) = runs
        lengths = {length: only}
    if len(runs) == 1:  # a training of its own length
        folder = runs[0].training_folder(root, length or runs[0].steps)
    else:  # snapshots of one constant-rate training
        folder = runs[0].training_folder(root)
    if folder.exists():  # a stale or unfinished attempt: start over
        for path in sorted(folder.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    longest = max(lengths)
    # An equal-time run stops itself; the planned length only has to be out of its reach.
    planned = longest if timed is None else 100 * max(longest, timed.steps)
    config = fastnst_config(runs[0].painting, runs[0].config_overrides(), data_dir,
                            holdout_every, folder, planned)
    if len(runs) > 1 and config.schedule != "constant":
        raise ValueError("snapshots of one run stand for shorter runs only with schedule = 'constant'")
    wall, cpu = time.perf_counter(), time.process_time()
    pending = dict(lengths)

    def write(run: Run, step: int) -> None:
        trainer.write_model(run.folder(root))
        record = {"settings": settings[run], "steps_trained": step, "wall_seconds": time.perf_counter() - wall,
                  "cpu_seconds": time.process_time() - cpu, "threads": torch.get_num_threads()}
        atomic_write_text(run.folder(root) / "run.json", json.dumps(record, indent=2))
        print(f"{run.name}: {step} steps, {record['cpu_seconds']:.0f} CPU s", flush=True)

    def on_step(report: StepReport) -> None:
        nonlocal timed
        if report.step in pending:
            write(pending.pop(report.step), report.step)
        if timed is not None and time.process_time() - cpu >= cpu_budget:
            write(timed, report.step)
            timed = None
        if timed is None and not pending and report.step < planned:
            trainer.request_stop()

    trainer = Trainer(config, on_step=on_step)
    with contextlib.suppress(TrainingStopped):  # the equal-time run asked to stop
        trainer.run()


def equal_time_length(group: list[Run], timed: Run, root: Path, settings: dict[Run, dict]) -> int:
    """How many steps of the recipe fit the equal-time run's CPU budget, at the CPU time per step its longest
    trained run of this process's machine measured (the run's learning-rate schedule needs its length up front)."""
    trained = [run for run in group if run is not timed and is_done(run, root, settings[run])]
    if not trained:
        raise SystemExit(f"{timed.name}: the schedule depends on the run length, so the equal-time length comes "
                         "from a trained run's CPU time per step; train the other lengths first")
    record = run_record(max(trained, key=lambda run: run.steps), root)
    return max(1, int(settings[timed]["cpu_budget"] / (record["cpu_seconds"] / record["steps_trained"])))


def run_record(run: Run, root: Path) -> dict | None:
    """The run.json a finished training wrote for ``run`` (its settings and CPU time), or None if there is none."""
    path = run.folder(root) / "run.json"
    return json.loads(path.read_text()) if path.is_file() else None


def is_done(run: Run, root: Path, settings: dict) -> bool:
    """Whether ``run`` was trained with ``settings``; a config key added since counts as unchanged while it keeps
    its default."""
    record = run_record(run, root)
    if record is None:
        return False
    stored = record["settings"]
    if "recipe" in stored and "recipe" in settings:
        fields = TrainConfig.__dataclass_fields__
        added = {key: value for key, value in settings["recipe"].items()
                 if key not in stored["recipe"] and key in fields and value == fields[key].default}
        stored = {**stored, "recipe": {**stored["recipe"], **added}}
    return stored == settings


# ------------------------------------------------------------------------------------------- evaluation


def stylizer(run: Run, root: Path):
    """A function [1, 3, H, W] in [0, 1] → the run's output clamped to [0, 1]."""
    folder = run.folder(root)
    if run.trainer == "reference":
        net = ReferenceTransformerNet()
        net.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
        net.eval()
        return lambda photo: (net(photo * 255.0) / 255.0).clamp(0, 1)
    model, _ = load_model(folder)
    model.eval()
    return lambda photo: model(photo).float().clamp(0, 1)


@torch.no_grad()
def judge_run(run: Run, root: Path, judge: GatysJudge, photos: list[torch.Tensor],
              photo_features: list[torch.Tensor]) -> tuple[dict, list[torch.Tensor]]:
    stylize = stylizer(run, root)
    outputs = [stylize(photo) for photo in photos]
    scores = [judge(out, feats) for out, feats in zip(outputs, photo_features, strict=True)]
    record = run_record(run, root)
    return {"content": statistics.fmean(s["content"] for s in scores),
            "style": statistics.fmean(s["style"] for s in scores),
            "steps_trained": record.get("steps_trained", run.steps),
            "cpu_seconds": record["cpu_seconds"], "wall_seconds": record["wall_seconds"],
            "threads": record["threads"]}, outputs[:GRID_PHOTOS]


def reused_reference(report: Path, runs: list[Run], held_out: list[Path], data_dir: Path,
                     train_photos: int) -> dict[Run, dict]:
    """The reference runs whose judge results an earlier report holds for the same photos and batches.

    The reference trains deterministically (fixed data order, seeded initialisation, fp32), so its numbers from an
    earlier report stand for a new training; each reused entry records where it came from."""
    earlier = json.loads(report.read_text())
    same_setup = (earlier.get("judge", {}).get("photos") == [str(path.relative_to(data_dir)) for path in held_out]
                  and earlier.get("train_photos") == train_photos and earlier.get("image_size") == IMAGE_SIZE
                  and earlier.get("batch_size") == BATCH_SIZE)
    if not same_setup:
        raise SystemExit(f"--reference-from {report}: its held-out photos, training photos or batch differ")
    found = {}
    for run in (run for run in runs if run.trainer == "reference"):
        entry = earlier["results"].get(run.name)
        if entry and entry["painting"] == run.painting.name and entry.get("seed", 0) == run.seed:
            keep = ("content", "style", "steps_trained", "cpu_seconds", "wall_seconds", "threads")
            found[run] = {key: entry[key] for key in keep if key in entry} | {
                "reused_from": str(report.name), "measured_on": earlier.get("machine", {}).get("cpu", "unknown")}
    return found


def thumbnail(image: torch.Tensor) -> Image.Image:
    picture = tensor_to_image(image)
    return picture.resize((round(picture.width * GRID_SIDE / picture.height), GRID_SIDE), Image.Resampling.LANCZOS)


def write_grid(path: Path, rows: list[list[torch.Tensor]]) -> None:
    """One row per photo: the photo, then each trainer's output (columns in the order of the results table)."""
    tiles = [[thumbnail(image) for image in row] for row in rows]
    width = max(sum(tile.width for tile in row) + 4 * (len(row) - 1) for row in tiles)
    grid = Image.new("RGB", (width, len(tiles) * (GRID_SIDE + 4) - 4), "white")
    for r, row in enumerate(tiles):
        x = 0
        for tile in row:
            grid.paste(tile, (x, r * (GRID_SIDE + 4)))
            x += tile.width + 4
    save_image(grid, path)


def seed_summary(results: dict[str, dict]) -> list[dict]:
    """Per painting and length: each fastnst trainer's (defaults, variants) and the reference's mean and standard
    deviation of the judge's losses over the seeds, and their means over the reference's (printed too)."""
    cells: dict[tuple[str, int], dict[str, list[dict]]] = {}
    for entry in results.values():
        if entry["trainer"] != "fastnst-equal-time":
            cells.setdefault((entry["painting"], entry["steps"]), {}).setdefault(entry["trainer"], []).append(entry)
    out = []
    print(f"\nover seeds: {'trainer':<24} {'painting':<34}{'steps':>7}{'seeds':>7}{'style × ref':>13}"
          f"{'± (it, ref)':>15}{'content × ref':>15}{'± (it, ref)':>15}")

    def mean_and_spread(entries: list[dict], loss: str) -> dict:
        values = [e[loss] for e in entries]
        return {"mean": statistics.fmean(values), "stdev": statistics.stdev(values) if len(values) > 1 else 0.0}

    for (painting, steps), by in cells.items():
        reference = by.get("reference")
        for trainer, entries in by.items():
            if trainer == "reference" or not reference:
                continue
            row: dict = {"trainer": trainer, "painting": painting, "steps": steps,
                         "seeds": sorted(e["seed"] for e in entries)}
            for loss in ("style", "content"):
                row[f"{trainer}_{loss}"] = mine = mean_and_spread(entries, loss)
                row[f"reference_{loss}"] = ref = mean_and_spread(reference, loss)
                row[f"{loss}_vs_reference"] = mine["mean"] / ref["mean"]
                row[f"{loss}_spread"] = (f"{mine['stdev'] / mine['mean']:.1%}/{ref['stdev'] / ref['mean']:.1%}")
            print(f"{'':<12}{trainer:<24} {painting:<34}{steps:>7}{len(row['seeds']):>7}"
                  f"{row['style_vs_reference']:>13.3f}{row['style_spread']:>15}{row['content_vs_reference']:>15.3f}"
                  f"{row['content_spread']:>15}")
            out.append(row)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paintings", nargs="+", type=Path,
                        default=[SHARED / "styles" / name for name in DEFAULT_PAINTINGS])
    parser.add_argument("--steps", nargs="+", type=int, default=[200, 800])
    parser.add_argument("--data-dir", type=Path, default=SHARED / "photos")
    parser.add_argument("--holdout-every", type=int, default=4, help="every Nth photo is held out (4: 43 of 172)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE[,KEY=VALUE]",
                        help="an extra fastnst run with these config changes (repeatable), e.g. "
                             "constant-lr:schedule=constant")
    parser.add_argument("--variant-paintings", type=int, default=1,
                        help="variants run on this many of the paintings (the first ones)")
    parser.add_argument("--variant-steps", nargs="*", type=int, help="steps for the variants (default: the first)")
    parser.add_argument("--equal-time", type=int, metavar="STEPS",
                        help="also report fastnst after as much CPU time as the reference's STEPS-step run took "
                             "(needs that reference run first: train it with --only ^reference; with a schedule "
                             "that depends on the run length, the steps come from the CPU time per step of "
                             "fastnst's longest --steps run)")
    parser.add_argument("--only", help="train only runs whose name (trainer/painting/steps) matches this regex, "
                                       "and skip the evaluation")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0],
                        help="train every trainer and variant once per seed (--equal-time: the first seed only); "
                             "the summary gives each one's mean and spread over them against the reference's")
    parser.add_argument("--no-defaults", action="store_true",
                        help="leave out fastnst's defaults: judge only the variants against the reference")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs-dir", type=Path, default=REPO / "runs" / "quality_vs_reference")
    parser.add_argument("--judge-weights", type=Path, default=SHARED / "vgg" / "vgg19_features_caffe.pth")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "quality_vs_reference.json")
    parser.add_argument("--grid", type=Path, default=REPO / "benchmarks" / "results" / "quality_vs_reference.png")
    parser.add_argument("--no-grid", action="store_true", help="write only the JSON")
    parser.add_argument("--reference-from", type=Path, metavar="JSON",
                        help="take the reference's judge results from this earlier report instead of training it "
                             "again (its training is deterministic); only entries of the same painting, length, "
                             "seed, held-out photos and batch are used, the rest is trained. Implies --no-grid")
    args = parser.parse_args()
    args.no_grid = args.no_grid or args.reference_from is not None
    torch.set_num_threads(args.threads)
    args.paintings = [path.resolve() for path in args.paintings]  # run folders are matched by these paths
    args.data_dir = args.data_dir.resolve()
    missing = [str(p) for p in args.paintings if not p.is_file()]
    if missing or not args.data_dir.is_dir():
        raise SystemExit(f"missing: {', '.join(missing) or args.data_dir} (is ../shared/data beside the repo?)")

    train_files, held_out = split_holdout(find_photos(args.data_dir), args.holdout_every)
    variants = [parse_variant(text) for text in args.variant]
    trainers = ("reference",) if args.no_defaults else ("reference", "fastnst")
    runs = [Run(trainer, painting, steps, seed=seed) for seed in args.seeds for painting in args.paintings
            for steps in args.steps for trainer in trainers]
    first = args.seeds[0]
    runs += [Run(f"fastnst-{name}", painting, steps, overrides, seed) for seed in args.seeds
             for name, overrides in variants for painting in args.paintings[:args.variant_paintings]
             for steps in (args.variant_steps or args.steps[:1])]
    root = args.runs_dir
    settings = {run: run.settings(args.data_dir, args.holdout_every) for run in runs}
    recipes = {run: recipe(fastnst_config(run.painting, run.config_overrides(),
                                          args.data_dir, args.holdout_every, root, run.steps))
               for run in runs if run.trainer != "reference"}
    for run, values in recipes.items():
        settings[run]["recipe"] = values
    reused = (reused_reference(args.reference_from, runs, held_out, args.data_dir, len(train_files))
              if args.reference_from else {})
    if args.equal_time:
        for painting in args.paintings:
            ref = Run("reference", painting, args.equal_time, seed=first)
            own = Run("fastnst", painting, max(args.steps), seed=first)
            if ref in reused:
                if reused[ref]["measured_on"] != cpu_details():  # CPU seconds do not carry across CPU types
                    raise SystemExit(f"--equal-time {args.equal_time}: {ref.name}'s CPU time in --reference-from was "
                                     f"measured on {reused[ref]['measured_on']}, not this {cpu_details()}; train "
                                     "the reference here (without --reference-from)")
                budget = reused[ref]["cpu_seconds"]
            elif is_done(ref, root, ref.settings(args.data_dir, args.holdout_every)):
                budget = run_record(ref, root)["cpu_seconds"]
            else:
                raise SystemExit(f"--equal-time {args.equal_time}: {ref.name} is not trained yet (include "
                                 f"{args.equal_time} in --steps and train it with --only ^reference)")
            run = Run("fastnst-equal-time", painting, args.equal_time, seed=first)
            runs.append(run)
            settings[run] = {**run.settings(args.data_dir, args.holdout_every), "recipe": recipes[own],
                             "cpu_budget": budget}

    def wanted(run: Run) -> bool:
        return args.only is None or re.search(args.only, run.name) is not None

    for painting in args.paintings:
        for seed in args.seeds:
            every = [run for run in runs if run.trainer == "reference" and run.painting == painting
                     and run.seed == seed and run not in reused]
            if any(wanted(run) and not is_done(run, root, settings[run]) for run in every):
                train_reference(painting, every, train_files, root, settings, seed)
    groups: dict[tuple, list[Run]] = {}  # one training per recipe and painting (snapshots give the lengths)
    for run in runs:
        if run.trainer != "reference":
            trainer = "fastnst" if run.trainer == "fastnst-equal-time" else run.trainer
            groups.setdefault((trainer, run.painting, run.overrides, run.seed), []).append(run)
    for group in groups.values():
        if not any(wanted(run) and not is_done(run, root, settings[run]) for run in group):
            continue
        timed = next((run for run in group if run.trainer == "fastnst-equal-time"), None)
        if settings[group[0]]["recipe"]["schedule"] == "constant":
            train_fastnst(group, args.data_dir, args.holdout_every, root, settings,
                          settings[timed]["cpu_budget"] if timed else None)
        else:  # the schedule depends on the run length: one training per length
            for run in group:
                if run is not timed and wanted(run) and not is_done(run, root, settings[run]):
                    train_fastnst([run], args.data_dir, args.holdout_every, root, settings)
            if timed is not None and wanted(timed) and not is_done(timed, root, settings[timed]):
                length = equal_time_length(group, timed, root, settings)
                print(f"{timed.name}: {length} steps fit the reference's CPU time", flush=True)
                train_fastnst([timed], args.data_dir, args.holdout_every, root, settings, length=length)
    if args.only is not None:
        return 0

    absent = [run.name for run in runs if run not in reused and not is_done(run, root, settings[run])]
    if absent:
        raise SystemExit(f"runs not trained: {', '.join(absent)}")
    # Cropped (≤ 3 px) to multiples of 4: the reference network has no padding of its own for other sizes.
    photos = [photo[..., :photo.shape[-2] // 4 * 4, :photo.shape[-1] // 4 * 4]
              for photo in (load_eval_image(path) for path in held_out)]
    results: dict[str, dict] = {}
    reference_of: dict[str, str] = {}
    grid_rows: dict[str, list[list[torch.Tensor]]] = {}
    for painting in args.paintings:
        judge = GatysJudge(painting, args.judge_weights)
        features = [judge.content_features(photo) for photo in photos]
        rows = [[photo] for photo in photos[:GRID_PHOTOS]]
        for run in (run for run in runs if run.painting == painting):
            if run in reused:
                score, outputs = reused[run], []
            else:
                score, outputs = judge_run(run, root, judge, photos, features)
            results[run.name] = {**score, "trainer": run.trainer, "painting": painting.name, "steps": run.steps,
                                 "overrides": dict(run.overrides), "seed": run.seed}
            reference_of[run.name] = run.reference.name
            if (run.steps == max(args.steps) and run.trainer in ("reference", "fastnst") and run.seed == args.seeds[0]
                    and outputs):
                for row, output in zip(rows, outputs, strict=True):
                    row.append(output)
            print(f"{run.name}: judge style {score['style']:.4g}, content {score['content']:.4g}", flush=True)
        grid_rows[painting.stem] = rows

    print(f"\njudge: Gatys et al. on Caffe VGG19, {len(photos)} held-out photos; {cpu_details()}, "
          f"torch {torch.__version__}, {args.threads} thread(s) per run")
    print(f"{'run (reference length)':<44} {'steps':>7}{'style':>10}{'× ref':>8}{'content':>10}{'× ref':>8}"
          f"{'CPU s':>9}")
    for name, entry in results.items():
        ref = results[reference_of[name]]
        entry["style_vs_reference"] = entry["style"] / ref["style"]
        entry["content_vs_reference"] = entry["content"] / ref["content"]
        print(f"{name:<44} {entry['steps_trained']:>7}{entry['style']:>10.4g}{entry['style_vs_reference']:>8.2f}"
              f"{entry['content']:>10.4g}{entry['content_vs_reference']:>8.2f}{entry['cpu_seconds']:>9.0f}")
    spread = seed_summary(results) if len(args.seeds) > 1 else []
    args.json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.json, json.dumps({
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_details(), "python": platform.python_version(), "torch": torch.__version__,
                    "threads_per_run": args.threads},
        "judge": {"weights": "vgg19_caffe", "content": "MSE relu4_2",
                  "style": "sum over relu1_1..relu5_1 of MSE(Gram/(C·H·W)), painting longer side 512",
                  "photos": [str(path.relative_to(args.data_dir)) for path in held_out], "short_side": 256},
        "train_photos": len(train_files), "image_size": IMAGE_SIZE, "batch_size": BATCH_SIZE,
        "grid_columns": ["photo", "reference", "fastnst"], "results": results,
        **({"reference_from": str(args.reference_from)} if args.reference_from else {}),
        **({"over_seeds": spread} if spread else {})}, indent=2))
    if args.no_grid:
        print(f"wrote {args.json}")
        return 0
    write_grid(args.grid, [row for rows in grid_rows.values() for row in rows])
    print(f"wrote {args.json} and {args.grid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
