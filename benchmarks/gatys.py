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
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision.models import vgg19

from fastnst.images import image_to_tensor, load_rgb
from fastnst.optimize import Progress, load_loss_network, optimize
from fastnst.optimize_config import DEFAULT_LOSS_WEIGHTS, GATYS_STYLE_LAYERS, OptimizeOptions
from fastnst.vgg import layer_names
from fastnst.weights import NORMALIZATION, load_vgg_features_state

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


def run_reference(content: torch.Tensor, style: torch.Tensor, budget: float) -> Curve:
    """The tutorial's recipe on the full VGG19; returns the loss of every closure call until the budget ends."""
    started = time.perf_counter()
    weights = DEFAULT_LOSS_WEIGHTS[WEIGHTS]
    cnn = vgg19(weights=None).features
    cnn.load_state_dict(load_vgg_features_state(WEIGHTS))
    cnn.eval().requires_grad_(False)
    names = {index: name for name, index in layer_names("vgg19").items()}
    model = nn.Sequential(_Normalize())
    content_losses, style_losses = [], []
    for index, layer in enumerate(cnn):
        if isinstance(layer, nn.ReLU):
            layer = nn.ReLU(inplace=False)
        model.add_module(names[index], layer)
        if names[index] == CONTENT_LAYER:
            module = _ContentLoss(model(content))
            model.add_module(f"content_loss_{index}", module)
            content_losses.append(module)
        if names[index] in GATYS_STYLE_LAYERS:
            module = _StyleLoss(model(style))
            model.add_module(f"style_loss_{index}", module)
            style_losses.append(module)
    # Kept whole (no trimming after the last loss layer): the "full VGG19" of the comparison.
    for module in (*content_losses, *style_losses):
        module.enabled = True
    image = content.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([image])
    curve: Curve = []

    def closure() -> torch.Tensor:
        with torch.no_grad():
            image.clamp_(0, 1)
        optimizer.zero_grad()
        model(image)
        tv = (image[..., 1:, :] - image[..., :-1, :]).pow(2).mean() + (image[..., 1:] - image[..., :-1]).pow(2).mean()
        loss = (weights.content * sum(m.loss for m in content_losses)
                + weights.style * sum(m.loss for m in style_losses) + weights.tv * tv)
        loss.backward()
        curve.append((time.perf_counter() - started, loss.item()))
        return loss

    while time.perf_counter() - started < budget:
        optimizer.step(closure)
    return curve


# ------------------------------------------------------------------------------------- fastnst


def run_fastnst(content: Image.Image, style: Image.Image, budget: float, sizes: tuple[int, ...],
                coarse_iterations: int) -> tuple[Curve, float]:
    """fastnst's API; returns the finest scale's curve and the time its finest scale began."""
    started = time.perf_counter()
    iterations = (*([coarse_iterations] * (len(sizes) - 1)), 100_000)
    options = OptimizeOptions(sizes=sizes, iterations=iterations, device="cpu")
    vgg = load_loss_network(options)  # inside the timed region, as the reference's loading is
    curve: Curve = []
    fine_start = [0.0]

    def on_progress(progress: Progress) -> bool:
        elapsed = time.perf_counter() - started
        if progress.scale == progress.scales - 1:
            if not curve:
                fine_start[0] = elapsed
            curve.append((elapsed, progress.losses["total"]))
        return elapsed >= budget

    optimize(content, [style], options, vgg=vgg, on_progress=on_progress)
    return curve, fine_start[0]


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


def plot(runs: dict[str, Curve], target: float, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, curve in runs.items():
        best = _best_so_far(curve)
        ax.plot([s for s, _ in best], [v for _, v in best], label=name)
    ax.axhline(target, color="gray", linestyle="--", linewidth=1, label=f"target {target:.3g}")
    ax.set_yscale("log")
    ax.set_xlabel("seconds since start (loading and targets included)")
    ax.set_ylabel("total loss at 512² (best so far)" if "512" in title else "total loss (best so far)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512, help="square side of the content image")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of all runs")
    parser.add_argument("--coarse-iterations", type=int, default=100, help="iterations at half size (multi-scale)")
    parser.add_argument("--target", type=float, default=0.0,
                        help="total loss to reach (default: the worst final loss of all runs, so all reach it)")
    parser.add_argument("--content", default=str(SHARED / "photos" / "skimage_astronaut.jpg"))
    parser.add_argument("--style", default=str(SHARED / "styles" / "van_gogh_starry_night.jpg"))
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "gatys_cpu"))
    args = parser.parse_args()
    os.environ.setdefault("FASTNST_VGG_WEIGHTS", str(SHARED / "vgg"))
    torch.set_num_threads(args.threads)

    size = args.size
    content_img = _square(load_rgb(args.content), size)
    style_img = load_rgb(args.style)
    style_img = style_img.resize(_longest(style_img.size, size), Image.Resampling.LANCZOS)
    content_t, style_t = image_to_tensor(content_img), image_to_tensor(style_img)

    runners: dict[str, Callable[[], tuple[Curve, float]]] = {
        "reference (tutorial: full VGG19, eager fp32, plain L-BFGS)":
            lambda: (run_reference(content_t, style_t, args.budget), 0.0),
        f"fastnst {size // 2}→{size}":
            lambda: run_fastnst(content_img, style_img, args.budget, (size // 2, size), args.coarse_iterations),
        f"fastnst {size} (single scale)":
            lambda: run_fastnst(content_img, style_img, args.budget, (size,), 0),
    }
    load_before = os.getloadavg()
    curves: dict[str, list[Curve]] = {name: [] for name in runners}
    fine_starts: dict[str, list[float]] = {name: [] for name in runners}
    for round_index in range(args.rounds):
        for name, runner in runners.items():
            print(f"round {round_index + 1}: {name} …", flush=True)
            curve, fine_start = runner()
            curves[name].append(curve)
            fine_starts[name].append(fine_start)
            print(f"  {len(curve)} evaluations, best {min(v for _, v in curve):.4g}", flush=True)

    target = args.target or max(min(v for _, v in curve) for runs in curves.values() for curve in runs)
    reference = next(iter(runners))
    summary: dict[str, dict[str, object]] = {}
    for name, runs in curves.items():
        times = [time_to(curve, target) for curve in runs]
        summary[name] = {"time_to_target_s": times, "evaluations": [len(c) for c in runs],
                         "best_loss": [min(v for _, v in c) for c in runs],
                         "seconds_per_evaluation_at_full_size": [
                             (c[-1][0] - c[0][0]) / max(1, len(c) - 1) for c in runs],
                         "finest_scale_started_s": fine_starts[name]}
    ref_times = summary[reference]["time_to_target_s"]
    for name in runners:
        if name == reference:
            continue
        ratios = [r / f if r is not None and f else None
                  for r, f in zip(ref_times, summary[name]["time_to_target_s"])]  # type: ignore[arg-type]
        summary[name]["speedup_vs_reference"] = ratios
    info = {
        "cpu": _cpu_model(), "threads": args.threads, "torch": torch.__version__, "size": size,
        "budget_s": args.budget, "rounds": args.rounds, "target_loss": target,
        "target_rule": "given" if args.target else "worst final loss over all runs",
        "load_average_before_after": [load_before, os.getloadavg()],
        "content": Path(args.content).name, "style": Path(args.style).name,
        "loss_weights": DEFAULT_LOSS_WEIGHTS[WEIGHTS].__dict__, "summary": summary,
        "curves": {name: runs for name, runs in curves.items()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(info, indent=1))
    title = (f"Gatys at {size}²: time to loss on {_cpu_model()}, {args.threads} threads (torch {torch.__version__})\n"
             f"content {Path(args.content).name}, style {Path(args.style).name}, Caffe VGG19")
    plot({name: runs[0] for name, runs in curves.items()}, target, out.with_suffix(".png"), title)
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
