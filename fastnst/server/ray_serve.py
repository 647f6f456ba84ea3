"""``fastnst serve --ray``: the same FastAPI app as ``fastnst serve``, run as Ray Serve replicas.

Each replica builds the app of :func:`fastnst.server.app.create_app` from the same settings, so routes, errors,
auth, metrics, the web page and the dynamic batcher are the ones of a single server; each replica loads the models
once, before Ray sends it traffic. Backpressure has two layers: a replica's own admission answers the requests it
cannot finish in time with the usual JSON 503 + Retry-After (Ray's ``max_ongoing_requests`` lets every request it
would admit, plus the probes, reach it), and Ray's ``max_queued_requests`` bounds what waits for a replica when all
are busy or restarting (503 + Retry-After from Ray's proxy, with Ray's text body). A replica whose process dies
is restarted by Ray; ``/readyz`` reports the replica counts.

:func:`application` is also the import path of the Serve config file that :func:`serve_config` writes for
``serve deploy`` and KubeRay's RayService.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ray import serve
from ray.serve.config import AutoscalingConfig, BackpressureConfig

from fastnst.server.app import NOT_READY_RETRY_S, create_app
from fastnst.server.settings import ServerSettings
from fastnst.utils.errors import ConfigError

log = logging.getLogger("fastnst.server")

APP_NAME = "fastnst"
DEPLOYMENT_NAME = "fastnst"
IMPORT_PATH = "fastnst.server.ray_serve:application"
PROBE_HEADROOM = 8
"""Requests a replica takes beyond ``queue_size``: probes and metrics, and stylize requests its admission refuses
with its own JSON 503 rather than Ray's."""


@dataclass(frozen=True)
class Replicas:
    """How many replicas, and what each reserves: a fixed ``count``, or ``autoscale`` = (min, max) following the
    requests in flight (target: one full batch per replica)."""

    count: int = 1
    autoscale: tuple[int, int] | None = None
    cpus: float = 1.0
    gpus: float = 0.0

    @property
    def most(self) -> int:
        """The largest number of replicas there may be."""
        return self.autoscale[1] if self.autoscale else self.count

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ConfigError(f"replicas must be at least 1, got {self.count}", setting="replicas")
        if self.autoscale is not None:
            low, high = self.autoscale
            if not 0 <= low <= high or high < 1:
                raise ConfigError(f"autoscale must be MIN,MAX with 0 <= MIN <= MAX and MAX >= 1, got {low},{high}",
                                  setting="autoscale")
        if self.cpus < 0 or self.gpus < 0:
            raise ConfigError("replica CPUs and GPUs must not be negative", setting="replica_cpus")


def parse_autoscale(text: str) -> tuple[int, int]:
    """"MIN,MAX" → (MIN, MAX)."""
    try:
        low, high = (int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"autoscale must be MIN,MAX (two integers), got {text!r}", setting="autoscale") from None
    return low, high


def replica_counts() -> dict[str, Any]:
    """This deployment's state as Ray Serve's controller sees it: status and replicas per state."""
    status = serve.status().applications.get(APP_NAME)
    deployment = status.deployments.get(DEPLOYMENT_NAME) if status else None
    if deployment is None:
        return {"status": "UNKNOWN", "replicas": {}}
    return {"status": str(getattr(deployment.status, "value", deployment.status)),
            "replicas": {str(getattr(state, "value", state)): count
                         for state, count in deployment.replica_states.items()}}


@serve.ingress()
class FastNSTReplica:
    """One replica: builds the app from the settings it was given (a dict, so it travels as plain data)."""

    def __init__(self, settings: Mapping[str, Any], cpus: float) -> None:
        # Ray starts sending requests once __init__ returns: load and warm the models first. Inference uses the
        # CPUs the replica reserved, not every core of a machine it shares with other replicas.
        threads = settings["threads"] or max(1, round(cpus))
        self.settings = ServerSettings(**{**settings, "background_load": False, "threads": threads})

    def __serve_build_asgi_app__(self) -> Any:
        return create_app(self.settings, cluster_state=replica_counts)


def deployment_options(settings: ServerSettings, replicas: Replicas) -> dict[str, Any]:
    """Ray Serve deployment options derived from the server settings (see the module docstring)."""
    options: dict[str, Any] = {
        "name": DEPLOYMENT_NAME,
        "max_ongoing_requests": settings.queue_size + PROBE_HEADROOM,
        # A burst passes through the proxy's queue on its way to the replicas: room for all they can take at once.
        "max_queued_requests": (settings.queue_size + PROBE_HEADROOM) * replicas.most,
        "backpressure_config": BackpressureConfig(status_code=503, retry_after_s=NOT_READY_RETRY_S),
        "graceful_shutdown_timeout_s": settings.shutdown_timeout_s,
        "ray_actor_options": {"num_cpus": replicas.cpus, "num_gpus": replicas.gpus},
        # A replica loads and warms every model before it answers; give slow machines time.
        "health_check_timeout_s": 60.0,
    }
    if replicas.autoscale is not None:
        low, high = replicas.autoscale
        options["autoscaling_config"] = AutoscalingConfig(
            min_replicas=low, max_replicas=high, initial_replicas=max(low, 1),
            target_ongoing_requests=max(1, settings.max_batch))
    else:
        options["num_replicas"] = replicas.count
    return options


def settings_dict(settings: ServerSettings) -> dict[str, Any]:
    """The settings as plain data (what replicas and Serve config files receive)."""
    values = dataclasses.asdict(settings)
    values["cors_origins"] = list(values["cors_origins"])
    return values


def build(settings: ServerSettings, replicas: Replicas) -> serve.Application:
    """The Ray Serve application: ``replicas`` replicas of the fastnst app."""
    deployment = serve.deployment(FastNSTReplica).options(**deployment_options(settings, replicas))
    return deployment.bind(settings_dict(settings), replicas.cpus)


def application(args: dict[str, Any]) -> serve.Application:
    """Serve's application builder (``import_path`` of a Serve config file): ``args`` holds the server settings
    and optionally ``replicas``, ``autoscale`` ([MIN, MAX]), ``replica_cpus`` and ``replica_gpus``."""
    values = dict(args)
    autoscale = values.pop("autoscale", None)
    replicas = Replicas(count=int(values.pop("replicas", 1)),
                        autoscale=tuple(autoscale) if autoscale else None,  # type: ignore[arg-type]
                        cpus=float(values.pop("replica_cpus", 1.0)), gpus=float(values.pop("replica_gpus", 0.0)))
    if isinstance(values.get("cors_origins"), list):
        values["cors_origins"] = tuple(values["cors_origins"])
    return build(ServerSettings(**values), replicas)


def serve_config(settings: ServerSettings, replicas: Replicas) -> dict[str, Any]:
    """A Ray Serve config file (``serve deploy FILE``, or a KubeRay RayService's ``serveConfigV2``) deploying this
    application; the API key is left out (set $FASTNST_API_KEY on the cluster instead)."""
    args = {key: value for key, value in settings_dict(settings).items() if key not in ("host", "port", "api_key")}
    args.update(replicas=replicas.count, replica_cpus=replicas.cpus, replica_gpus=replicas.gpus)
    if replicas.autoscale is not None:
        args["autoscale"] = list(replicas.autoscale)
    return {
        "http_options": {"host": settings.host, "port": settings.port},
        "applications": [{"name": APP_NAME, "route_prefix": "/", "import_path": IMPORT_PATH, "args": args}],
    }


def deploy(settings: ServerSettings, replicas: Replicas, *, blocking: bool) -> None:
    """Start Serve's HTTP proxy on the settings' host and port and deploy the app (waits until every replica has
    loaded its models). ``blocking`` keeps this process serving until Ctrl-C or SIGTERM, then shuts Serve down."""
    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(build(settings, replicas), name=APP_NAME, route_prefix="/", blocking=False)
    if blocking:
        _serve_until_stopped()


def _serve_until_stopped() -> None:
    import signal
    import threading

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    finally:
        serve.shutdown()


def stop() -> bool:
    """Delete the fastnst application from the cluster this process is connected to; False if it was not there."""
    if APP_NAME not in serve.status().applications:
        return False
    serve.delete(APP_NAME)
    return True
