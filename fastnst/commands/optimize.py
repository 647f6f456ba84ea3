"""``fastnst optimize``: classic per-image style transfer (Gatys et al. 2016) with a progress bar."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import fields
from typing import Any, Literal, get_args, get_origin

# Flags whose name differs from the OptimizeOptions field (the issue's `--style-weights 0.7,0.3`).
_FLAG_NAMES = {"style_blend_weights": "--style-weights"}


def _list_of(kind: type) -> Callable[[str], tuple[Any, ...]]:
    """argparse type for comma-separated lists (``--sizes 256,512,0``); spaces around commas are allowed."""

    def parse(text: str) -> tuple[Any, ...]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        try:
            return tuple(kind(item) for item in items)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__} values, got {text!r}")
        # argparse reports ArgumentTypeError as a usage error (exit 2) naming the flag

    parse.__name__ = f"{kind.__name__} list"
    return parse


def add_option_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per OptimizeOptions field, typed from its annotation; defaults stay in the dataclass."""
    from ..optimize_config import FIELD_TYPES, OptimizeOptions

    group = parser.add_argument_group("options (defaults shown are OptimizeOptions')")
    for item in fields(OptimizeOptions):
        annotation = FIELD_TYPES[item.name]
        flag = _FLAG_NAMES.get(item.name, "--" + item.name.replace("_", "-"))
        default = item.default
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        help_text = item.metadata["help"] if default is None else f"{item.metadata['help']} [default: {shown}]"
        kwargs: dict[str, Any] = {"dest": item.name, "default": None, "help": help_text}
        origin = get_origin(annotation)
        if annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is Literal:
            kwargs["choices"] = list(get_args(annotation))
        elif origin is tuple:
            kwargs["type"] = _list_of(get_args(annotation)[0])
            kwargs["metavar"] = "A,B,..."
        elif annotation == (float | None):
            kwargs["type"] = float
        else:
            kwargs["type"] = annotation
        group.add_argument(flag, **kwargs)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "optimize", help="stylize one image by optimising its pixels (Gatys et al.)",
        description="Classic neural style transfer (Gatys, Ecker, Bethge 2016): optimise the image itself to "
                    "match the content photo's VGG activations and the style paintings' Gram matrices. Slow but "
                    "needs no trained model. Example: fastnst optimize --content photo.jpg --style a.jpg "
                    "--style b.jpg --style-weights 0.7,0.3 --sizes 256,512 -o out.png")
    parser.add_argument("--content", required=True, help="content photo")
    parser.add_argument("--style", required=True, action="append", dest="styles",
                        help="style image; repeat for several styles blended by --style-weights")
    parser.add_argument("-o", "--output", required=True, help="output image file (format from the extension)")
    add_option_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..optimize import Progress, optimize_files
    from ..optimize_config import OptimizeOptions

    names = {item.name for item in fields(OptimizeOptions)}
    overrides = {key: value for key, value in vars(args).items() if key in names and value is not None}
    options = OptimizeOptions(**overrides)  # ConfigError → one line, exit 1, before anything is loaded
    total = sum(options.iterations_at(scale) for scale in range(len(options.sizes)))
    bars: list[Any] = []  # created at the first iteration, so input errors are not preceded by an empty bar

    def on_progress(progress: Progress) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="it", dynamic_ncols=True, disable=args.quiet))
        bar = bars[0]
        bar.set_description(f"scale {progress.scale + 1}/{progress.scales} {progress.size[0]}×{progress.size[1]}",
                            refresh=False)
        losses = progress.losses
        bar.set_postfix(total=f"{losses['total']:.4g}", content=f"{losses['content']:.3g}",
                        style=f"{losses['style']:.3g}", tv=f"{losses['tv']:.3g}", refresh=False)
        bar.update(1)

    try:
        result = optimize_files(args.content, args.styles, args.output, options, on_progress=on_progress)
    finally:
        for bar in bars:
            bar.close()
    if not args.quiet:
        losses = ", ".join(f"{name} {value:.4g}" for name, value in result.losses.items())
        print(f"wrote {args.output} in {result.seconds:.1f} s on {result.device}, {result.precision} ({losses})")
    return 0
