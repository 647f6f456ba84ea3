"""``fastnst train``: train a style network from a TOML config plus flag overrides."""

from __future__ import annotations

import argparse
import os
import sys

from fastnst.utils.errors import FastNSTError

EXIT_INTERRUPTED = 130


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("train", help="train a style network", description="Train a style network "
                                 "(Johnson et al. 2016). Values come from --config, then from the flags below. "
                                 "Several --style-image flags train one network for all the paintings; --base MODEL "
                                 "adds the painting(s) to a trained model.", conflict_handler="resolve")
    parser.add_argument("-c", "--config", help="TOML config file (see configs/)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from <output_dir>/checkpoints/last.pt (previous.pt when last.pt is damaged); "
                             "without --config, the run's saved <output_dir>/checkpoints/config.toml is the config "
                             "(flags still override it)")
    from fastnst.training.config import SCHEMA

    SCHEMA.add_flags(parser, "config overrides (defaults shown are TrainConfig's)")
    # Repeatable: one painting is a single-style run, several train one multi-style network.
    group = next(g for g in parser._action_groups if any(a.dest == "style_images" for a in g._group_actions))
    group.add_argument("--style-image", dest="style_image", action="append", default=None, metavar="IMAGE",
                       help="painting whose style is learned; repeat it to learn several in one network")
    group.add_argument("--style-name", dest="style_name", action="append", default=None, metavar="NAME",
                       help="name of the style (default: the config file's or style image's stem); repeat it "
                            "once per --style-image to name several")
    parser.set_defaults(handler=run)


def style_overrides(args: argparse.Namespace) -> dict[str, object]:
    """Config values of the repeatable --style-image and --style-name flags (cleared from ``args``): the images
    given replace the config file's painting(s)."""
    images, names = args.style_image or [], args.style_name or []
    args.style_image = args.style_name = None
    values: dict[str, object] = {}
    if len(images) == 1:  # today's single-style run, with the config and checkpoints it always had
        values["style_image"] = images[0]
    elif images:
        values |= {"style_image": "", "style_images": tuple(images), "style_names": ()}
    if len(names) > 1 or (names and len(images) > 1):
        values["style_names"] = tuple(names)
    elif names:
        values["style_name"] = names[0]
    return values


def run(args: argparse.Namespace) -> int:
    import signal

    from tqdm import tqdm

    from fastnst.training.config import SCHEMA, load_config, load_run_config

    overrides = style_overrides(args) | SCHEMA.overrides_from(args)
    if args.resume and args.config is None and "output_dir" in overrides:
        config = load_run_config(overrides["output_dir"], overrides)  # the run's own saved config
    elif args.resume and args.config is None and not ({"style_image", "style_images"} & overrides.keys()):
        raise FastNSTError("--resume needs the run to continue: its folder (--output-dir RUN) or its --config")
    else:
        config = load_config(args.config, overrides)

    from fastnst.training.trainer import StepReport, Trainer, TrainingStopped  # torch: after the config is checked

    is_main = int(os.environ.get("RANK", "0")) == 0
    bar: tqdm | None = None  # opened once the run is set up, so a set-up error is the only line printed

    def on_step(report: StepReport) -> None:
        assert bar is not None  # steps run after the bar opened
        if bar.n == 0 and report.step > 1:
            bar.update(report.step - 1)  # resumed: count the steps already done
        bar.update(1)
        bar.set_postfix(loss=f"{report.losses['total']:.3g}", style=f"{report.losses['style']:.3g}",
                        content=f"{report.losses['content']:.3g}", ips=f"{report.images_per_second:.1f}",
                        refresh=False)

    def log(message: str) -> None:
        if not args.quiet and is_main:
            if bar is None:
                print(message, file=sys.stderr)
            else:
                bar.write(message, file=sys.stderr)

    trainer = Trainer(config, resume=args.resume, on_step=on_step, log=log)
    bar = tqdm(total=config.steps, desc=config.style_name, unit="step", dynamic_ncols=True,
               disable=args.quiet or not is_main)
    # SIGTERM (a scheduler's time limit, `kill`) and Ctrl-C finish the current step and write a checkpoint.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: trainer.request_stop())
    try:
        result = trainer.run()
    except TrainingStopped as stopped:
        bar.close()
        print(f"fastnst: {stopped}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except FloatingPointError as exc:
        raise FastNSTError(str(exc)) from None
    finally:
        bar.close()
    if is_main and not args.quiet:
        losses = ", ".join(f"{k} {v:.4g}" for k, v in result.final_losses.items())
        print(f"saved {result.model_path} after {result.steps} steps ({losses})")
    return 0
