"""``fastnst serve``: run the HTTP server (API, web page, metrics) with uvicorn."""

from __future__ import annotations

import argparse

from fastnst.utils.errors import FastNSTError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("serve", help="serve models over HTTP (API, web page, Prometheus metrics)",
                                 description="Serve every model under --models over HTTP: POST /v1/stylize, "
                                             "a web page at /, OpenAPI docs at /docs, metrics at /metrics.")
    parser.add_argument("-c", "--config", help="TOML file of server settings (top-level keys named like the flags)")
    from fastnst.server.settings import SCHEMA

    SCHEMA.add_flags(parser, "settings (override --config; defaults shown are the server's)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from fastnst.server import create_app, load_settings
    except ImportError as exc:  # a partial install (fastnst's other commands work without these)
        raise FastNSTError(f"fastnst serve needs the serve extra ({exc}); pip install \"fastnst[serve]\"") from None
    from fastnst.server.protocol import h11_protocol
    from fastnst.server.registry import discover_models
    from fastnst.server.settings import SCHEMA
    from fastnst.utils.device import resolve_device

    settings = load_settings(args.config, SCHEMA.overrides_from(args))
    resolve_device(settings.device)  # cuda without a GPU is a one-line error now, not a failed startup later
    discover_models(settings.models)  # a wrong folder is a one-line error now, not a failed startup later
    config = uvicorn.Config(
        create_app(settings), host=settings.host, port=settings.port, log_level="warning" if args.quiet else "info",
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s + 0.999), server_header=False,
        proxy_headers=False,  # client addresses are not used for anything; never trust forwarded headers
        http=h11_protocol(settings.header_timeout_s),  # unfinished request heads are closed, not kept forever
    )
    uvicorn.Server(config).run()
    return 0
