"""``fastnst serve``: run the HTTP server (API, web page, metrics) with uvicorn, or as Ray Serve replicas."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fastnst.utils.errors import FastNSTError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("serve", help="serve models over HTTP (API, web page, Prometheus metrics)",
                                 description="Serve every model under --models over HTTP: POST /v1/stylize, "
                                             "a web page at /, OpenAPI docs at /docs, metrics at /metrics.")
    parser.add_argument("-c", "--config", help="TOML file of server settings (top-level keys named like the flags)")
    from fastnst.server.settings import SCHEMA

    SCHEMA.add_flags(parser, "settings (override --config; defaults shown are the server's)")
    _register_ray(parser)
    parser.set_defaults(handler=run)


def _register_ray(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Ray Serve (pip install \"fastnst[ray]\"; see docs/scaling.md)")
    group.add_argument("--ray", action="store_true",
                       help="run the same app as Ray Serve replicas: without --address on a local Ray instance "
                            "until Ctrl-C; with --address deployed onto that cluster, then this command returns")
    group.add_argument("--address", metavar="ADDR",
                       help="Ray cluster to deploy onto: auto, HOST:PORT or ray://HOST:PORT [default: start a local "
                            "instance]")
    group.add_argument("--replicas", type=int, default=1, metavar="N", help="replicas of the app [default: 1]")
    group.add_argument("--autoscale", metavar="MIN,MAX",
                       help="let Ray scale between MIN and MAX replicas with the requests in flight (instead of "
                            "--replicas)")
    group.add_argument("--replica-cpus", type=float, default=1.0, metavar="C",
                       help="CPUs each replica reserves (also its PyTorch threads) [default: 1]")
    group.add_argument("--replica-gpus", type=float, default=0.0, metavar="G",
                       help="GPUs each replica reserves (fractions share one) [default: 0]")
    group.add_argument("--stop", action="store_true",
                       help="with --ray --address: remove the fastnst application from that cluster and exit")
    group.add_argument("--write-config", metavar="FILE",
                       help="with --ray: write a Ray Serve config file (for `serve deploy FILE` or a KubeRay "
                            "RayService) for these settings and exit")


def run(args: argparse.Namespace) -> int:
    ray_only = [flag for flag, given in (("--address", args.address), ("--stop", args.stop),
                                         ("--write-config", args.write_config)) if given]
    if ray_only and not args.ray:
        raise FastNSTError(f"{', '.join(ray_only)} needs --ray")
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
    if args.ray:
        return _run_on_ray(args, settings)
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


def _run_on_ray(args: argparse.Namespace, settings: Any) -> int:
    from fastnst.utils.ray_cluster import connect, require_ray

    require_ray()
    from fastnst.server import ray_serve
    from fastnst.server.registry import discover_models

    autoscale = ray_serve.parse_autoscale(args.autoscale) if args.autoscale else None
    replicas = ray_serve.Replicas(count=args.replicas, autoscale=autoscale, cpus=args.replica_cpus,
                                  gpus=args.replica_gpus)
    if args.write_config:
        _write_config(Path(args.write_config), ray_serve.serve_config(settings, replicas))
        if not args.quiet:
            print(f"wrote {args.write_config} (deploy it with: serve deploy {args.write_config})")
        return 0
    if args.stop:
        if not args.address:
            raise FastNSTError("--stop needs --address (the cluster the app was deployed onto)")
        connect(args.address)
        removed = ray_serve.stop()
        if not args.quiet:
            print("removed the fastnst application" if removed else "no fastnst application is deployed there")
        return 0
    if not args.address:
        discover_models(settings.models)  # a local instance sees this machine's folders: check them now
    connect(args.address)
    ray_serve.deploy(settings, replicas, blocking=args.address is None)
    if args.address and not args.quiet:
        print(f"deployed fastnst on the Ray cluster at {args.address} (HTTP port {settings.port}); "
              f"remove it with: fastnst serve --ray --address {args.address} --stop")
    return 0


def _write_config(target: Path, config: dict[str, Any]) -> None:
    """YAML, as `serve deploy` and KubeRay's serveConfigV2 read it (PyYAML comes with Ray)."""
    import yaml

    from fastnst.utils.atomic import atomic_write_text

    atomic_write_text(target, yaml.safe_dump(config, sort_keys=False))
