"""Server settings: one frozen dataclass, read from an optional TOML file and overridden by ``fastnst serve`` flags.

Each default and help text lives here only; the CLI builds its flags from these fields (as the training config
does), so a value documented in ``--help`` is the value the server uses.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import tomllib

from ..errors import ConfigError

Device = Literal["auto", "cpu", "cuda"]
API_KEY_ENV = "FASTNST_API_KEY"
API_KEY_HEADER = "X-API-Key"


def _f(default: Any, help: str) -> Any:
    """A dataclass field carrying its help text."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class ServerSettings:
    """Everything ``fastnst serve`` can be told; the app never reads argv or the environment itself."""

    # --- what to serve, where
    models: str = _f("models", "folder of model folders (each holds model.safetensors + model.json)")
    host: str = _f("127.0.0.1", "address to listen on (0.0.0.0 exposes the server to the network)")
    port: int = _f(8000, "TCP port")
    device: Device = _f("auto", "cpu, cuda or auto")
    threads: int = _f(0, "PyTorch intra-op threads for inference (0 = PyTorch's default)")
    # --- dynamic batching (TorchServe / Triton style)
    max_batch: int = _f(8, "largest inference batch; 1 turns dynamic batching off")
    max_wait_ms: float = _f(5.0, "how long the first request of a batch waits for companions, in ms")
    # --- backpressure and limits
    queue_size: int = _f(32, "stylize requests admitted at once (decoding, queued or running); more get 503")
    request_timeout_s: float = _f(60.0, "a stylize request not answered within this many seconds gets 504")
    max_body_bytes: int = _f(20 * 1024 * 1024, "largest request body in bytes (413 above)")
    max_pixels: int = _f(40_000_000, "largest decoded image, width × height (413 above)")
    max_side: int = _f(1024, "images are downscaled so their longer side is at most this (per-request default)")
    max_side_limit: int = _f(2048, "largest max_side a request may ask for")
    # --- access
    api_key: str = _f("", f"require this key in the {API_KEY_HEADER} header on /v1 routes (empty: no key; "
                          f"${API_KEY_ENV} is used when unset)")
    cors_origins: tuple[str, ...] = _f((), "origins allowed to call the API from a browser (CORS); '*' for any")
    # --- life cycle
    warmup: bool = _f(True, "run every model once before reporting ready (first requests are not slow)")
    background_load: bool = _f(True, "answer /healthz while models load (/readyz says when they are ready)")
    shutdown_timeout_s: float = _f(30.0, "on SIGTERM, how long to wait for requests in flight to finish")

    def __post_init__(self) -> None:
        positive = ("port", "max_batch", "queue_size", "max_body_bytes", "max_pixels", "max_side", "max_side_limit")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"server setting '{name}' must be at least 1, got {getattr(self, name)}")
        for name in ("max_wait_ms", "threads"):
            if getattr(self, name) < 0:
                raise ConfigError(f"server setting '{name}' must not be negative, got {getattr(self, name)}")
        for name in ("request_timeout_s", "shutdown_timeout_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"server setting '{name}' must be positive, got {getattr(self, name)}")
        if self.port > 65535:
            raise ConfigError(f"server setting 'port' must be at most 65535, got {self.port}")
        if self.max_side > self.max_side_limit:
            raise ConfigError(f"server setting 'max_side' ({self.max_side}) exceeds 'max_side_limit' "
                              f"({self.max_side_limit})")

    def replace(self, **changes: Any) -> ServerSettings:
        return dataclasses.replace(self, **changes)


FIELD_TYPES: dict[str, Any] = typing.get_type_hints(ServerSettings)


def coerce(key: str, value: Any, source: str) -> Any:
    """Check one setting against its field's type; ints are accepted where floats are expected."""
    if key not in FIELD_TYPES:
        raise ConfigError(f"{source}: unknown server setting '{key}'; valid: {', '.join(sorted(FIELD_TYPES))}")
    annotation = FIELD_TYPES[key]
    origin = get_origin(annotation)
    ok = False
    if origin is Literal:
        ok = value in get_args(annotation)
    elif origin is tuple:
        ok = isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value)
        value = tuple(value) if ok else value
    elif annotation is bool:
        ok = isinstance(value, bool)
    elif annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif annotation is str:
        ok = isinstance(value, str)
    if not ok:
        expected = ("one of " + ", ".join(map(repr, get_args(annotation))) if origin is Literal
                    else "a list of strings" if origin is tuple else annotation.__name__)
        raise ConfigError(f"{source}: server setting '{key}' must be {expected}, got {value!r}")
    return value


def load_settings(path: str | os.PathLike[str] | None = None, overrides: dict[str, Any] | None = None,
                  environ: typing.Mapping[str, str] | None = None) -> ServerSettings:
    """Settings from an optional TOML file of top-level keys, then ``overrides`` (flags), then the API key's env.

    A relative ``models`` path in the file is resolved against the file's folder, like training configs.
    The API key may come from ``$FASTNST_API_KEY`` so it need not sit in a file or in ``ps`` output.
    """
    values: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        try:
            with open(file, "rb") as handle:
                raw = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"server config {file} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML ({exc})") from None
        except OSError as exc:
            raise ConfigError(f"cannot read server config {file}: {exc.strerror}") from None
        for key, value in raw.items():
            values[key] = coerce(key, value, str(file))
        if "models" in values and not Path(values["models"]).expanduser().is_absolute():
            values["models"] = str((file.resolve().parent / values["models"]).resolve())
    for key, value in (overrides or {}).items():
        values[key] = coerce(key, value, "command line")
    env = os.environ if environ is None else environ
    if not values.get("api_key") and env.get(API_KEY_ENV):
        values["api_key"] = env[API_KEY_ENV]
    return ServerSettings(**values)


def setting_fields() -> list[dataclasses.Field[Any]]:
    """The fields in declaration order, for building CLI flags."""
    return list(fields(ServerSettings))
