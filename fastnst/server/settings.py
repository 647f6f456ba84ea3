"""Server settings: one frozen dataclass, read from an optional TOML file and overridden by ``fastnst serve`` flags.

Each default and help text lives here only; the CLI builds its flags from these fields (as the training config
does), so a value documented in ``--help`` is the value the server uses.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fastnst.utils.defaults import DEFAULT_MARGIN
from fastnst.utils.errors import ConfigError
from fastnst.utils.typed_config import Schema, option, read_toml, resolve_path

Device = Literal["auto", "cpu", "cuda"]
API_KEY_ENV = "FASTNST_API_KEY"
API_KEY_HEADER = "X-API-Key"


@dataclass(frozen=True)
class ServerSettings:
    """Everything ``fastnst serve`` can be told; the app never reads argv or the environment itself."""

    # --- what to serve, where
    models: str = option("models", "folder of model folders (each holds model.safetensors + model.json)")
    host: str = option("127.0.0.1", "address to listen on (0.0.0.0 exposes the server to the network)")
    port: int = option(8000, "TCP port")
    device: Device = option("auto", "cpu, cuda or auto")
    threads: int = option(0, "threads each inference uses, PyTorch and ONNX Runtime (0 = every core; with --ray "
                             "the replica's CPUs)")
    # --- dynamic batching (TorchServe / Triton style)
    max_batch: int = option(8, "largest inference batch; 1 turns dynamic batching off")
    max_wait_ms: float = option(5.0, "how long the first request of a batch waits for companions, in ms")
    # --- backpressure and limits
    queue_size: int = option(32, "stylize requests admitted at once (decoding, queued or running); more get 503")
    request_timeout_s: float = option(60.0, "an admitted stylize request not answered within this many seconds "
                                      "gets 504; requests the server cannot finish in time get 503 at once")
    max_pending_pixels: int = option(24_000_000, "pixels (after max_side, with margin) of all stylize requests "
                                     "admitted at once; more get 503")
    max_batch_pixels: int = option(2_000_000, "pixels one inference call may hold: bounds the network's working "
                                   "memory (see docs/reliability.md); batches are cut to fit, larger images get 413")
    max_body_bytes: int = option(20 * 1024 * 1024, "largest request body in bytes (413 above)")
    body_idle_timeout_s: float = option(10.0, "a request body that sends no byte for this many seconds gets 408")
    body_timeout_s: float = option(60.0, "a request body not complete within this many seconds gets 408")
    header_timeout_s: float = option(10.0, "a connection whose request head is not complete within this many "
                                     "seconds gets 408 and is closed")
    max_pixels: int = option(40_000_000, "largest decoded image, width × height (413 above)")
    max_side: int = option(1024, "images are downscaled so their longer side is at most this (per-request default)")
    max_side_limit: int = option(1344, "largest max_side a request may ask for (the default fits max_batch_pixels "
                                 "as a square with the margin; larger images get 413)")
    margin: int = option(DEFAULT_MARGIN, "pixels mirrored onto each side before the network and cropped after "
                         "(keeps the networks' darkened edge out of results; 0 = off)")
    # --- access
    api_key: str = option("", f"require this key in the {API_KEY_HEADER} header on /v1 routes (empty: no key; "
                              f"${API_KEY_ENV} is used when unset)", secret=True)
    cors_origins: tuple[str, ...] = option((), "origins allowed to call the API from a browser (CORS); '*' for any")
    # --- life cycle
    warmup: bool = option(True, "run every model once before reporting ready (first requests are not slow)")
    background_load: bool = option(True, "answer /healthz while models load (/readyz says when they are ready)")
    shutdown_timeout_s: float = option(30.0, "on SIGTERM, how long to wait for requests in flight to finish")

    def __post_init__(self) -> None:
        positive = ("port", "max_batch", "queue_size", "max_body_bytes", "max_pixels", "max_side", "max_side_limit",
                    "max_pending_pixels", "max_batch_pixels")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"server setting '{name}' must be at least 1, got {getattr(self, name)}")
        for name in ("max_wait_ms", "threads", "margin"):
            if getattr(self, name) < 0:
                raise ConfigError(f"server setting '{name}' must not be negative, got {getattr(self, name)}")
        for name in ("request_timeout_s", "shutdown_timeout_s", "body_idle_timeout_s", "body_timeout_s",
                     "header_timeout_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"server setting '{name}' must be positive, got {getattr(self, name)}")
        if self.port > 65535:
            raise ConfigError(f"server setting 'port' must be at most 65535, got {self.port}")
        if self.max_batch_pixels > self.max_pending_pixels:
            raise ConfigError(f"server setting 'max_batch_pixels' ({self.max_batch_pixels}) exceeds "
                              f"'max_pending_pixels' ({self.max_pending_pixels})")
        if self.max_side > self.max_side_limit:
            raise ConfigError(f"server setting 'max_side' ({self.max_side}) exceeds 'max_side_limit' "
                              f"({self.max_side_limit})")

    def replace(self, **changes: Any) -> ServerSettings:
        return dataclasses.replace(self, **changes)


SCHEMA = Schema(ServerSettings, noun="server setting")
FIELD_TYPES: dict[str, Any] = SCHEMA.types


def coerce(key: str, value: Any, source: str) -> Any:
    """Check one setting against its field's type; ints are accepted where floats are expected."""
    return SCHEMA.coerce(key, value, source)


def load_settings(path: str | os.PathLike[str] | None = None, overrides: dict[str, Any] | None = None,
                  environ: typing.Mapping[str, str] | None = None) -> ServerSettings:
    """Settings from an optional TOML file of top-level keys, then ``overrides`` (flags), then the API key's env.

    A relative ``models`` path in the file is resolved against the file's folder, like training configs.
    The API key may come from ``$FASTNST_API_KEY`` so it need not sit in a file or in ``ps`` output.
    """
    values: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        for key, value in read_toml(file, "server config").items():
            values[key] = coerce(key, value, str(file))
        if "models" in values:
            values["models"] = resolve_path(values["models"], file.resolve().parent)
    for key, value in (overrides or {}).items():
        values[key] = coerce(key, value, "command line")
    env = os.environ if environ is None else environ
    if not values.get("api_key") and env.get(API_KEY_ENV):
        values["api_key"] = env[API_KEY_ENV]
    return ServerSettings(**values)

