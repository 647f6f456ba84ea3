"""The ``fastnst`` command line.

This is the only layer that prints, parses argv and exits: library errors (FastNSTError) become one line on
stderr and exit status 1, a wrong flag exits with status 2 (argparse), Ctrl-C exits with status 130.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from fastnst._version import __version__
from fastnst.commands import COMMANDS
from fastnst.utils.errors import FastNSTError

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


QUIET_HELP = "no progress bars or info messages"


def build_parser() -> argparse.ArgumentParser:
    """The whole parser; registering a command imports no torch (its ``run`` imports what it needs)."""
    parser = argparse.ArgumentParser(prog="fastnst", description="Fast neural style transfer.")
    parser.add_argument("--version", action="version", version=f"fastnst {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__package__}.commands.{name}").register(commands)
    for command in commands.choices.values():
        # `fastnst train -q` as well as `fastnst -q train`: SUPPRESS leaves the top-level value alone when the
        # command's own -q is not given.
        command.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help=QUIET_HELP)
    return parser


def describe(exc: FastNSTError) -> str:
    """The error's one line, with the flag that changes the outcome when the library names a setting."""
    if exc.setting is None:
        return str(exc)
    return f"{exc} ({exc.action} it with --{exc.setting.replace('_', '-')})"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        return args.handler(args)
    except FastNSTError as exc:
        print(f"fastnst: error: {describe(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("fastnst: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
