"""The trainer: Johnson et al. 2016 perceptual-loss training of a transform network for one style or several.

Several paintings train one network with conditional instance norm (Dumoulin et al. 2017): each sample of a step
draws a style (balanced over the batch, seeded from the step) and is measured against its own painting's Grams.
With a ``base`` model, only the new styles' norm rows learn (and, with ``relearn``, the rows of the base's styles
the run names again); every other weight and row stays bit-equal. Such a model's metadata keeps a ``lineage``: the
config of every run that learned some of its rows (:mod:`fastnst.training.lineage`).

A run is a pure function of its config: model init, data order and crops are seeded, and checkpoints carry the
model, optimizer, grad scaler, weight average, RNG states and step (the data position is derived from the step),
so a run killed at any moment and resumed from its last checkpoint ends with the same weights as one that was
never stopped. The model written is the weight average (``ema_width``, :mod:`fastnst.training.averaging`), or the
last weights where it is off.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from fastnst.model.files import load_model, save_model
from fastnst.model.mixing import style_entries
from fastnst.model.transformer import TransformerNet, TransformerSpec, extend, restart_rows
from fastnst.perceptual.losses import ContentLoss, LossWeights, PerceptualLoss, StyleLoss
from fastnst.perceptual.vgg import VGGFeatures
from fastnst.training.averaging import WeightAverage
from fastnst.training.checkpoint import load_checkpoint, restore_rng_state, rng_state, save_checkpoint
from fastnst.training.config import TrainConfig, config_from_dict, config_to_toml
from fastnst.training.data import CropSpec, PhotoCrops, StepBatches, draw_styles, make_loader
from fastnst.training.lineage import lineage_of, run_record
from fastnst.training.stability import StabilitySpec, stability_loss, step_generator
from fastnst.utils.atomic import atomic_write_text
from fastnst.utils.cache import keep_compile_cache
from fastnst.utils.device import autocast_dtype, emulated_bf16, resolve_device
from fastnst.utils.errors import CheckpointError, ConfigError, FastNSTError
from fastnst.utils.images import image_to_tensor, load_rgb, resize_max_side
from fastnst.utils.machine import device_name

logger = logging.getLogger("fastnst.training.trainer")

CHECKPOINT_NAME = "last.pt"
PREVIOUS_CHECKPOINT_NAME = "previous.pt"  # the checkpoint before last.pt: what --resume falls back to
PREVIEW_MAX_SIDE = 256
# Config keys that change what is being learned: resuming with other values would silently mix two runs.
RESUME_MUST_MATCH = ("style_image", "style_size", "data_dir", "holdout_every", "width", "residual_blocks", "vgg",
                     "content_layer", "style_layers", "style_layer_weights", "content_weight", "style_weight",
                     "tv_weight", "image_size", "batch_size", "learning_rate", "schedule", "warmup_steps",
                     "min_lr_ratio", "cooldown_fraction", "seed", "style_images", "style_names", "base", "relearn",
                     "style_weights", "stability_weight", "stability_noise", "stability_shift", "stability_margin",
                     "crop_max_scale", "hflip", "ema_width")


@dataclass
class StepReport:
    """Sent to the progress callback after every step (rank 0 only)."""

    step: int  # steps completed
    total_steps: int
    losses: dict[str, float]
    lr: float
    images_per_second: float


@dataclass
class TrainResult:
    output_dir: Path
    model_path: Path
    steps: int
    final_losses: dict[str, float]
    images_per_second: float
    skipped_files: list[str] = field(default_factory=list)


def get_lr(step: int, config: TrainConfig) -> float:
    """Learning rate for a 0-based step: linear warm-up, then constant, cosine decay to min_lr_ratio, or constant
    with a linear cooldown to min_lr_ratio over the last cooldown_fraction of the steps (the last step is at the
    floor)."""
    base = config.learning_rate
    if step < config.warmup_steps:
        return base * (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return base
    floor = base * config.min_lr_ratio
    if config.schedule == "cooldown":
        span = max(1, round(config.cooldown_fraction * config.steps))
        progress = min(1.0, max(0, step - (config.steps - span) + 1) / span)
        return base + (floor - base) * progress
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    return floor + (base - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(config: TrainConfig) -> DistContext:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1): gloo on CPU, nccl on CUDA."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = resolve_device(config.device).type == "cuda"
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank)


def load_style_tensor(config: TrainConfig, path: str | None = None) -> torch.Tensor:
    """The painting ``path`` (default: the config's ``style_image``) as [1, 3, H, W], resized to ``style_size``."""
    image = load_rgb(path or config.style_image, max_pixels=config.max_pixels)
    if config.style_size:
        longer = max(image.size)
        scale = config.style_size / longer
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             resample=3)  # bicubic, up or down
    return image_to_tensor(image)


@dataclass
class StyleSetup:
    """The network a run starts from and which of its styles it learns."""

    model: TransformerNet
    styles: list[dict[str, str]]  # every style of the network, in row order: {"name", "image"}
    learned: list[int]  # the style rows this run samples and learns, in the config's painting order
    frozen: list[int]  # norm rows that must not change (the base's styles this run keeps); none without a base
    lineage: list[dict[str, Any]] = field(default_factory=list)  # the base's runs (lineage records), oldest first


def build_network(config: TrainConfig) -> StyleSetup:
    """The initial network: fresh and seeded (one style or several), or a base model grown by the new styles."""
    new_styles = [{"name": name, "image": Path(image).name} for name, image in config.paintings]
    torch.manual_seed(config.seed)
    if not config.base:
        spec = TransformerSpec(width=config.width, residual_blocks=config.residual_blocks, styles=len(new_styles))
        return StyleSetup(TransformerNet(spec), new_styles, list(range(len(new_styles))), [])
    try:
        base, info = load_model(config.base)
    except FastNSTError as exc:
        raise ConfigError(f"base model: {exc}", setting="base") from None
    old = style_entries(info.metadata, info.name)
    if len(old) != base.spec.styles:
        raise ConfigError(f"base model {config.base} lists {len(old)} styles in its metadata but its network holds "
                          f"{base.spec.styles}", setting="base")
    old_names = [style["name"] for style in old]
    taken = [style["name"] for style in new_styles if style["name"] in old_names]
    if taken and not config.relearn:
        raise ConfigError(f"base model {config.base} already holds a style named {', '.join(taken)}; "
                          f"its styles: {', '.join(old_names)} (choose another --style-name, or pass --relearn to "
                          "learn it again)", setting="style_name")
    kept = [row for row, name in enumerate(old_names) if name not in taken]
    if not kept:
        raise ConfigError(f"relearning every style of {config.base} leaves no row to start from: train a new "
                          "network instead", setting="relearn")
    added = [style for style in new_styles if style["name"] not in taken]
    new_by_name = {style["name"]: style for style in new_styles}
    styles = [new_by_name.get(style["name"], style) for style in old] + added
    names = [style["name"] for style in styles]
    learned = [names.index(style["name"]) for style in new_styles]
    model = extend(base.float(), len(added))
    if taken:  # every learned row starts from the rows kept, not from the styles it replaces
        model = restart_rows(model, learned)
    return StyleSetup(model, styles, learned, kept, lineage_of(info.metadata))


class TrainingStopped(Exception):
    """Raised by ``Trainer.run`` after ``request_stop()``: a checkpoint of the last finished step was written."""

    def __init__(self, step: int, checkpoint: Path) -> None:
        super().__init__(f"training stopped at step {step}; checkpoint {checkpoint} saved (continue with --resume)")
        self.step, self.checkpoint = step, checkpoint


class Trainer:
    """Owns the model, optimizer, data and logging of one run; ``run()`` trains to ``config.steps``."""

    def __init__(
        self,
        config: TrainConfig,
        *,
        resume: bool = False,
        on_step: Callable[[StepReport], None] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.on_step = on_step
        self.log = log or logger.info
        self.dist = init_distributed(config)
        self.device = resolve_device(config.device, self.dist.local_rank)
        self.amp_dtype = autocast_dtype(config.amp, self.device)
        if emulated_bf16(self.amp_dtype, self.device):
            self.log("amp = bf16 on a CPU without bf16 instructions: oneDNN emulates it, at about 3× the time of an "
                     "fp32 step (amp = auto trains in fp32 here)")
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed crop size: let cuDNN pick the fastest kernels once
        self.output_dir = config.resolved_output_dir
        self.checkpoint_path = self.output_dir / "checkpoints" / CHECKPOINT_NAME
        self.previous_path = self.checkpoint_path.with_name(PREVIOUS_CHECKPOINT_NAME)

        setup = build_network(config)
        if config.base:  # the base decides the architecture; the saved config says what was trained
            config = self.config = config.replace(width=setup.model.spec.width,
                                                  residual_blocks=setup.model.spec.residual_blocks)
        self.spec = setup.model.spec
        self.styles, self.learned, self.lineage = setup.styles, setup.learned, setup.lineage
        self.frozen = torch.tensor(setup.frozen, dtype=torch.long, device=self.device)
        self.model = setup.model.to(self.device, memory_format=self.memory_format)
        self.norm_rows: list[nn.Parameter] = []  # conditional norm tensors whose kept rows stay frozen
        if config.base:
            for name, parameter in self.model.named_parameters():
                learned = name in self.model.style_keys()
                parameter.requires_grad_(learned)
                if learned:
                    self.norm_rows.append(parameter)
        # On a GPU the fused Adam is one kernel for every parameter instead of a few per tensor group.
        self.optimizer = torch.optim.Adam([p for p in self.model.parameters() if p.requires_grad],
                                          lr=config.learning_rate, fused=True if self.device.type == "cuda" else None)
        self.average = WeightAverage(self.model, config.ema_width) if config.ema_width else None
        # fp16 needs loss scaling; for bf16 and fp32 the scaler is a no-op, so the loop has no precision branches.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)

        self.dataset = PhotoCrops(config.data_dir, CropSpec(config.image_size, config.crop_max_scale, config.hflip),
                                  config.seed, config.max_pixels, config.holdout_every)
        self.stability = StabilitySpec.from_config(config)
        self.vgg = VGGFeatures(
            tuple(dict.fromkeys((config.content_layer, *config.style_layers))),
            weights=config.vgg,
            weights_path=config.vgg_weights or None,
        ).to(self.device, memory_format=self.memory_format)
        with torch.no_grad():  # each learned style's Grams, once: slot k of the loss is style self.learned[k]
            style_features = [self.vgg(load_style_tensor(config, image).to(self.device),
                                       layers=tuple(config.style_layers)) for _, image in config.paintings]
        self.loss = PerceptualLoss(
            ContentLoss(config.content_layer),
            StyleLoss(style_features[0] if self.spec.styles == 1 else style_features,
                      dict(zip(config.style_layers, config.style_layer_weights, strict=False))),
            LossWeights(config.content_weight, config.painting_weights[0], config.tv_weight),
            config.painting_weights,
        ).to(self.device)

        self.step = 0
        self._stop_requested = False
        self.skipped: set[str] = set()
        self.elapsed = 0.0
        self.recent: dict[str, float] = {}
        existing = self.checkpoint_path.is_file() or self.previous_path.is_file()
        if resume and existing:
            self._restore(*self._load_for_resume())
        elif existing and not resume:
            raise CheckpointError(
                f"{self.output_dir} already holds a run (checkpoint {self.checkpoint_path}); pass --resume to "
                "continue it or choose another --output-dir"
            )
        elif resume:
            self.log(f"no checkpoint at {self.checkpoint_path}; starting a new run")

        self.ddp_model: nn.Module = self.model
        if self.dist.world_size > 1:
            self.ddp_model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.dist.local_rank] if self.device.type == "cuda" else None
            )
        # Compiled wrappers are used for the steps only; checkpoints always hold the bare module's state.
        self.vgg_fn: nn.Module = self.vgg
        self.loss_fn: nn.Module = self.loss
        if config.compile != "off":
            keep_compile_cache()
            self.ddp_model = torch.compile(self.ddp_model, mode=config.compile)  # type: ignore[assignment]
            self.vgg_fn = torch.compile(self.vgg, mode=config.compile)  # type: ignore[assignment]
            self.loss_fn = torch.compile(self.loss, mode=config.compile)  # Gram matrices and reductions fuse

    def request_stop(self) -> None:
        """Ask the loop to checkpoint and stop after the current step (safe to call from a signal handler)."""
        self._stop_requested = True

    # --- state
    def _load_for_resume(self) -> tuple[dict[str, Any], Path]:
        """last.pt, verified; when it is damaged or missing, previous.pt, saying so. A damaged last.pt is moved
        aside so the next checkpoint does not rotate it into previous.pt."""
        last, previous = self.checkpoint_path, self.previous_path
        problem = f"no {last.name} in {last.parent}"
        if last.is_file():
            try:
                return load_checkpoint(last), last
            except CheckpointError as exc:
                if not previous.is_file():
                    raise
                problem = str(exc)
        try:
            payload = load_checkpoint(previous)
        except CheckpointError as exc:
            raise CheckpointError(f"{problem}, and the previous checkpoint cannot be used either: {exc}") from None
        if last.is_file() and self.dist.is_main:  # one process renames it; the others read previous.pt too
            damaged = last.with_name(last.name + ".damaged")
            with contextlib.suppress(FileNotFoundError):
                os.replace(last, damaged)
            problem += f" (kept as {damaged.name})"
        self.log(f"{problem}; falling back to the previous checkpoint {previous}")
        return payload, previous

    def _restore(self, payload: dict[str, Any], source: Path) -> None:
        saved = config_from_dict(payload["config"], str(source))
        changed = [key for key in RESUME_MUST_MATCH if getattr(saved, key) != getattr(self.config, key)]
        if changed:
            key = changed[0]
            raise CheckpointError(
                f"cannot resume: '{key}' was {getattr(saved, key)!r} in the checkpoint but is "
                f"{getattr(self.config, key)!r} now (start a new run in another --output-dir)"
            )
        if payload["spec"] != self.spec.to_dict():
            raise CheckpointError(f"{source} holds another architecture: {payload['spec']}")
        saved_styles = [entry["name"] for entry in payload.get("styles", self.styles)]
        if saved_styles != [entry["name"] for entry in self.styles]:
            raise CheckpointError(f"cannot resume: {source} holds the styles {', '.join(saved_styles)}, this run "
                                  f"{', '.join(entry['name'] for entry in self.styles)} (has the base changed?)")
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scaler.load_state_dict(payload["scaler"])
        if self.average is not None:
            if "weight_average" not in payload:
                raise CheckpointError(f"cannot resume: {source} holds no weight average (ema_width)")
            self.average.load_state_dict(payload["weight_average"])
        restore_rng_state(payload["rng"])
        self.step = int(payload["step"])
        self.elapsed = float(payload.get("elapsed_seconds", 0.0))
        self.skipped = set(payload.get("skipped_files", []))
        self.recent = dict(payload.get("recent_losses", {}))
        self.log(f"resumed from {source} at step {self.step}")
        if saved.steps != self.config.steps and self.config.schedule != "constant":
            self.log(f"steps changed from {saved.steps} to {self.config.steps}: the {self.config.schedule} "
                     f"learning-rate schedule follows the run's length, so from step {self.step + 1} it is the "
                     f"schedule of a {self.config.steps}-step run")

    def _save_checkpoint(self) -> None:
        if not self.dist.is_main:
            return
        save_checkpoint(self.checkpoint_path, {
            "model": self.model.state_dict(),  # the bare module: no "module." prefixes from DDP
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            **({"weight_average": self.average.state_dict()} if self.average is not None else {}),
            "rng": rng_state(),
            "step": self.step,
            "config": self.config.to_dict(),
            "spec": self.spec.to_dict(),
            **({"styles": self.styles} if self.spec.styles > 1 else {}),
            **({"lineage": self.lineage} if self.config.base else {}),
            "elapsed_seconds": self.elapsed,
            "skipped_files": sorted(self.skipped),
            "recent_losses": self.recent,
            "run_info": self._run_info(),
        }, previous=self.previous_path)

    # --- loop
    def _train_step(self, batch: torch.Tensor, lr: float) -> dict[str, torch.Tensor]:
        """One optimizer step; returns the detached losses (with ``style_per_sample`` and ``slots`` for several
        styles)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.config.compile == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()  # outputs of the previous step's graphs may be reused
        x = batch.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        autocast = (torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype is not None
                    else contextlib.nullcontext())
        slots = None
        if self.spec.styles > 1:
            drawn = draw_styles(self.config.seed, self.step, x.shape[0], len(self.learned), self.dist.rank,
                                self.dist.world_size)
            slots = torch.tensor(drawn, device=self.device)
            rows = torch.tensor([self.learned[slot] for slot in drawn], device=self.device)
            style_weights = torch.nn.functional.one_hot(rows, self.spec.styles).float()  # [B, styles]

        def network(images: torch.Tensor) -> torch.Tensor:
            images = images.contiguous(memory_format=self.memory_format)
            return self.ddp_model(images) if slots is None else self.ddp_model(images, style_weights)

        with autocast:
            y = network(x)
            output_features = self.vgg_fn(y)
            with torch.no_grad():
                content_features = self.vgg_fn(x, layers=(self.config.content_layer,))
            stability = stability_loss(network, x, y, step_generator(self.config.seed, self.step, self.dist.rank),
                                       self.stability) if self.stability.enabled else None  # fp32
        total, parts = self.loss_fn(y, output_features, content_features, slots)  # fp32, outside autocast
        if stability is not None:
            parts["stability"] = self.stability.weight * stability
            total = total + parts["stability"]
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        for parameter in self.norm_rows:  # Adam without weight decay: zero gradients leave the rows bit-equal
            if parameter.grad is not None:
                parameter.grad.index_fill_(0, self.frozen, 0.0)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.average is not None:
            self.average.update(self.model)
        out = {"total": total.detach(), **{k: v.detach() for k, v in parts.items()}}
        if slots is not None:
            out["slots"] = slots
        return out

    def _style_losses(self, losses: dict[str, torch.Tensor]) -> dict[str, float]:
        """``style/<name>``: the mean weighted style loss of this step's samples of each learned style."""
        per_sample, slots = losses.pop("style_per_sample", None), losses.pop("slots", None)
        if per_sample is None or slots is None:
            return {}
        values = {}
        for slot, row in enumerate(self.learned):
            chosen = per_sample[slots == slot]
            if chosen.numel():
                values[f"style/{self.styles[row]['name']}"] = float(chosen.mean())
        return values

    def run(self) -> TrainResult:
        config = self.config
        if self.dist.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.checkpoint_path.with_name("config.toml"), config_to_toml(config))
        writer = self._make_writer()
        previews = self._preview_batch() if writer is not None and config.preview_every else None
        batches = StepBatches(self.step, config.steps, config.batch_size, self.dist.rank, self.dist.world_size)
        loader = make_loader(self.dataset, batches, config.num_workers, pin_memory=self.device.type == "cuda")

        window_start, window_images, rate = time.perf_counter(), 0, 0.0
        for batch, bad in loader:
            if bad:
                new = set(bad) - self.skipped
                self.skipped |= new
                for path in sorted(new):
                    self.log(f"skipped unreadable image {path}")
            step_start = time.perf_counter()
            lr = get_lr(self.step, config)
            losses = self._train_step(batch, lr)
            self.step += 1
            window_images += batch.shape[0] * self.dist.world_size
            per_style = self._style_losses(losses)
            values = {k: float(v) for k, v in losses.items()}  # syncs the device once per step
            # A style absent from a small batch keeps the value it last had.
            values.update({**{k: v for k, v in self.recent.items() if k.startswith("style/")}, **per_style})
            if not math.isfinite(values["total"]):
                raise FloatingPointError(f"loss became {values['total']} at step {self.step}; lower learning_rate "
                                         "or the loss weights, or use amp = 'none'")
            self.recent = values
            now = time.perf_counter()
            self.elapsed += now - step_start
            if self.step % config.log_every == 0 or self.step == config.steps:
                rate = window_images / max(now - window_start, 1e-9)
                window_start, window_images = now, 0
                if writer is not None:
                    for key, value in values.items():
                        writer.add_scalar(f"loss/{key}", value, self.step)
                    writer.add_scalar("lr", lr, self.step)
                    writer.add_scalar("images_per_second", rate, self.step)
            if previews is not None and writer is not None and (
                    self.step % config.preview_every == 0 or self.step == config.steps):
                self._write_previews(writer, previews)
            if self.step % config.checkpoint_every == 0 or self.step == config.steps:
                self._save_checkpoint()
            if self.on_step is not None and self.dist.is_main:
                self.on_step(StepReport(self.step, config.steps, values, lr, rate))
            if self._stop_requested and self.step < config.steps:
                self._save_checkpoint()
                if writer is not None:
                    writer.close()
                raise TrainingStopped(self.step, self.checkpoint_path)

        if writer is not None:
            writer.close()
        if self.step < config.steps:
            raise RuntimeError(f"training stopped at step {self.step} of {config.steps}")  # loader ended early
        if self.skipped:
            self.log(f"{len(self.skipped)} unreadable image(s) skipped during training")
        model_path = self.output_dir / "model.safetensors"
        if self.dist.is_main:
            model_path = self.write_model(self.output_dir)
        if self.dist.world_size > 1:
            dist.barrier()
        return TrainResult(self.output_dir, model_path, self.step, self.recent,
                           self.step * config.batch_size * self.dist.world_size / max(self.elapsed, 1e-9),
                           sorted(self.skipped))

    def write_model(self, folder: str | os.PathLike[str]) -> Path:
        """Write the network as it is now as a model folder (a run's result, or a snapshot taken from ``on_step``
        so one run with a constant schedule yields its models at several lengths)."""
        return save_model(self.result_model(), folder, self._metadata())

    def result_model(self) -> nn.Module:
        """The network this run gives now: the weight average with ``ema_width``, else the weights themselves."""
        return self.model if self.average is None else self.average.averaged(self.model)

    # --- logging helpers
    def _make_writer(self) -> Any:
        if not (self.config.tensorboard and self.dist.is_main):
            return None
        from torch.utils.tensorboard import SummaryWriter  # imported lazily: tensorboard is slow to import

        return SummaryWriter(str(self.output_dir / "tb"), purge_step=self.step or None)

    def _preview_batch(self) -> list[torch.Tensor]:
        paths = list(self.config.preview_images)
        if not paths:
            files = self.dataset.held_out or self.dataset.files
            paths = [str(files[i * len(files) // 4]) for i in range(min(4, len(files)))]
        return [image_to_tensor(resize_max_side(load_rgb(p), PREVIEW_MAX_SIDE)) for p in paths]

    def _write_previews(self, writer: Any, previews: list[torch.Tensor]) -> None:
        """Each preview photo through the network: ``preview/<index>``, or ``preview/<style>/<index>`` for every
        style of a multi-style network."""
        model = self.result_model()
        with torch.no_grad():
            for index, image in enumerate(previews):
                if self.spec.styles == 1:
                    out = model(image.to(self.device)).float().clamp(0, 1).cpu()
                    writer.add_image(f"preview/{index}", torch.cat([image, out], dim=-1)[0], self.step)
                    continue
                for row, style in enumerate(self.styles):
                    pick = torch.nn.functional.one_hot(torch.tensor(row), self.spec.styles).float()
                    out = model(image.to(self.device), pick.to(self.device)).float().clamp(0, 1).cpu()
                    writer.add_image(f"preview/{style['name']}/{index}", torch.cat([image, out], dim=-1)[0],
                                     self.step)

    def _run_info(self) -> dict[str, str]:
        return {
            "hardware": f"{device_name(self.device)} × {self.dist.world_size}",
            "precision": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "float32",
            "torch": str(torch.__version__),
        }

    def _metadata(self) -> dict[str, Any]:
        return model_metadata(self.config, steps=self.step, losses=self.recent, seconds=self.elapsed,
                              run_info=self._run_info(), skipped_files=len(self.skipped),
                              styles=self.styles if self.spec.styles > 1 else None,
                              lineage=self.lineage if self.config.base else None)


def model_metadata(config: TrainConfig, *, steps: int, losses: dict[str, float], seconds: float,
                   run_info: dict[str, str], skipped_files: int, styles: list[dict[str, str]] | None = None,
                   lineage: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """What ``model.json`` records about the run that made a model (read back by model cards and the server).

    A multi-style model lists its ``styles`` ({"name", "image"} in row order) and is named by their names joined
    with "+". A run from a base passes the base's ``lineage``; this run's record is appended to it."""
    if styles:
        described: dict[str, Any] = {"style_name": "+".join(style["name"] for style in styles), "styles": styles}
    else:
        described = {"style_name": config.style_name, "style_image": Path(config.style_image).name}
    return {
        **described,
        "steps": steps,
        **extra,
        "final_losses": losses,
        "train_seconds": round(seconds, 1),
        **run_info,
        "skipped_files": skipped_files,
        "config": config.to_dict(),
        **({"lineage": [*lineage, run_record(config, steps=steps, losses=losses, seconds=seconds,
                                                run_info=run_info)]}
           if lineage is not None else {}),
    }


def train(config: TrainConfig, *, resume: bool = False, on_step: Callable[[StepReport], None] | None = None,
          log: Callable[[str], None] | None = None) -> TrainResult:
    """Train a style network as configured; see Trainer."""
    return Trainer(config, resume=resume, on_step=on_step, log=log).run()


def export_checkpoint(checkpoint_path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> Path:
    """Write the model of a (possibly unfinished) run's checkpoint as a model folder; returns the weights path.

    Lets a run cut short by a time budget ship what it has learned; the metadata records the step reached.
    """
    payload = load_checkpoint(checkpoint_path)
    config = config_from_dict(payload["config"], str(checkpoint_path))
    spec = TransformerSpec(**payload["spec"])
    model = TransformerNet(spec)
    model.load_state_dict(payload["weight_average"]["weights"] if "weight_average" in payload else payload["model"])
    return save_model(model, folder, model_metadata(
        config, steps=int(payload["step"]), planned_steps=config.steps, losses=payload.get("recent_losses", {}),
        styles=payload.get("styles"), lineage=payload.get("lineage"),
        seconds=float(payload.get("elapsed_seconds", 0.0)), run_info=payload.get("run_info", {}),
        skipped_files=len(payload.get("skipped_files", []))))
