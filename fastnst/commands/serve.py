"""``fastnst serve``: run the HTTP server (API, web page, metrics) with uvicorn."""

from __future__ import annotations

import argparse

from ..errors import FastNSTError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("serve", help="serve models over HTTP (API, web page, Prometheus metrics)",
                                 description="Serve every model under --models over HTTP: POST /v1/stylize, "
                                             "a web page at /, OpenAPI docs at /docs, metrics at /metrics.")
    parser.add_argument("-c", "--config", help="TOML file of server settings (top-level keys named like the flags)")
    from ..server.settings import SCHEMA

    SCHEMA.add_flags(parser, "settings (override --config; defaults shown are the server's)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import torch

    try:
        import uvicorn

        from ..server import create_app, load_settings
    except ImportError as exc:  # a partial install (fastnst's other commands work without these)
        raise FastNSTError(f"fastnst serve needs FastAPI and uvicorn ({exc}); "
                           "pip install 'fastapi>=0.115' 'uvicorn>=0.30'") from None
    from ..server.registry import discover_models
    from ..server.settings import SCHEMA

    settings = load_settings(args.config, SCHEMA.overrides_from(args))
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
