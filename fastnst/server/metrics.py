"""Prometheus metrics for the server, on a registry owned by the app (several apps in one process never clash).

Routes are labelled by their template (``/v1/models/{name}/thumbnail``), never by the raw path, so a client
probing random URLs cannot grow the number of time series without bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED_ROUTE = "<unmatched>"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)


def _batch_buckets(max_batch: int) -> tuple[float, ...]:
    """1, 2, 3, 4, 6, 8, 12, 16, ... up to max_batch: one bucket per size where it matters (small batches)."""
    buckets, size = [], 1
    while size < max_batch:
        buckets.append(size)
        size = size + 1 if size < 4 else size + size // 2
    buckets.append(max_batch)
    return tuple(float(b) for b in sorted(set(buckets)))


class ServerMetrics:
    """Every metric the server exports; ``render()`` gives the Prometheus text format."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, max_batch: int) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("fastnst_http_requests", "HTTP requests by route, method and status",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("fastnst_http_request_duration_seconds", "Time to answer HTTP requests",
                                 ["route", "method"], buckets=_LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("fastnst_batch_size", "Images per inference batch",
                                    buckets=_batch_buckets(max_batch), registry=r)
        self.batch_seconds = Histogram("fastnst_batch_inference_seconds", "Time one inference batch takes",
                                       buckets=_LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("fastnst_queue_depth", "Requests waiting for an inference batch", registry=r)
        self.in_flight = Gauge("fastnst_stylize_in_flight", "Stylize requests admitted and not yet answered",
                               registry=r)
        self.rejected = Counter("fastnst_rejected_requests", "Stylize requests refused or abandoned before their "
                                "answer", ["reason"], registry=r)
        self.dropped = Counter("fastnst_dropped_jobs", "Queued inference jobs dropped unrun (client gone, deadline "
                               "passed)", ["reason"], registry=r)
        self.backlog = Gauge("fastnst_admitted_work_seconds", "Estimated inference seconds of the stylize requests "
                             "admitted and not yet answered", registry=r)
        self.model_load = Gauge("fastnst_model_load_seconds", "Seconds to load and warm up each model",
                                ["model"], registry=r)
        self.models_ready = Gauge("fastnst_models_ready", "Models loaded and warm", registry=r)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def track_queue(self, depth: Callable[[], float]) -> None:
        """Read the queue depth at scrape time instead of updating a gauge on every change."""
        self.queue_depth.set_function(depth)

    def track_backlog(self, seconds: Callable[[], float]) -> None:
        self.backlog.set_function(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts every HTTP response and its latency by route template and status (pure ASGI, streaming-safe)."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees if the app raises before answering

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or UNMATCHED_ROUTE
            method = scope.get("method", "GET")
            method = method if method in _METHODS else "OTHER"  # clients may send any token here
            self.metrics.requests.labels(label, method, str(status)).inc()
            self.metrics.latency.labels(label, method).observe(time.perf_counter() - started)
