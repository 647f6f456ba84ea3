#!/usr/bin/env python3
"""Write the configuration reference in docs/configuration.md from the config dataclasses themselves.

Every key's default and help text live in one place, the field's ``option(default, help)``; this script renders
them (with the flag the CLI builds from the field) as Markdown tables between marker comments, so the reference
cannot drift from the code. ``tests/test_docs.py`` fails when the file is out of date. Usage:

    python scripts/make_config_docs.py            # rewrite the tables in docs/configuration.md
    python scripts/make_config_docs.py --check    # exit 1 when docs/configuration.md is out of date
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fastnst.cli import build_parser
from fastnst.optimizer.config import OptimizeOptions
from fastnst.server.settings import ServerSettings
from fastnst.training.config import TrainConfig

DOC = REPO / "docs" / "configuration.md"

# (marker name, dataclass, the CLI command whose flags set it)
SECTIONS: tuple[tuple[str, type, str], ...] = (
    ("training", TrainConfig, "train"),
    ("optimizer", OptimizeOptions, "optimize"),
    ("server", ServerSettings, "serve"),
)


def begin_marker(name: str) -> str:
    return f"<!-- begin generated {name} table: python scripts/make_config_docs.py; do not edit by hand -->"


def end_marker(name: str) -> str:
    return f"<!-- end generated {name} table -->"


def toml_literal(value: Any) -> str:
    """A default as it would be written in a TOML file (floats in their shortest exact form)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        short = f"{value:g}"
        if float(short) != value:
            return repr(value)
        return short if any(mark in short for mark in ".ein") else short + ".0"  # keep it a float in TOML
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple):
        return "[" + ", ".join(toml_literal(item) for item in value) + "]"
    return str(value)


def shown_default(field: dataclasses.Field) -> str:
    if field.metadata.get("secret") and field.default not in ("", None):
        return "(hidden)"
    if field.default is None:  # the help text says what is used instead
        return "unset"
    return f"`{toml_literal(field.default)}`"


def command_flags(command: str) -> dict[str, str]:
    """Field name → the long flag ``fastnst COMMAND`` accepts for it (flags may be renamed by the command)."""
    parser = build_parser()
    subparsers = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    flags = {}
    for action in subparsers.choices[command]._actions:
        long_flags = [flag for flag in action.option_strings if flag.startswith("--")]
        if long_flags:
            flags[action.dest] = long_flags[0]
    return flags


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell (``<output_dir>`` would otherwise read as an HTML tag)."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def table(cls: type, command: str) -> str:
    flags = command_flags(command)
    lines = ["| key | flag | default | meaning |", "|---|---|---|---|"]
    for field in dataclasses.fields(cls):
        flag = f"`{flags[field.name]}`" if field.name in flags else "—"
        lines.append(f"| `{field.name}` | {flag} | {cell(shown_default(field))} | "
                     f"{cell(field.metadata.get('help', ''))} |")
    return "\n".join(lines)


def render(text: str) -> str:
    """``text`` with every generated table replaced by the current one; a missing marker raises ValueError."""
    for name, cls, command in SECTIONS:
        begin, end = begin_marker(name), end_marker(name)
        start, stop = text.find(begin), text.find(end)
        if start < 0 or stop < start:
            raise ValueError(f"{DOC.relative_to(REPO)} lacks the markers of the {name} table:\n{begin}\n{end}")
        text = text[:start] + begin + "\n" + table(cls, command) + "\n" + text[stop:]
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is out of date; write nothing")
    args = parser.parse_args()
    current = DOC.read_text(encoding="utf-8")
    try:
        wanted = render(current)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if wanted == current:
        return 0
    if args.check:
        diff = difflib.unified_diff(current.splitlines(), wanted.splitlines(), "docs/configuration.md", "generated",
                                    lineterm="")
        print("\n".join(diff), file=sys.stderr)
        print("docs/configuration.md is out of date: run python scripts/make_config_docs.py", file=sys.stderr)
        return 1
    DOC.write_text(wanted, encoding="utf-8")
    print(f"wrote {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
