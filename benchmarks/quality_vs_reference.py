#!/usr/bin/env python3
"""Quality per step: fastnst's trainer against the pytorch/examples recipe, judged by Gatys et al.'s losses.

Both trainers learn the same painting from the same photos (every ``--holdout-every``-th photo of the sorted folder
is held out and never trained on) at 256² × batch 4. The reference runs as pytorch/examples ships it
(``benchmarks/reference_recipe.py``: fp32, constant learning rate, Resize + CenterCrop, no shuffling, the last
partial batch of each epoch kept); fastnst runs with its own defaults, plus any ``--variant`` (one config change
each, for ablations). Each model then stylizes the held-out photos (shorter side 256) and is scored by the judge
(:class:`fastnst.training.quality.GatysJudge`, Caffe VGG19, which neither trainer optimises); lower is better.

Runs are kept under ``--runs-dir`` and reused when their settings match, so training can be spread over several
processes (``--only``) and the evaluation run afterwards. Each process trains on ``--threads`` threads and records
process CPU time, so runs side by side on a shared machine still report comparable costs. Example:

    python benchmarks/quality_vs_reference.py --steps 200 800 \\
        --paintings ../shared/data/styles/van_gogh_the_harvest.jpg \\
                    ../shared/data/styles/hokusai_kazusa_sea_route.jpg \\
        --variant constant-lr:schedule=constant --variant fp32:amp=none --equal-time
"""

from __future__ import annotations

import argparse
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

from fastnst.bench.machine import cpu_model  # noqa: E402
from fastnst.model.files import load_model  # noqa: E402
from fastnst.perceptual.weights.resolve import load_vgg_features_state  # noqa: E402
from fastnst.training.config import load_config  # noqa: E402
from fastnst.training.data import find_photos, split_holdout  # noqa: E402
from fastnst.training.quality import GatysJudge, load_eval_image  # noqa: E402
from fastnst.training.trainer import train  # noqa: E402
from fastnst.utils.atomic import atomic_path, atomic_write_text  # noqa: E402
from fastnst.utils.images import image_to_tensor, load_rgb, save_image, tensor_to_image  # noqa: E402

DEFAULT_PAINTINGS = ("van_gogh_the_harvest.jpg", "hokusai_kazusa_sea_route.jpg")  # no shipped model uses them
IMAGE_SIZE, BATCH_SIZE = 256, 4
GRID_PHOTOS, GRID_SIDE = 4, 160


@dataclass(frozen=True)
class Run:
    trainer: str  # "reference", "fastnst" or "fastnst-<variant>"
    painting: Path
    steps: int
    overrides: tuple[tuple[str, object], ...] = ()

    @property
    def name(self) -> str:
        return f"{self.trainer}/{self.painting.stem}/{self.steps}"

    def folder(self, root: Path) -> Path:
        return root / self.trainer / self.painting.stem / f"steps{self.steps}"

    def settings(self, data_dir: Path, holdout_every: int) -> dict:
        return {"trainer": self.trainer, "painting": str(self.painting), "steps": self.steps,
                "overrides": dict(self.overrides), "data_dir": str(data_dir), "holdout_every": holdout_every,
                "image_size": IMAGE_SIZE, "batch_size": BATCH_SIZE}


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
                    settings: dict[Run, dict]) -> None:
    """One reference run to the longest requested length; its constant learning rate makes the model at step k
    the model of a k-step run, so every shorter length is a snapshot of the same run."""
    last = max(run.steps for run in snapshots)
    batches = reference_batches(train_files, last)
    trainer = ReferenceTrainer(load_vgg_features_state("vgg16"), image_to_tensor(load_rgb(painting)),
                               torch.device("cpu"))
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


def train_fastnst(run: Run, data_dir: Path, holdout_every: int, root: Path, settings: dict) -> None:
    folder = run.folder(root)
    if (folder / "checkpoints").exists():  # a stale, unfinished attempt: start over
        for path in sorted(folder.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    config = load_config(None, {
        "style_image": str(run.painting), "data_dir": str(data_dir), "holdout_every": holdout_every,
        "steps": run.steps, "image_size": IMAGE_SIZE, "batch_size": BATCH_SIZE, "device": "cpu",
        "tensorboard": False, "num_workers": 0, "checkpoint_every": run.steps, "output_dir": str(folder),
        **dict(run.overrides)})
    wall, cpu = time.perf_counter(), time.process_time()
    train(config)
    record = {"settings": settings, "wall_seconds": time.perf_counter() - wall,
              "cpu_seconds": time.process_time() - cpu, "threads": torch.get_num_threads()}
    atomic_write_text(folder / "run.json", json.dumps(record, indent=2))
    print(f"{run.name}: {record['cpu_seconds']:.0f} CPU s", flush=True)


def is_done(run: Run, root: Path, settings: dict) -> bool:
    record = run.folder(root) / "run.json"
    return record.is_file() and json.loads(record.read_text())["settings"] == settings


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
    record = json.loads((run.folder(root) / "run.json").read_text())
    return {"content": statistics.fmean(s["content"] for s in scores),
            "style": statistics.fmean(s["style"] for s in scores),
            "cpu_seconds": record["cpu_seconds"], "wall_seconds": record["wall_seconds"],
            "threads": record["threads"]}, outputs[:GRID_PHOTOS]


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
    parser.add_argument("--equal-time", action="store_true",
                        help="also train fastnst for as many steps as fit in the reference's CPU time at the "
                             "longest --steps (needs the reference and fastnst runs of that length)")
    parser.add_argument("--only", help="train only runs whose name (trainer/painting/steps) matches this regex, "
                                       "and skip the evaluation")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs-dir", type=Path, default=REPO / "runs" / "quality_vs_reference")
    parser.add_argument("--judge-weights", type=Path, default=SHARED / "vgg" / "vgg19_features_caffe.pth")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "quality_vs_reference.json")
    parser.add_argument("--grid", type=Path, default=REPO / "benchmarks" / "results" / "quality_vs_reference.png")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.paintings = [path.resolve() for path in args.paintings]  # run folders are matched by these paths
    args.data_dir = args.data_dir.resolve()
    missing = [str(p) for p in args.paintings if not p.is_file()]
    if missing or not args.data_dir.is_dir():
        raise SystemExit(f"missing: {', '.join(missing) or args.data_dir} (is ../shared/data beside the repo?)")

    train_files, held_out = split_holdout(find_photos(args.data_dir), args.holdout_every)
    variants = [parse_variant(text) for text in args.variant]
    runs = [Run(trainer, painting, steps) for painting in args.paintings for steps in args.steps
            for trainer in ("reference", "fastnst")]
    runs += [Run(f"fastnst-{name}", painting, steps, overrides) for name, overrides in variants
             for painting in args.paintings[:args.variant_paintings]
             for steps in (args.variant_steps or args.steps[:1])]
    root = args.runs_dir
    settings = {run: run.settings(args.data_dir, args.holdout_every) for run in runs}

    def wanted(run: Run) -> bool:
        return args.only is None or re.search(args.only, run.name) is not None

    for painting in args.paintings:
        todo = [run for run in runs if run.trainer == "reference" and run.painting == painting and wanted(run)
                and not is_done(run, root, settings[run])]
        if todo:
            every = [run for run in runs if run.trainer == "reference" and run.painting == painting]
            train_reference(painting, every, train_files, root, settings)
    for run in runs:
        if run.trainer != "reference" and wanted(run) and not is_done(run, root, settings[run]):
            train_fastnst(run, args.data_dir, args.holdout_every, root, settings[run])
    if args.equal_time:
        longest = max(args.steps)
        for painting in args.paintings:
            ref, own = Run("reference", painting, longest), Run("fastnst", painting, longest)
            if not (is_done(ref, root, settings[ref]) and is_done(own, root, settings[own])):
                continue
            ref_cpu = json.loads((ref.folder(root) / "run.json").read_text())["cpu_seconds"]
            own_cpu = json.loads((own.folder(root) / "run.json").read_text())["cpu_seconds"]
            run = Run("fastnst-equal-time", painting, int(longest * ref_cpu / own_cpu))
            runs.append(run)
            settings[run] = run.settings(args.data_dir, args.holdout_every)
            if wanted(run) and not is_done(run, root, settings[run]):
                train_fastnst(run, args.data_dir, args.holdout_every, root, settings[run])
    if args.only is not None:
        return 0

    absent = [run.name for run in runs if not is_done(run, root, settings[run])]
    if absent:
        raise SystemExit(f"runs not trained: {', '.join(absent)}")
    # Cropped (≤ 3 px) to multiples of 4: the reference network has no padding of its own for other sizes.
    photos = [photo[..., :photo.shape[-2] // 4 * 4, :photo.shape[-1] // 4 * 4]
              for photo in (load_eval_image(path) for path in held_out)]
    results: dict[str, dict] = {}
    grid_rows: dict[str, list[list[torch.Tensor]]] = {}
    for painting in args.paintings:
        judge = GatysJudge(painting, args.judge_weights)
        features = [judge.content_features(photo) for photo in photos]
        rows = [[photo] for photo in photos[:GRID_PHOTOS]]
        for run in (run for run in runs if run.painting == painting):
            score, outputs = judge_run(run, root, judge, photos, features)
            results[run.name] = {**score, "trainer": run.trainer, "painting": painting.name, "steps": run.steps,
                                 "overrides": dict(run.overrides)}
            if run.steps == max(args.steps) and run.trainer in ("reference", "fastnst"):
                for row, output in zip(rows, outputs, strict=True):
                    row.append(output)
            print(f"{run.name}: judge style {score['style']:.4g}, content {score['content']:.4g}", flush=True)
        grid_rows[painting.stem] = rows

    print(f"\njudge: Gatys et al. on Caffe VGG19, {len(photos)} held-out photos; {cpu_model()}, "
          f"torch {torch.__version__}, {args.threads} thread(s) per run")
    print(f"{'run':<44}{'style':>10}{'× ref':>8}{'content':>10}{'× ref':>8}{'CPU s':>9}")
    for name, entry in results.items():
        steps = max(args.steps) if entry["trainer"] == "fastnst-equal-time" else entry["steps"]
        ref = results[f"reference/{Path(entry['painting']).stem}/{steps}"]
        entry["style_vs_reference"] = entry["style"] / ref["style"]
        entry["content_vs_reference"] = entry["content"] / ref["content"]
        print(f"{name:<44}{entry['style']:>10.4g}{entry['style_vs_reference']:>8.2f}{entry['content']:>10.4g}"
              f"{entry['content_vs_reference']:>8.2f}{entry['cpu_seconds']:>9.0f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.json, json.dumps({
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_model(), "python": platform.python_version(), "torch": torch.__version__,
                    "threads_per_run": args.threads},
        "judge": {"weights": "vgg19_caffe", "content": "MSE relu4_2",
                  "style": "sum over relu1_1..relu5_1 of MSE(Gram/(C·H·W)), painting longer side 512",
                  "photos": [str(path.relative_to(args.data_dir)) for path in held_out], "short_side": 256},
        "train_photos": len(train_files), "image_size": IMAGE_SIZE, "batch_size": BATCH_SIZE,
        "grid_columns": ["photo", "reference", "fastnst"], "results": results}, indent=2))
    stacked = [row for rows in grid_rows.values() for row in rows]
    write_grid(args.grid, stacked)
    print(f"wrote {args.json} and {args.grid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
