"""``fastnst optimize``: classic per-image style transfer (Gatys et al. 2016) with a progress bar."""

from __future__ import annotations

import argparse
from typing import Any

# Flags whose name differs from the OptimizeOptions field (the issue's `--style-weights 0.7,0.3`).
_FLAG_NAMES = {"style_blend_weights": "--style-weights"}


def register(commands: argparse._SubParsersAction) -> None:
    from fastnst.optimizer.config import SCHEMA

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
    SCHEMA.add_flags(parser, "options (defaults shown are OptimizeOptions')", _FLAG_NAMES)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from fastnst.optimizer.config import SCHEMA, OptimizeOptions
    from fastnst.optimizer.loop import Progress, optimize_files

    # Checked before anything is loaded: a bad option is one line and exit 1.
    options = OptimizeOptions(**SCHEMA.overrides_from(args))
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
