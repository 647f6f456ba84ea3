"""Training configuration: one frozen dataclass, loaded from TOML, overridable from the command line.

Each field's default and help text live here only; the CLI builds its flags from these fields. A TOML file may
name another with ``inherit = "defaults.toml"`` (relative to itself) so every style shares one set of defaults.
Relative paths inside a TOML file are resolved against that file's folder; paths given on the command line
against the working directory. A run's saved config is read back by :func:`load_run_config`, so a run can be
continued from its folder alone. Nothing here imports torch: the CLI builds ``fastnst train --help`` from it.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import tomllib

from fastnst.utils.errors import ConfigError
from fastnst.utils.typed_config import Schema, option, read_toml, resolve_path

AmpMode = Literal["none", "bf16", "fp16", "auto"]
VggWeights = Literal["vgg16", "vgg19", "vgg19_caffe"]
Schedule = Literal["constant", "cosine", "cooldown"]
Device = Literal["auto", "cpu", "cuda"]
CompileMode = Literal["off", "default", "reduce-overhead"]
# The power-function EMA's relative width is √(1/12) ≈ 0.289 at exponent 0; wider profiles need a negative one.
EMA_MAX_WIDTH = 0.28


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; saved beside every checkpoint and in the final model's metadata."""

    # --- what to learn
    style_image: str = option("", "painting whose style is learned", path=True)
    style_name: str = option("", "name of the style (default: the config file's or style image's stem)")
    style_images: tuple[str, ...] = option(
        (), "several paintings: one network learns them all (on the command line: --style-image repeated)",
        path=True)
    style_names: tuple[str, ...] = option(
        (), "names of style_images' styles, same order (default: their stems; --style-name repeated)")
    base: str = option("", "model (name, folder or .safetensors) to add the style image(s) to: only the new styles' "
                       "norm scales and shifts are learned, width and residual_blocks are the base's")
    relearn: bool = option(
        False, "with base: a style name the base already holds is learned again in its own row, from the mean of "
        "the rows this run keeps (every other row stays bit-equal); without it such a name is refused")
    style_size: int = option(0, "resize the style image so its longer side is this many px (0 = keep)")
    data_dir: str = option(
        "", "folder of training photos, searched recursively (COCO-style train2014/ works)", path=True
    )
    holdout_every: int = option(
        0, "keep every Nth photo (sorted order) out of training for held-out evaluation (0 = none)"
    )
    # --- network
    width: int = option(32, "channels of the transform network's first layer (32 in Johnson et al.)")
    residual_blocks: int = option(5, "residual blocks in the transform network (5 in Johnson et al.)")
    # --- losses (Johnson et al. 2016 layers and pytorch/examples weights by default)
    vgg: VggWeights = option("vgg16", "loss network weights: vgg16, vgg19 (torchvision) or vgg19_caffe")
    vgg_weights: str = option(
        "", "explicit path to VGG weights (else FASTNST_VGG_WEIGHTS, caches, download)", path=True
    )
    content_layer: str = option("relu2_2", "VGG layer of the content loss")
    style_layers: tuple[str, ...] = option(
        ("relu1_2", "relu2_2", "relu3_3", "relu4_3"), "VGG layers of the style loss"
    )
    style_layer_weights: tuple[float, ...] = option((1.0, 1.0, 1.0, 1.0), "weight of each style layer, same order")
    content_weight: float = option(1e5, "weight of the content loss")
    style_weight: float = option(1e10, "weight of the style loss (Gram matrices normalised by C·H·W)")
    style_weights: tuple[float, ...] = option(
        (), "each painting's own style weight, same order as the paintings (default: style_weight for every one); "
        "for a multi-style network whose styles need different weights")
    tv_weight: float = option(0.0, "weight of the total-variation loss")
    stability_weight: float = option(
        0.0, "weight of the stability loss (Gupta et al. 2017): the mean squared difference, in [0, 1] pixel units, "
        "between the output of a noisy (optionally shifted) copy of each crop and the same window of the crop's "
        "output; trains video that flickers less per frame, at one more transform-network pass per step (0 = off; "
        "6e7 for video models, docs/training.md)")
    stability_noise: float = option(
        0.01, "σ of the Gaussian pixel noise of the stability loss's perturbed copy (0.01 ≈ the frame-to-frame "
        "difference of 2/255 sensor noise)")
    stability_shift: int = option(
        0, "the stability loss's perturbed copy is shifted by 0…this many px in each direction (0 = noise only: "
        "measured steadier on static and panning video at a lower style cost than 4, which covers every phase of "
        "the network's stride-4 grid)")
    stability_margin: int = option(
        0, "px at each edge of the stability loss's output window left out of it (the reflection padding there "
        "answers noise differently from the interior; 0 = the whole window)")
    # --- optimisation
    image_size: int = option(256, "side of the square random crops used for training")
    crop_max_scale: float = option(
        1.5, "the shorter side is resized to image_size × U[1, this] before the random crop; 1 = a plain crop at "
        "image_size")
    hflip: bool = option(True, "random horizontal flips of the training crops")
    batch_size: int = option(4, "images per step (per process under torchrun)")
    steps: int = option(2000, "optimizer steps")
    learning_rate: float = option(
        2e-3, "Adam learning rate (twice Johnson et al.'s 1e-3: with the weight average of ema_width it learns more "
        "per step, docs/benchmarks.md)")
    schedule: Schedule = option(
        "constant", "learning-rate schedule after warm-up: constant (as in Johnson et al.); cosine decay to "
        "learning_rate × min_lr_ratio at the last step (it decays early in a short run: 1.4× the style loss of "
        "constant at 200 steps, docs/benchmarks.md); or cooldown: constant, then a linear decay to "
        "learning_rate × min_lr_ratio over the last cooldown_fraction of the steps")
    warmup_steps: int = option(0, "steps of linear learning-rate warm-up")
    min_lr_ratio: float = option(0.1, "the cosine and cooldown schedules end at learning_rate × this")
    cooldown_fraction: float = option(0.2, "share of the steps over which the cooldown schedule decays")
    ema_width: float = option(
        0.05, "write the model as a moving average of the weights over the run (the power-function EMA of Karras et "
        "al. 2024) whose averaging profile has this standard deviation as a fraction of the steps so far, so it "
        "means the same in a short run and a long one; it also makes runs of different seeds alike (0 = off: the "
        "last step's weights; at most 0.28)")
    seed: int = option(0, "seed for weights, crops and data order")
    # --- performance
    device: Device = option("auto", "cpu, cuda or auto")
    amp: AmpMode = option(
        "auto", "autocast precision: none, bf16, fp16, or auto (bf16 on CPU and CUDA when supported)"
    )
    channels_last: bool = option(True, "use the channels_last memory format (faster convolutions on CPU and GPU)")
    num_workers: int = option(2, "data-loading worker processes")
    compile: CompileMode = option("off", "torch.compile the networks: off, default, or reduce-overhead (CUDA graphs)")
    # --- output and logging
    output_dir: str = option("runs/{style_name}", "run folder for checkpoints, TensorBoard logs and the final model",
                         path=True)
    checkpoint_every: int = option(200, "write a checkpoint every N steps (and at the end)")
    log_every: int = option(10, "write TensorBoard scalars every N steps")
    preview_every: int = option(200, "write preview images of the fixed validation photos every N steps (0 = never)")
    preview_images: tuple[str, ...] = option((), "fixed validation photos for previews (default: 4 from data_dir)",
                                         path=True)
    tensorboard: bool = option(True, "write TensorBoard logs under <output_dir>/tb")
    max_pixels: int = option(100_000_000, "refuse images with more decoded pixels than this")

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ConfigError("; ".join(problems))

    def problems(self) -> list[str]:
        """Value checks that types alone cannot express."""
        out = []
        positive = ("width", "residual_blocks", "image_size", "batch_size", "steps", "checkpoint_every", "log_every",
                    "max_pixels")
        out += [f"{name} must be positive, got {getattr(self, name)}"
                for name in positive if getattr(self, name) <= 0]
        non_negative = ("style_size", "warmup_steps", "num_workers", "preview_every", "holdout_every",
                        "stability_shift", "stability_margin")
        out += [f"{name} must be ≥ 0, got {getattr(self, name)}" for name in non_negative if getattr(self, name) < 0]
        for name in ("learning_rate", "content_weight", "style_weight", "tv_weight", "min_lr_ratio",
                     "stability_weight", "stability_noise"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                out.append(f"{name} must be a finite number ≥ 0, got {value}")
        if len(self.style_layer_weights) != len(self.style_layers):
            out.append(f"style_layer_weights has {len(self.style_layer_weights)} entries but style_layers has "
                       f"{len(self.style_layers)}")
        if not self.style_layers:
            out.append("style_layers must name at least one layer")
        if self.holdout_every == 1:
            out.append("holdout_every = 1 would hold out every photo; use 0 (none) or ≥ 2")
        if not (math.isfinite(self.cooldown_fraction) and 0 < self.cooldown_fraction <= 1):
            out.append(f"cooldown_fraction must be in (0, 1], got {self.cooldown_fraction}")
        if not (math.isfinite(self.ema_width) and 0 <= self.ema_width <= EMA_MAX_WIDTH):
            out.append(f"ema_width must be in [0, {EMA_MAX_WIDTH}], got {self.ema_width}")
        if not (math.isfinite(self.crop_max_scale) and self.crop_max_scale >= 1):
            out.append(f"crop_max_scale must be a finite number ≥ 1, got {self.crop_max_scale}")
        if self.stability_shift >= self.image_size // 2:
            out.append(f"stability_shift must be below half of image_size ({self.image_size}), "
                       f"got {self.stability_shift}")
        if 2 * self.stability_margin + self.stability_shift + 4 > self.image_size:
            out.append(f"stability_margin must leave part of the {self.image_size}-px crop in the stability loss, "
                       f"got {self.stability_margin}")
        if self.image_size < 32:
            out.append(f"image_size must be at least 32 px for VGG, got {self.image_size}")
        if self.style_images and self.style_image:
            out.append("give style_image (one painting) or style_images (several), not both")
        if self.style_names and len(self.style_names) != len(self.style_images):
            out.append(f"style_names has {len(self.style_names)} entries but style_images has "
                       f"{len(self.style_images)}")
        names = painting_names(self.style_name, self.style_images, self.style_names)
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            out.append(f"style names must differ; {', '.join(duplicates)} is given more than once (set style_names)")
        if self.style_weights and len(self.style_weights) != len(names):
            out.append(f"style_weights has {len(self.style_weights)} entries but there are {len(names)} paintings")
        if any(not (math.isfinite(w) and w >= 0) for w in self.style_weights):
            out.append(f"style_weights must be finite numbers ≥ 0, got {list(self.style_weights)}")
        if self.relearn and not self.base:
            out.append("relearn needs a base model whose styles are learned again")
        if any(not name or "+" in name for name in self.style_names):
            out.append("style_names must be non-empty and hold no '+' (it joins the names of a multi-style model)")
        return out

    @property
    def paintings(self) -> tuple[tuple[str, str], ...]:
        """(name, image path) of every style this run learns, in style order (one for a single-style run)."""
        names = painting_names(self.style_name, self.style_images, self.style_names)
        return tuple(zip(names, self.style_images or (self.style_image,), strict=True))

    @property
    def painting_weights(self) -> tuple[float, ...]:
        """The style weight of each painting of :attr:`paintings`, in the same order."""
        return self.style_weights or (self.style_weight,) * len(self.paintings)

    def for_style(self, name: str) -> TrainConfig:
        """This config as a single-style run of the painting ``name``, with its own style weight: what defines
        that style's loss numbers."""
        index = [painting for painting, _ in self.paintings].index(name)
        return self.replace(style_image=self.paintings[index][1], style_name=name, style_images=(), style_names=(),
                            style_weight=self.painting_weights[index], style_weights=())

    @property
    def resolved_output_dir(self) -> Path:
        return Path(self.output_dir.format(style_name=self.style_name or "style"))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def painting_names(style_name: str, style_images: Sequence[str], style_names: Sequence[str]) -> tuple[str, ...]:
    """The names of a config's styles, in order: ``style_names``, else each painting's file stem; a single painting
    (no ``style_images``) is ``style_name``. Also read from stored configs (a model's lineage)."""
    if not style_images:
        return (style_name,)
    return tuple(style_names) or tuple(Path(image).stem for image in style_images)


SCHEMA = Schema(TrainConfig)
FIELD_TYPES: dict[str, Any] = SCHEMA.types


def coerce(key: str, value: Any, source: str) -> Any:
    """Check ``value`` against the field's type and return it in the dataclass's representation."""
    return SCHEMA.coerce(key, value, source)


def parse_overrides(items: Iterable[str], source: str) -> dict[str, Any]:
    """``KEY=VALUE`` texts with TOML values (``ema_width=0.05``, ``schedule="constant"``) as checked config
    overrides, for tools that take them from the command line; ``source`` names where they came from."""
    values: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"{source} {item!r}: expected KEY=VALUE")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source} {item!r}: {exc} (strings need quotes: schedule='\"constant\"')") from None
        values[key.strip()] = coerce(key.strip(), value, source)
    return values


def _config_chain(path: str | os.PathLike[str]) -> list[tuple[Path, dict[str, Any]]]:
    """``path`` and every file it inherits, nearest first, each with its TOML table read once (``inherit`` kept);
    a chain that comes back to a file it already holds is refused."""
    chain: list[tuple[Path, dict[str, Any]]] = []
    current = Path(path).resolve()
    while True:
        raw = read_toml(current)
        chain.append((current, raw))
        parent = raw.get("inherit")
        if parent is None:
            return chain
        if not isinstance(parent, str):
            raise ConfigError(f"{current}: 'inherit' must be a file name string")
        current = (current.parent / parent).resolve()
        if any(current == file for file, _ in chain):
            raise ConfigError(f"{current}: 'inherit' loops back to itself")


def inherited_configs(path: str | os.PathLike[str]) -> list[Path]:
    """The config files ``path`` inherits, nearest first (``inherit`` chains, as load_config follows them)."""
    return [file for file, _ in _config_chain(path)[1:]]


def _read_toml(path: Path) -> dict[str, Any]:
    """Read a config and every file it inherits, nearer files overriding; each file's relative paths resolve
    against its own folder."""
    values: dict[str, Any] = {}
    for file, raw in reversed(_config_chain(path)):
        for key, value in raw.items():
            if key == "inherit":
                continue
            value = coerce(key, value, str(file))
            if key in SCHEMA.path_fields:
                value = (tuple(resolve_path(v, file.parent) for v in value) if isinstance(value, tuple)
                         else resolve_path(value, file.parent))
            values[key] = value
    return values


def load_config(path: str | os.PathLike[str] | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Build a TrainConfig from an optional TOML file plus overrides (already typed, e.g. from argparse)."""
    values: dict[str, Any] = {}
    if path is not None:
        values.update(_read_toml(Path(path)))
    for key, value in (overrides or {}).items():
        values[key] = coerce(key, value, "command line")
    source = str(path or "command line")
    images = values.get("style_images") or ()
    if len(images) == 1 and not values.get("style_image"):  # one painting: exactly today's single-style run
        values["style_image"] = images[0]
        names = values.pop("style_names", ()) or ()
        if len(names) > 1:
            raise ConfigError(f"{source}: style_names has {len(names)} entries but style_images has 1")
        if names and not values.get("style_name"):
            values["style_name"] = names[0]
        values["style_images"] = ()
    if len(values.get("style_images") or ()) > 1 and not values.get("style_name") and path is None:
        names = values.get("style_names") or tuple(Path(image).stem for image in values["style_images"])
        values["style_name"] = "+".join(names)
    if not values.get("style_name"):
        stem = Path(path).stem if path is not None else Path(values.get("style_image", "") or "style").stem
        values["style_name"] = stem
    if not values.get("style_image") and not values.get("style_images"):
        raise ConfigError(f"{source}: 'style_image' (or 'style_images') is required (a painting's path)")
    if not values.get("data_dir"):
        raise ConfigError(f"{path or 'command line'}: 'data_dir' is required (a folder of training photos)")
    return TrainConfig(**values)


# A saved config (a run folder's, a model's metadata) written before a key existed was trained with this value.
KEYS_ADDED_LATER: dict[str, Any] = {"ema_width": 0.0}


def _with_keys_added_later(values: dict[str, Any]) -> dict[str, Any]:
    return {**{key: value for key, value in KEYS_ADDED_LATER.items() if key not in values}, **values}


RUN_CONFIG = Path("checkpoints") / "config.toml"
"""Where the trainer saves a run's effective config, relative to the run folder."""


def load_run_config(run_dir: str | os.PathLike[str], overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The config a run was trained with (``<run_dir>/checkpoints/config.toml``) plus overrides, to continue it.

    Its relative paths stay as written: the trainer saved them as the run used them (relative to the working folder
    the run was started from), so they are not re-resolved against the file's folder as a hand-written config's
    are. The run folder itself is ``run_dir``, wherever the saved config said it was.
    """
    folder = Path(run_dir)
    if not folder.is_dir():
        raise ConfigError(f"cannot resume: the run folder {folder} does not exist", setting="output_dir")
    file = folder / RUN_CONFIG
    if not file.is_file():
        raise ConfigError(f"cannot resume: {folder} holds no saved config ({RUN_CONFIG}); it is not a training run "
                          "folder, or its run never started", setting="output_dir")
    values = {key: coerce(key, value, str(file)) for key, value in _with_keys_added_later(read_toml(file)).items()}
    for key, value in {**(overrides or {}), "output_dir": str(folder)}.items():
        values[key] = coerce(key, value, "command line")
    return TrainConfig(**values)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def config_to_toml(config: TrainConfig) -> str:
    """Serialise the effective config; loading the result gives back an equal TrainConfig."""
    lines = ["# effective fastnst training configuration"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in config.to_dict().items()]
    return "\n".join(lines) + "\n"


def config_from_dict(values: dict[str, Any], source: str) -> TrainConfig:
    """Rebuild a config from saved metadata, with the same key and type checks as a TOML file."""
    return TrainConfig(**{key: coerce(key, value, source) for key, value in _with_keys_added_later(values).items()})
