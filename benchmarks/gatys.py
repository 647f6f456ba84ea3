#!/usr/bin/env python3
"""Time to reach a fixed total loss at 512² on the CPU: fastnst's optimizer vs the plain PyTorch-tutorial recipe.

Both minimise the same objective on the same tensors: the genuine Caffe VGG19, content at relu4_2, Gram style
loss over relu1_1 … relu5_1, total variation, with fastnst's default weights for these weights. The reference is
written as the PyTorch neural-style tutorial does it: the full VGG19 ``features`` as an eager fp32 NCHW
Sequential with loss modules inserted, the forward graph rebuilt every closure call, plain L-BFGS (lr 1, 20
iterations per step, no line search), pixels clamped in place. fastnst runs through its public API, single
scale and coarse to fine (256 → 512, the coarse result initialising the fine scale).

Every evaluation's loss is recorded with its wall time since the run started (loading the network and computing
the targets included). Runs are interleaved (reference, fastnst, …) so machine load affects them alike. Writes
``benchmarks/results/gatys_cpu.json`` (curves, time to target, ratios, CPU model) and ``gatys_cpu.png``.

    nice python benchmarks/gatys.py                       # 512², one round, 300 s per run
    python benchmarks/gatys.py --size 128 --budget 60     # a quick look
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision.models import vgg19

from fastnst.optimizer.config import DEFAULT_LOSS_WEIGHTS, GATYS_STYLE_LAYERS, OptimizeOptions
from fastnst.optimizer.loop import Progress, load_loss_network, optimize
from fastnst.perceptual.vgg import layer_names
from fastnst.perceptual.weights.catalogue import NORMALIZATION
from fastnst.perceptual.weights.resolve import load_vgg_features_state
from fastnst.utils.images import image_to_tensor, load_rgb
from fastnst.utils.machine import cpu_details

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FASTNST_SHARED_DATA", REPO.parent / "shared" / "data"))
CONTENT_LAYER = "relu4_2"
WEIGHTS = "vgg19_caffe"

Curve = list[tuple[float, float]]  # (seconds since the run started, total loss of that evaluation)


# ------------------------------------------------------------------------------------- the plain reference


class _Normalize(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        norm = NORMALIZATION[WEIGHTS]
        self.scale = norm.scale
        self.register_buffer("mean", torch.tensor(norm.mean).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return image * self.scale - self.mean


class _ContentLoss(nn.Module):
    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.target = target.detach()
        self.loss = torch.zeros(())
        self.enabled = False  # off while later targets are computed (the style may differ in size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            self.loss = F.mse_loss(x, self.target)
        return x


def _gram(x: torch.Tensor) -> torch.Tensor:
    a, b, c, d = x.size()
    features = x.view(a * b, c * d)
    return torch.mm(features, features.t()).div(a * b * c * d)


class _StyleLoss(nn.Module):
    def __init__(self, target_feature: torch.Tensor) -> None:
        super().__init__()
        self.target = _gram(target_feature).detach()
        self.loss = torch.zeros(())
        self.enabled = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            self.loss = F.mse_loss(_gram(x), self.target)
        return x


class ReferenceObjective:
    """The tutorial's model: the full VGG19 ``features`` with loss modules inserted after the loss layers."""

    def __init__(self, content: torch.Tensor, style: torch.Tensor) -> None:
        self.weights = DEFAULT_LOSS_WEIGHTS[WEIGHTS]
        cnn = vgg19(weights=None).features
        cnn.load_state_dict(load_vgg_features_state(WEIGHTS))
        cnn.eval().requires_grad_(False)
        names = {index: name for name, index in layer_names("vgg19").items()}
        self.model = nn.Sequential(_Normalize())
        self.content_losses: list[_ContentLoss] = []
        self.style_losses: list[_StyleLoss] = []
        for index, layer in enumerate(cnn):
            if isinstance(layer, nn.ReLU):
                layer = nn.ReLU(inplace=False)
            self.model.add_module(names[index], layer)
            if names[index] == CONTENT_LAYER:
                content_loss = _ContentLoss(self.model(content))
                self.model.add_module(f"content_loss_{index}", content_loss)
                self.content_losses.append(content_loss)
            if names[index] in GATYS_STYLE_LAYERS:
                style_loss = _StyleLoss(self.model(style))
                self.model.add_module(f"style_loss_{index}", style_loss)
                self.style_losses.append(style_loss)
        # Kept whole (no trimming after the last loss layer): the "full VGG19" of the comparison.
        for module in (*self.content_losses, *self.style_losses):
            module.enabled = True

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """Total loss of ``image`` (forward through the whole Sequential, graph built anew each call)."""
        self.model(image)
        tv = (image[..., 1:, :] - image[..., :-1, :]).pow(2).mean() + (image[..., 1:] - image[..., :-1]).pow(2).mean()
        return (self.weights.content * sum(m.loss for m in self.content_losses)
                + self.weights.style * sum(m.loss for m in self.style_losses) + self.weights.tv * tv)


class _Budget(Exception):
    """Leaves the optimizer's step when a run's time is up."""


def run_reference(content: torch.Tensor, style: torch.Tensor, budget: float) -> Curve:
    """The tutorial's recipe; returns the loss of every closure call until the budget ends."""
    started = time.perf_counter()
    objective = ReferenceObjective(content, style)
    image = content.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([image])  # the tutorial's defaults: lr 1, max_iter 20, no line search
    curve: Curve = []

    def closure() -> torch.Tensor:
        if time.perf_counter() - started >= budget:
            raise _Budget
        with torch.no_grad():
            image.clamp_(0, 1)
        optimizer.zero_grad()
        loss = objective(image)
        loss.backward()
        curve.append((time.perf_counter() - started, loss.item()))
        return loss

    try:
        while True:
            optimizer.step(closure)
    except _Budget:
        pass
    return curve


# ------------------------------------------------------------------------------------- fastnst


def run_fastnst(content: Image.Image, style: Image.Image, budget: float, sizes: tuple[int, ...],
                coarse_iterations: int, amp: str) -> tuple[Curve, float, list[torch.Tensor]]:
    """fastnst's API; returns the finest scale's curve, the time that scale began, and (for bf16) every
    evaluated image of it, so their exact fp32 losses can be computed afterwards, outside the timed run."""
    started = time.perf_counter()
    iterations = (*([coarse_iterations] * (len(sizes) - 1)), 100_000)
    options = OptimizeOptions(sizes=sizes, iterations=iterations, device="cpu", amp=amp)  # type: ignore[arg-type]
    vgg = load_loss_network(options)  # inside the timed region, as the reference's loading is
    curve: Curve = []
    images: list[torch.Tensor] = []
    fine_start = [0.0]

    def on_progress(progress: Progress) -> bool:
        elapsed = time.perf_counter() - started
        if progress.scale == progress.scales - 1:
            if not curve:
                fine_start[0] = elapsed
            curve.append((elapsed, progress.losses["total"]))
            if amp != "none":
                images.append(progress.image.clamp(0, 1).clone())
        return time.perf_counter() - started >= budget

    optimize(content, [style], options, vgg=vgg, on_progress=on_progress)
    return curve, fine_start[0], images


def exact_curve(curve: Curve, images: list[torch.Tensor], objective: ReferenceObjective, target: float | None,
                tail: int = 4) -> Curve:
    """Replace bf16 losses by exact fp32 ones (the reference's objective) where they decide the result.

    Without a target: the last ``tail`` evaluations and the bf16-best one (for the best loss reached). With one:
    evaluations in order from the first whose bf16 loss is within 10 % of the target, until one reaches it.
    Points not re-evaluated are dropped, so the curve only holds exact losses.
    """
    with torch.no_grad():
        def exact(index: int) -> tuple[float, float]:
            return curve[index][0], float(objective(images[index]))

        if not curve:
            return []
        if target is None:
            best = min(range(len(curve)), key=lambda i: curve[i][1])
            picked = sorted({best, *range(max(0, len(curve) - tail), len(curve))})
            return [exact(i) for i in picked]
        out: Curve = []
        for index, (_, loss) in enumerate(curve):
            if loss <= 1.1 * target:
                out.append(exact(index))
                if out[-1][1] <= target:
                    break
        return out


# ------------------------------------------------------------------------------------- analysis


def time_to(curve: Curve, target: float) -> float | None:
    """First time the best loss so far is at or below ``target`` (both methods keep their best image)."""
    for seconds, loss in curve:
        if loss <= target:
            return seconds
    return None


def _best_so_far(curve: Curve) -> Curve:
    out, best = [], float("inf")
    for seconds, loss in curve:
        best = min(best, loss)
        out.append((seconds, best))
    return out


def plot(runs: dict[str, Curve], target: float, marks: dict[str, float | None], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, curve in runs.items():
        best = _best_so_far(curve)
        reached = marks.get(name)
        label = f"{name}: {reached:.0f} s to target" if reached is not None else f"{name}: target not reached"
        line, = ax.plot([s for s, _ in best], [v for _, v in best], label=label)
        if reached is not None:
            ax.plot([reached], [target], "o", color=line.get_color())
    ax.axhline(target, color="gray", linestyle="--", linewidth=1, label=f"target {target:.3g}")
    ax.set_yscale("log")
    ax.set_xlabel("seconds since start (loading and targets included)")
    ax.set_ylabel("total loss at 512² (best so far)" if "512" in title else "total loss (best so far)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def replot(json_path: Path) -> None:
    """Draw the first round's curves of a results JSON into the PNG beside it."""
    plot_results(json.loads(json_path.read_text()), json_path.with_suffix(".png"))


def plot_results(info: dict, png_path: Path) -> None:
    """Draw the first round's curves of a results dict (as written to the JSON) into ``png_path``."""
    title = (f"Gatys at {info['size']}²: time to loss on {info['cpu']}, {info['threads']} threads "
             f"(torch {info['torch']})\ncontent {info['content']}, style {info['style']}, Caffe VGG19\n"
             "bf16 curves show the losses computed in bf16; their crossings of the target are checked in fp32")
    marks = {name: entry["time_to_target_s"][0] for name, entry in info["summary"].items()}
    curves = {name: [tuple(point) for point in runs[0]] for name, runs in info["curves"].items()}
    plot(curves, info["target_loss"], marks, png_path, title)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512, help="square side of the content image")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of all runs")
    parser.add_argument("--coarse-iterations", type=int, default=40, help="iterations at half size (multi-scale)")
    parser.add_argument("--variants", default="fp32,bf16,bf16-multiscale",
                        help="fastnst variants to run besides the reference (comma-separated)")
    parser.add_argument("--target", type=float, default=0.0,
                        help="total loss to reach (default: the worst best loss of all runs, so all reach it)")
    parser.add_argument("--content", default=str(SHARED / "photos" / "skimage_astronaut.jpg"))
    parser.add_argument("--style", default=str(SHARED / "styles" / "van_gogh_starry_night.jpg"))
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "gatys_cpu"))
    parser.add_argument("--replot", metavar="JSON", help="only redraw the PNG beside a results JSON")
    args = parser.parse_args()
    if args.replot:
        replot(Path(args.replot))
        return
    os.environ.setdefault("FASTNST_VGG_WEIGHTS", str(SHARED / "vgg"))
    torch.set_num_threads(args.threads)

    size = args.size
    content_img = _square(load_rgb(args.content), size)
    style_img = load_rgb(args.style)
    style_img = style_img.resize(_longest(style_img.size, size), Image.Resampling.LANCZOS)
    content_t, style_t = image_to_tensor(content_img), image_to_tensor(style_img)

    reference = "reference: tutorial recipe (full VGG19, eager fp32, plain L-BFGS)"
    variants = {
        "fp32": (f"fastnst fp32, {size}", (size,), "none"),
        "bf16": (f"fastnst bf16, {size}", (size,), "bf16"),
        "bf16-multiscale": (f"fastnst bf16, {size // 2}→{size}", (size // 2, size), "bf16"),
    }
    runners: dict[str, Callable[[], tuple[Curve, float, list[torch.Tensor]]]] = {
        reference: lambda: (run_reference(content_t, style_t, args.budget), 0.0, [])}
    for key in args.variants.split(","):
        name, sizes, amp = variants[key.strip()]
        runners[name] = (lambda sizes=sizes, amp=amp: run_fastnst(
            content_img, style_img, args.budget, sizes, args.coarse_iterations, amp))
    bf16_runs = {name for key, (name, _, amp) in variants.items() if amp != "none"}

    load_before = os.getloadavg()
    results: dict[str, list[tuple[Curve, float, list[torch.Tensor]]]] = {name: [] for name in runners}
    for round_index in range(args.rounds):
        for name, runner in runners.items():
            print(f"round {round_index + 1}: {name} …", flush=True)
            results[name].append(runner())
            curve = results[name][-1][0]
            print(f"  {len(curve)} evaluations at full size, best {min((v for _, v in curve), default=None)}",
                  flush=True)
    load_after = os.getloadavg()

    # Untimed: exact fp32 losses of the bf16 runs' images with the reference's own objective.
    objective = ReferenceObjective(content_t, style_t)
    best: dict[str, list[float]] = {}
    for name, runs in results.items():
        if name in bf16_runs:
            best[name] = [min((v for _, v in exact_curve(c, images, objective, None)), default=math.inf)
                          for c, _, images in runs]
        else:
            best[name] = [min((v for _, v in c), default=math.inf) for c, _, _ in runs]
    # A run with no evaluation at full size (its coarse scale used the whole budget) cannot set the target.
    target = args.target or max(value for values in best.values() for value in values if value < math.inf)
    summary: dict[str, dict[str, object]] = {}
    for name, runs in results.items():
        times = []
        for curve, _, images in runs:
            exact = exact_curve(curve, images, objective, target) if name in bf16_runs else curve
            times.append(time_to(exact, target))
        summary[name] = {
            "time_to_target_s": times, "best_loss_fp32": best[name],
            "evaluations_at_full_size": [len(c) for c, _, _ in runs],
            "seconds_per_evaluation_at_full_size": [(c[-1][0] - c[0][0]) / max(1, len(c) - 1) if c else None
                                                    for c, _, _ in runs],
            "full_size_started_s": [start for _, start, _ in runs],
            "loss_measured_in": "bf16 during the run; crossing and best re-evaluated in fp32"
            if name in bf16_runs else "fp32",
        }
    ref_times = summary[reference]["time_to_target_s"]
    for name, entry in summary.items():
        if name != reference:
            entry["speedup_vs_reference"] = [
                r / f if r is not None and f is not None else None
                for r, f in zip(ref_times, entry["time_to_target_s"], strict=False)]  # type: ignore[call-overload]
    # Both start from the content image, so their first losses must agree: a check that the objectives match.
    first_losses = {name: runs[0][0][0][1] for name, runs in results.items()
                    if name in (reference, variants["fp32"][0])}
    info = {
        "cpu": cpu_details(), "threads": args.threads, "torch": torch.__version__, "size": size,
        "budget_s": args.budget, "rounds": args.rounds, "target_loss": target,
        "target_rule": "given" if args.target else "worst best loss over all runs (every run reaches it)",
        "load_average_1_5_15min_before_after": [load_before, load_after],
        "content": Path(args.content).name, "style": Path(args.style).name,
        "loss_weights": DEFAULT_LOSS_WEIGHTS[WEIGHTS].__dict__,
        "objective_check_loss_of_content_image": first_losses,
        "summary": summary,
        "curves": {name: [c for c, _, _ in runs] for name, runs in results.items()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(info, indent=1))
    plot_results(info, out.with_suffix(".png"))
    print(json.dumps({k: v for k, v in info.items() if k != "curves"}, indent=1))


def _square(image: Image.Image, size: int) -> Image.Image:
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)


def _longest(size: tuple[int, int], longest: int) -> tuple[int, int]:
    factor = longest / max(size)
    return max(1, round(size[0] * factor)), max(1, round(size[1] * factor))


if __name__ == "__main__":
    main()
