"""``fastnst serve``: run the HTTP server (API, web page, metrics) with uvicorn."""

from __future__ import annotations

import argparse
from typing import Any, Literal, get_args, get_origin

from ..errors import FastNSTError


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per ServerSettings field, typed from its annotation; defaults stay in the dataclass."""
    from ..server.settings import FIELD_TYPES, setting_fields

    group = parser.add_argument_group("settings (override --config; defaults shown are the server's)")
    for item in setting_fields():
        annotation = FIELD_TYPES[item.name]
        shown = "(none)" if item.name == "api_key" else repr(item.default)
        kwargs: dict[str, Any] = {"dest": item.name, "default": None,
                                  "help": f"{item.metadata['help']} [default: {shown}]"}
        if annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif get_origin(annotation) is Literal:
            kwargs["choices"] = list(get_args(annotation))
        elif get_origin(annotation) is tuple:
            kwargs["nargs"] = "*"
        else:
            kwargs["type"] = annotation
        group.add_argument("--" + item.name.replace("_", "-"), **kwargs)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("serve", help="serve models over HTTP (API, web page, Prometheus metrics)",
                                 description="Serve every model under --models over HTTP: POST /v1/stylize, "
                                             "a web page at /, OpenAPI docs at /docs, metrics at /metrics.")
    parser.add_argument("-c", "--config", help="TOML file of server settings (top-level keys named like the flags)")
    add_settings_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import torch
    import uvicorn

    from ..server import create_app, load_settings
    from ..server.registry import discover_models

    reserved = ("command", "config", "quiet", "handler")
    overrides = {key: value for key, value in vars(args).items() if value is not None and key not in reserved}
    settings = load_settings(args.config, overrides)
    if settings.device == "cuda" and not torch.cuda.is_available():
        raise FastNSTError("--device cuda was asked for but no CUDA device is available")
    discover_models(settings.models)  # a wrong folder is a one-line error now, not a failed startup later
    config = uvicorn.Config(
        create_app(settings), host=settings.host, port=settings.port, log_level="warning" if args.quiet else "info",
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s + 0.999), server_header=False,
        proxy_headers=False,  # client addresses are not used for anything; never trust forwarded headers
    )
    uvicorn.Server(config).run()
    return 0
