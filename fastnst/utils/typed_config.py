"""Frozen dataclasses as configuration: typed values from TOML files and command-line flags.

Training configs, server settings and the classic optimizer's options all follow one pattern (nanoGPT's config
dataclass, crowsonkb's CLI built from the API's defaults): each field carries its default and help text, TOML
keys and flags are checked against the field's type with the same rules, and flags are generated from the
fields, so a default lives in exactly one place.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import tomllib

from fastnst.utils.errors import ConfigError


def option(default: Any, help: str, *, path: bool = False, secret: bool = False) -> Any:
    """A dataclass field carrying its help text, whether it is a filesystem path, and whether to hide it."""
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples for sequence defaults so configs stay immutable")
    return dataclasses.field(default=default, metadata={"help": help, "path": path, "secret": secret})


def type_name(annotation: Any) -> str:
    """How a type reads in an error message."""
    origin = get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(annotation))
    if origin is tuple:
        return f"list of {type_name(get_args(annotation)[0])}"
    return getattr(annotation, "__name__", str(annotation))


def convert(value: Any, annotation: Any) -> tuple[bool, Any]:
    """(whether ``value`` fits ``annotation``, the value in the dataclass's representation)."""
    origin = get_origin(annotation)
    if origin is Literal:
        return value in get_args(annotation), value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False, None
        items = [convert(item, get_args(annotation)[0]) for item in value]
        return all(ok for ok, _ in items), tuple(v for _, v in items)
    if origin in (types.UnionType, typing.Union):
        for option_type in get_args(annotation):
            ok, converted = convert(value, option_type)
            if ok:
                return True, converted
        return False, None
    if annotation is bool:
        return isinstance(value, bool), value
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if annotation is float:  # ints are accepted where floats are expected (TOML `1e9` vs `1000`)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else None
    if annotation is str:
        return isinstance(value, str), value
    return False, None


class Schema:
    """The fields of one config dataclass, with checking and flag generation."""

    def __init__(self, cls: type, noun: str = "key") -> None:
        self.cls = cls
        self.noun = noun  # how errors name an entry: "key", "server setting", ...
        self.types: dict[str, Any] = typing.get_type_hints(cls)
        self.fields = dataclasses.fields(cls)
        self.path_fields = frozenset(f.name for f in self.fields if f.metadata.get("path"))

    def coerce(self, key: str, value: Any, source: str) -> Any:
        """Check one entry against its field's type; unknown names list the valid ones."""
        if key not in self.types:
            raise ConfigError(f"{source}: unknown {self.noun} '{key}'; valid: {', '.join(sorted(self.types))}")
        ok, converted = convert(value, self.types[key])
        if not ok:
            raise ConfigError(f"{source}: {self.noun} '{key}' must be {type_name(self.types[key])}, got "
                              f"{type(value).__name__} {value!r}")
        return converted

    def add_flags(self, parser: argparse.ArgumentParser, title: str,
                  flag_names: Mapping[str, str] | None = None) -> None:
        """One ``--flag`` per field, typed from its annotation, default None so only given flags override.

        List fields take space- or comma-separated values (``--sizes 256 512`` or ``--sizes 256,512``); lists
        of paths split at spaces only.
        ``flag_names`` renames a field's flag where the field name reads badly on the command line.
        """
        group = parser.add_argument_group(title)
        for item in self.fields:
            annotation = self.types[item.name]
            default = item.default
            if item.metadata.get("secret"):
                shown = "(hidden)"
            else:
                shown = ",".join(map(str, default)) if isinstance(default, tuple) else repr(default)
            help_text = item.metadata.get("help", "")
            if default not in (None, (), ""):  # an empty default is explained by the help text
                help_text += f" [default: {shown}]"
            kwargs: dict[str, Any] = {"dest": item.name, "default": None, "help": help_text}
            origin = get_origin(annotation)
            if origin in (types.UnionType, typing.Union):  # `float | None`: the flag gives the value
                annotation = next(arg for arg in get_args(annotation) if arg is not type(None))
                origin = get_origin(annotation)
            if annotation is bool:
                kwargs["action"] = argparse.BooleanOptionalAction
            elif origin is Literal:
                kwargs["choices"] = list(get_args(annotation))
            elif origin is tuple:
                kwargs["nargs"] = "*"
                kwargs["type"] = _comma_list(get_args(annotation)[0], split=item.name not in self.path_fields)
                kwargs["metavar"] = "VALUE"
            else:
                kwargs["type"] = annotation
            flag = (flag_names or {}).get(item.name, "--" + item.name.replace("_", "-"))
            group.add_argument(flag, **kwargs)

    def overrides_from(self, args: argparse.Namespace) -> dict[str, Any]:
        """The flags a user actually gave, as field values."""
        given = {}
        for item in self.fields:
            value = getattr(args, item.name, None)
            if value is not None:
                # A list flag arrives as one tuple per space-separated word (each split at commas).
                given[item.name] = tuple(v for part in value for v in part) if isinstance(value, list) else value
        return given


def _comma_list(kind: type, split: bool = True) -> Callable[[str], tuple[Any, ...]]:
    """argparse type for one word of a list flag: ``256,512`` → (256, 512); argparse names the flag on a bad
    value."""

    def parse(text: str) -> tuple[Any, ...]:
        if not split:  # paths: a comma may belong to a file name
            return (text,)
        try:
            return tuple(kind(item.strip()) for item in text.split(",") if item.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__} values, got {text!r}") from None

    parse.__name__ = f"{kind.__name__} list"
    return parse


def read_toml(path: str | os.PathLike[str], what: str = "config file") -> dict[str, Any]:
    """A TOML file's top-level table, with every failure as a one-line ConfigError."""
    file = Path(path)
    try:
        with open(file, "rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{what} {file} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {file}: {exc.strerror}") from None
    for key, value in raw.items():
        if isinstance(value, dict):
            raise ConfigError(f"{file}: tables are not supported ('[{key}]'); use top-level keys")
    return raw


def resolve_path(value: str, base: Path) -> str:
    """A path from a file, made absolute against that file's folder; empty and templated values stay as they are."""
    if not value or "{" in value:
        return value
    expanded = Path(os.path.expanduser(value))
    return str(expanded if expanded.is_absolute() else (base / expanded).resolve())
