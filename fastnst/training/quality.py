"""Measured quality of trained style networks: the trainer's own losses on held-out photos, and artifact checks.

Why a module of its own: ``scripts/evaluate_models.py``, the model cards and the model-zoo tests must all measure
with exactly the definitions the trainer optimises (:mod:`fastnst.perceptual.losses` on :mod:`fastnst.perceptual.vgg`
features, built from the model's saved config by :func:`fastnst.training.trainer.load_style_tensor`), never a
re-implementation that could drift. The artifact statistics are plain tensor arithmetic, so a test can check that they
flag a synthetic checkerboard or a dark frame and pass a real photo.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from fastnst.model.transformer import TransformerNet, TransformerSpec, bake, restart_rows
from fastnst.perceptual.losses import ContentLoss, LossWeights, PerceptualLoss, StyleLoss, gram_matrix
from fastnst.perceptual.vgg import VGGFeatures
from fastnst.training.config import TrainConfig, config_from_dict
from fastnst.training.data import find_photos, split_holdout
from fastnst.training.lineage import learned_by, lineage_of
from fastnst.training.trainer import load_style_tensor
from fastnst.utils.errors import ConfigError
from fastnst.utils.images import image_to_tensor, load_rgb

# Held-out photos are measured with their shorter side at the low end of the training scale: training crops of
# 256² are cut from photos whose shorter side was resized to 256–384 px (fastnst.training.data.CropSpec).
EVAL_SHORT_SIDE = 256
# Thresholds for the artifact flags, set by looking at zoomed outputs next to their numbers (docs/quality.md):
# a grid-aligned period-2/4 pattern holding over 10 % of the fine detail and at least 1.5 grey levels is visible
# (2.1–5 levels were, 0.6 was not); a border band 0.03 brighter/darker than the interior (beyond the photo's own
# difference) is a visible frame, and so is a band with over 1.5× (or under 1/1.5 of) the detail the photo's
# own band has relative to its interior.
CHECKERBOARD_MAX = 0.10
CHECKERBOARD_MIN_LEVELS = 1.5  # …and only when the pattern is at least this many 8-bit grey levels (RMS)
BORDER_LUMA_MAX = 0.03
BORDER_DETAIL_MAX = 1.5
BORDER_BAND_FRACTION = 1 / 16  # of the shorter side (16 px at 256): where the convs' reflection padding acts


def heldout_photos(data_dir: str | os.PathLike[str], holdout_every: int) -> list[Path]:
    """The photos the trainer held out (every ``holdout_every``-th of the sorted folder), in sorted order."""
    return split_holdout(find_photos(data_dir), holdout_every)[1]


def load_eval_image(path: str | os.PathLike[str], short_side: int = EVAL_SHORT_SIDE) -> torch.Tensor:
    """A photo as [1, 3, H, W] in [0, 1], resized (bicubic, up or down) so its shorter side is ``short_side``."""
    image = load_rgb(path)
    scale = short_side / min(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image_to_tensor(image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0))


def untrained_network(config: TrainConfig, trained: TransformerNet | None = None,
                      rows: Sequence[int] | None = None) -> TransformerNet:
    """The network exactly as the trainer initialises it (same seed, same spec): the run at step 0.

    A run grown from a base (``config.base``) starts from the base with the norm rows it learns (``rows``; by
    default the last ones, the styles it added) at the mean of the rows it keeps
    (:func:`~fastnst.model.transformer.restart_rows`); only those rows learn, so the step-0 network is rebuilt from
    the ``trained`` one, which must be passed, without needing the base's file. That holds while the kept rows are
    as the run left them: for the last run of a model's lineage."""
    if config.base:
        if trained is None:
            raise ValueError("a run grown from a base starts from the base: pass its trained network")
        if rows is None:
            rows = range(trained.spec.styles - len(config.paintings), trained.spec.styles)
        return restart_rows(trained, list(rows)).eval()
    torch.manual_seed(config.seed)
    spec = TransformerSpec(width=config.width, residual_blocks=config.residual_blocks, styles=len(config.paintings))
    return TransformerNet(spec).eval()


def config_of(metadata: Mapping[str, object]) -> TrainConfig:
    """The training config stored in a model's ``model.json``.

    Models trained before ``compile`` became a mode name stored it as a bool; it does not affect the losses.
    """
    values = dict(metadata["config"])  # type: ignore[call-overload]
    if isinstance(values.get("compile"), bool):
        values["compile"] = "default" if values["compile"] else "off"
    return config_from_dict(values, "model.json")


@dataclass(frozen=True)
class StyleRun:
    """One style of a model and the run that learned it: what its losses are measured with."""

    name: str
    row: int  # its row in the network (0 for a single-style model)
    painting: str  # the run config's path of its painting
    run: dict  # the run's lineage record (:mod:`fastnst.training.lineage`): config, steps, losses, time
    config: TrainConfig  # that run's config
    learned_with: tuple[int, ...]  # the rows that run learned: what :func:`untrained_network` restarts

    @property
    def from_base(self) -> bool:
        """Its run learned only norm rows of a trained network, so its step 0 is already stylized."""
        return bool(self.config.base)

    @property
    def own(self) -> TrainConfig:
        """The run's config as a single-style run of this painting, at its own style weight."""
        return self.config.for_style(self.name)


def style_runs(metadata: Mapping[str, object], rows: Sequence[str]) -> tuple[list[StyleRun], list[str]]:
    """Each style of a model (``rows``: its style names in row order) with its run, and the styles left out.

    A style whose run was itself grown from a base and is not the model's last run is left out: that run started
    from the mean of the rows it kept, which later runs may have changed, so its step 0 cannot be rebuilt (measure
    the model that run wrote). So is a base's style that an older fastnst's model.json does not trace."""
    runs = lineage_of(metadata)
    owner = learned_by(runs)
    measured, skipped = [], [name for name in rows if name not in owner and len(rows) > 1]
    for index, run in enumerate(runs):
        config = config_of(run)
        mine = [(name, image) for name, image in config.paintings if owner.get(name) == index]
        if config.base and index != len(runs) - 1:
            skipped += [name for name, _ in mine]
            continue
        found = [(name, image, rows.index(name) if len(rows) > 1 else 0) for name, image in mine]
        learned_with = tuple(row for _, _, row in found)
        measured += [StyleRun(name, row, image, run, config, learned_with) for name, image, row in found]
    return measured, skipped


class LossMeter:
    """The trainer's content and style loss for one painting of a config, weighted as in training (its log's units).

    ``image`` picks the painting (a multi-style config has several; see :func:`style_meters`); by default it is a
    single-style config's ``style_image``. The painting is loaded exactly as the trainer loads it
    (:func:`~fastnst.training.trainer.load_style_tensor`: same ``style_size``), so its Gram targets are the ones the
    trainer optimised. The VGG is passed in so one frozen instance serves every style; it must compute the config's
    layers.
    """

    def __init__(self, config: TrainConfig, vgg: VGGFeatures, image: str | os.PathLike[str] | None = None) -> None:
        if image is None and not config.style_image:
            names = ", ".join(name for name, _ in config.paintings)
            raise ConfigError(f"this config holds several paintings ({names}): name the one to measure")
        self.image = str(image) if image is not None else config.style_image
        self.vgg = vgg
        self.content_layer = config.content_layer
        self.style_layers = tuple(config.style_layers)
        with torch.no_grad():
            style_features = vgg(load_style_tensor(config, self.image).to(next(vgg.parameters()).device),
                                 layers=self.style_layers)
        self.loss = PerceptualLoss(
            ContentLoss(config.content_layer),
            StyleLoss(style_features, dict(zip(config.style_layers, config.style_layer_weights, strict=False))),
            LossWeights(config.content_weight, config.style_weight, config.tv_weight),
        )

    @torch.no_grad()
    def features(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.vgg(image, layers=tuple(dict.fromkeys((self.content_layer, *self.style_layers))))

    @torch.no_grad()
    def __call__(self, output: torch.Tensor, content_features: Mapping[str, torch.Tensor],
                 output_features: Mapping[str, torch.Tensor] | None = None) -> dict[str, float]:
        """Weighted content and style loss of ``output`` (already clamped to [0, 1], as users get it).

        ``output_features`` (``self.features(output)``) may be passed when one output is measured against several
        paintings, so its VGG pass runs once."""
        features = self.features(output) if output_features is None else output_features
        _, parts = self.loss(output, features, content_features)
        return {"content": float(parts["content"]), "style": float(parts["style"])}


def style_meters(config: TrainConfig, vgg: VGGFeatures) -> dict[str, LossMeter]:
    """One meter per painting of ``config`` (name → meter, in the network's style order), each weighted by its
    painting's own style weight."""
    return {name: LossMeter(config.for_style(name), vgg, image=image) for name, image in config.paintings}


def style_network(network: TransformerNet, style: int) -> TransformerNet:
    """The plain network that computes style row ``style`` of ``network`` (a one-hot :func:`bake`), so a
    multi-style model's style is measured through the same single-style path as a single-style model."""
    if not 0 <= style < network.spec.styles:
        raise ConfigError(f"style {style} is out of range: the network holds {network.spec.styles} style(s)")
    if network.spec.styles == 1:
        return network
    return bake(network, [1.0 if row == style else 0.0 for row in range(network.spec.styles)])


def make_vgg(configs: Sequence[TrainConfig], weights_path: str | os.PathLike[str] | None = None) -> VGGFeatures:
    """One frozen VGG computing every layer the configs' losses use (they must share the VGG variant)."""
    variants = {c.vgg for c in configs}
    if len(variants) != 1:
        raise ValueError(f"configs use several VGG variants ({', '.join(sorted(variants))}); measure them apart")
    layers = tuple(dict.fromkeys(name for c in configs for name in (c.content_layer, *c.style_layers)))
    return VGGFeatures(layers, weights=variants.pop(), weights_path=weights_path)


# ------------------------------------------------------------------------------------------------ judge

# Gatys et al. 2016's losses on the original Caffe VGG19: a measure that neither fastnst's trainer (torchvision VGG16,
# relu2_2 content, relu*_2/relu*_3 style) nor the pytorch/examples recipe optimises, so comparing trainers with it
# does not favour the one whose loss it is.
JUDGE_WEIGHTS = "vgg19_caffe"
JUDGE_CONTENT_LAYER = "relu4_2"
JUDGE_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
JUDGE_PAINTING_SIDE = 512  # the painting's longer side when its Grams are taken


class GatysJudge:
    """Content = MSE of relu4_2 features against the photo's; style = Σ over relu1_1 … relu5_1 of the MSE between
    the output's Gram matrices (normalised by C·H·W) and the painting's (longer side 512 px). Unweighted: the numbers
    only compare outputs measured against the same painting. Outputs should be clamped to [0, 1] first, as users
    get them."""

    def __init__(self, painting: str | os.PathLike[str], weights_path: str | os.PathLike[str] | None = None,
                 vgg: VGGFeatures | None = None) -> None:
        self.vgg = vgg or self.network(weights_path)
        if self.vgg.weights != JUDGE_WEIGHTS:
            raise ConfigError(f"the judge runs on {JUDGE_WEIGHTS}, not {self.vgg.weights}")
        image = load_rgb(painting)
        scale = JUDGE_PAINTING_SIDE / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.BICUBIC, reducing_gap=3.0)
        device = next(self.vgg.parameters()).device
        with torch.no_grad():
            features = self.vgg(image_to_tensor(image).to(device), layers=JUDGE_STYLE_LAYERS)
        self.targets = {name: gram_matrix(features[name]) for name in JUDGE_STYLE_LAYERS}

    @staticmethod
    def network(weights_path: str | os.PathLike[str] | None = None) -> VGGFeatures:
        """The judge's Caffe VGG19; one instance can serve the judges of several paintings."""
        return VGGFeatures((JUDGE_CONTENT_LAYER, *JUDGE_STYLE_LAYERS), weights=JUDGE_WEIGHTS,
                           weights_path=weights_path)

    @staticmethod
    @torch.no_grad()
    def photo_features(vgg: VGGFeatures, photo: torch.Tensor) -> torch.Tensor:
        """A photo's relu4_2 features: computed once per photo, whatever painting and outputs are judged."""
        return vgg(photo, layers=(JUDGE_CONTENT_LAYER,))[JUDGE_CONTENT_LAYER]

    def content_features(self, photo: torch.Tensor) -> torch.Tensor:
        """:meth:`photo_features` on this judge's network."""
        return self.photo_features(self.vgg, photo)

    @torch.no_grad()
    def __call__(self, output: torch.Tensor, photo_features: torch.Tensor) -> dict[str, float]:
        """{"content", "style"} of one output [1, 3, H, W] against its photo's :meth:`content_features`."""
        features = self.vgg(output)
        style = sum(float(F.mse_loss(gram_matrix(features[name]), self.targets[name]))
                    for name in JUDGE_STYLE_LAYERS)
        content = float(F.mse_loss(features[JUDGE_CONTENT_LAYER].float(), photo_features.float()))
        return {"content": content, "style": style}


# ------------------------------------------------------------------------------------------------ artifacts


def luminance(image: torch.Tensor) -> torch.Tensor:
    """[1, 3, H, W] or [3, H, W] RGB → [H, W] luma (Rec. 601 weights)."""
    rgb = image.reshape(-1, *image.shape[-3:])[0].float()
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def high_pass(luma: torch.Tensor, sigma: float = 2.0) -> torch.Tensor:
    """Luma minus its Gaussian blur: the detail where period-2 and period-4 patterns live."""
    radius = math.ceil(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    img = F.pad(luma[None, None], (radius, radius, radius, radius), mode="reflect")
    blurred = F.conv2d(F.conv2d(img, kernel.view(1, 1, 1, -1)), kernel.view(1, 1, -1, 1))
    return luma - blurred[0, 0]


def grid_pattern(image: torch.Tensor, period: int) -> tuple[float, float]:
    """The detail pattern repeating every ``period`` px at a fixed phase of the pixel grid: (share, amplitude).

    Upsampling artifacts (Odena et al. 2016) repeat with the network's stride at the same phase across the whole
    image (the transform network is shift-equivariant only by multiples of 4 px), so averaging the detail over all
    period×period cells keeps them and cancels image content. share = RMS(mean cell) / RMS(detail): near 0 for
    photos, 1 for a pure checkerboard; amplitude = RMS(mean cell) in 8-bit grey levels.
    """
    detail = high_pass(luminance(image))
    h, w = (detail.shape[0] // period) * period, (detail.shape[1] // period) * period
    cells = detail[:h, :w].reshape(h // period, period, w // period, period)  # [H/p, p, W/p, p]
    mean_cell = cells.mean(dim=(0, 2))
    rms = (mean_cell - mean_cell.mean()).pow(2).mean().sqrt()
    return float(rms / detail.pow(2).mean().sqrt().clamp_min(1e-8)), float(rms * 255)


def checkerboard_score(image: torch.Tensor, period: int) -> float:
    """Share of the detail that is a grid-aligned pattern of ``period`` px (see :func:`grid_pattern`)."""
    return grid_pattern(image, period)[0]


@dataclass(frozen=True)
class BorderStats:
    """Border band against interior, for one image."""

    luma_offset: float  # mean luma of the band minus the interior's
    detail_ratio: float  # RMS detail of the band / the interior's


def border_band(image: torch.Tensor) -> int:
    """Width in px of the frame :func:`border_stats` compares: a fixed fraction of the shorter side."""
    return max(2, round(min(image.shape[-2:]) * BORDER_BAND_FRACTION))


def border_stats(image: torch.Tensor, band: int | None = None) -> BorderStats:
    """Compare a ``band``-px frame with the rest: a padding artifact makes the frame darker, brighter, flatter
    or busier than the interior."""
    luma = luminance(image)
    band = band or border_band(image)
    detail = high_pass(luma)
    mask = torch.ones_like(luma, dtype=torch.bool)
    mask[band:-band, band:-band] = False
    offset = luma[mask].mean() - luma[~mask].mean()
    ratio = detail[mask].pow(2).mean().sqrt() / detail[~mask].pow(2).mean().sqrt().clamp_min(1e-8)
    return BorderStats(float(offset), float(ratio))


EDGE_BINS: tuple[tuple[int, int], ...] = ((0, 2), (2, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 1 << 30))
"""Distance-to-edge bands (px at EVAL_SHORT_SIDE) of :func:`edge_profile`; the last is the interior."""


def edge_profile(output: torch.Tensor, photo: torch.Tensor) -> list[float]:
    """Mean luma of ``output`` minus ``photo`` in each EDGE_BINS band: a dark or bright frame shows as a trend."""
    diff = luminance(output) - luminance(photo)
    h, w = diff.shape
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    distance = torch.minimum(torch.minimum(yy, h - 1 - yy), torch.minimum(xx, w - 1 - xx))
    out = []
    for low, high in EDGE_BINS:
        mask = (distance >= low) & (distance < high)
        out.append(float(diff[mask].mean()) if bool(mask.any()) else float("nan"))
    return out


@dataclass(frozen=True)
class ArtifactReport:
    """Artifact statistics of a model's outputs over several photos, each relative to the photo itself."""

    checkerboard_2: float  # mean checkerboard_score(output, 2) over photos
    checkerboard_4: float
    grid_levels_4: float  # mean amplitude of the period-4 pattern, 8-bit grey levels
    photo_checkerboard_2: float  # the same for the input photos (JPEG chroma subsampling gives a little)
    photo_checkerboard_4: float
    border_luma_shift: float  # mean over photos of (output band-interior offset) − (photo's), signed
    border_detail_ratio: float  # geometric mean over photos of (output detail ratio) / (photo's)
    edge_profile: tuple[float, ...] = ()  # mean luma (output − photo) by distance to the edge, EDGE_BINS

    @property
    def checkerboard(self) -> bool:
        return (max(self.checkerboard_2, self.checkerboard_4) > CHECKERBOARD_MAX
                and self.grid_levels_4 >= CHECKERBOARD_MIN_LEVELS)

    @property
    def border(self) -> bool:
        return (abs(self.border_luma_shift) > BORDER_LUMA_MAX
                or not 1 / BORDER_DETAIL_MAX <= self.border_detail_ratio <= BORDER_DETAIL_MAX)


def artifact_report(outputs: Sequence[torch.Tensor], photos: Sequence[torch.Tensor]) -> ArtifactReport:
    """Checkerboard and border statistics of ``outputs`` (stylized ``photos``, same order and sizes)."""
    if len(outputs) != len(photos) or not outputs:
        raise ValueError("need one output per photo, and at least one")
    n = len(outputs)
    shifts, log_ratios = [], []
    for out, photo in zip(outputs, photos, strict=False):
        o, p = border_stats(out), border_stats(photo)
        shifts.append(o.luma_offset - p.luma_offset)
        log_ratios.append(math.log(max(o.detail_ratio, 1e-8) / max(p.detail_ratio, 1e-8)))
    return ArtifactReport(
        checkerboard_2=sum(checkerboard_score(o, 2) for o in outputs) / n,
        checkerboard_4=sum(checkerboard_score(o, 4) for o in outputs) / n,
        grid_levels_4=sum(grid_pattern(o, 4)[1] for o in outputs) / n,
        photo_checkerboard_2=sum(checkerboard_score(p, 2) for p in photos) / n,
        photo_checkerboard_4=sum(checkerboard_score(p, 4) for p in photos) / n,
        border_luma_shift=sum(shifts) / n,
        border_detail_ratio=math.exp(sum(log_ratios) / n),
        edge_profile=tuple(
            sum(values) / n
            for values in zip(*(edge_profile(o, p) for o, p in zip(outputs, photos, strict=False)), strict=False)
        ),
    )
