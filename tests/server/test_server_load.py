"""Backpressure, timeouts, health under load and graceful shutdown, against a real server on 127.0.0.1.

The backend is a tiny model behind a deliberate delay, so "the server is busy" is a controlled, fast state rather
than a CPU-bound one. Every flood is bounded in count and every client call has a timeout.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
import torch

httpx = pytest.importorskip("httpx")
from server_photos import photo

from fastnst.server import ServerSettings, create_app
from fastnst.server.backends import load_backend
from fastnst.server.testing import BackgroundServer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
CLIENT_TIMEOUT = httpx.Timeout(20.0)
WARMUP_SIZE = (128, 128)  # the registry warms models up on its 128² thumbnail photo


class SlowBackend:
    """Wraps the real tiny backend; each batch sleeps ``delay`` s (an arbitrarily slow accelerator)."""

    def __init__(self, inner, delay: float, sizes: list[int], fast_warmup: bool = False) -> None:
        self.inner, self.delay, self.sizes = inner, delay, sizes
        self.name, self.device, self.precision = inner.name, inner.device, inner.precision
        self.fast_warmup = fast_warmup  # a fast warm-up hides the delay from the server's admission estimate

    def stylize(self, batch: torch.Tensor) -> torch.Tensor:
        self.sizes.append(batch.shape[0])
        if not (self.fast_warmup and tuple(batch.shape[-2:]) == WARMUP_SIZE):
            time.sleep(self.delay)
        return self.inner.stylize(batch)


def slow_factory(delay: float, sizes: list[int], load_delay: float = 0.0, fast_warmup: bool = False):
    def factory(weights: Path, device: str):
        time.sleep(load_delay)
        backend, info = load_backend(weights, device)
        return SlowBackend(backend, delay, sizes, fast_warmup), info
    return factory


def in_flight(url: str) -> float:
    """The server's own count of admitted, unanswered stylize requests (from /metrics)."""
    for line in httpx.get(f"{url}/metrics", timeout=CLIENT_TIMEOUT).text.splitlines():
        if line.startswith("fastnst_stylize_in_flight "):
            return float(line.split()[1])
    raise AssertionError("fastnst_stylize_in_flight missing from /metrics")


async def post_all(url: str, count: int, body: bytes, **params: str) -> list[tuple[int, float, httpx.Response]]:
    """Fire ``count`` stylize requests at once; (status, seconds, response) for each."""
    limits = httpx.Limits(max_connections=count + 4)
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT, limits=limits) as client:
        async def one() -> tuple[int, float, httpx.Response]:
            started = time.perf_counter()
            response = await client.post(f"{url}/v1/stylize", params={"model": "tiny", **params}, content=body)
            return response.status_code, time.perf_counter() - started, response
        return await asyncio.gather(*(one() for _ in range(count)))


def test_flood_gets_fast_503s_and_nothing_hangs(models_dir: Path) -> None:
    sizes: list[int] = []
    settings = ServerSettings(models=str(models_dir), background_load=False, warmup=False, queue_size=6,
                              max_batch=2, max_wait_ms=5)
    app = create_app(settings, backend_factory=slow_factory(0.25, sizes))
    with BackgroundServer(app) as server:
        started = time.perf_counter()
        results = asyncio.run(post_all(server.url, 40, photo()))
        total = time.perf_counter() - started
        metrics = httpx.get(f"{server.url}/metrics", timeout=CLIENT_TIMEOUT).text
    statuses = [status for status, _, _ in results]
    assert set(statuses) <= {200, 503}, statuses
    assert 1 <= statuses.count(200) <= 12 and statuses.count(503) >= 28
    for status, seconds, response in results:
        if status == 503:
            assert seconds < 2.0  # refused at once, not after queueing
            assert int(response.headers["retry-after"]) >= 1
            assert response.json()["error"] == "overloaded"
    assert total < 10  # no request hung: 6 admitted × 0.25 s / batch of 2 plus overheads
    assert max(sizes) <= 2 and max(sizes[1:], default=2) == 2  # the admitted ones were batched
    assert 'fastnst_rejected_requests_total{reason="queue_full"}' in metrics


def test_health_answers_while_inference_is_busy(models_dir: Path) -> None:
    settings = ServerSettings(models=str(models_dir), background_load=False, warmup=False, queue_size=8,
                              max_batch=1)
    app = create_app(settings, backend_factory=slow_factory(0.4, []))

    async def main(url: str) -> list[float]:
        flood = asyncio.ensure_future(post_all(url, 6, photo()))
        await asyncio.sleep(0.3)  # inference is running; five requests wait
        latencies = []
        async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client:
            for _ in range(5):
                started = time.perf_counter()
                assert (await client.get(f"{url}/healthz")).status_code == 200
                latencies.append(time.perf_counter() - started)
                await asyncio.sleep(0.05)
        results = await flood
        assert all(status == 200 for status, _, _ in results)
        return latencies

    with BackgroundServer(app) as server:
        latencies = asyncio.run(main(server.url))
    assert max(latencies) < 0.5, latencies


def test_request_timeout_is_504_and_the_server_recovers(models_dir: Path) -> None:
    settings = ServerSettings(models=str(models_dir), background_load=False, warmup=False, request_timeout_s=0.3,
                              max_batch=1)
    # The warm-up is fast, so admission expects the request to fit in 0.3 s; the slow batch then exceeds it.
    app = create_app(settings, backend_factory=slow_factory(0.8, [], fast_warmup=True))
    with BackgroundServer(app) as server:
        started = time.perf_counter()
        response = httpx.post(f"{server.url}/v1/stylize?model=tiny", content=photo(), timeout=CLIENT_TIMEOUT)
        assert response.status_code == 504 and response.json()["error"] == "timeout"
        assert time.perf_counter() - started < 0.8
        time.sleep(0.8)  # the abandoned batch finishes; the server is healthy again
        assert httpx.get(f"{server.url}/readyz", timeout=CLIENT_TIMEOUT).status_code == 200


def test_graceful_shutdown_finishes_requests_in_flight(models_dir: Path) -> None:
    settings = ServerSettings(models=str(models_dir), background_load=False, warmup=False, max_batch=4)
    app = create_app(settings, backend_factory=slow_factory(2.0, []))
    server = BackgroundServer(app).__enter__()
    results: list[int] = []

    def client() -> None:
        results.append(httpx.post(f"{server.url}/v1/stylize?model=tiny", content=photo(),
                                  timeout=CLIENT_TIMEOUT).status_code)

    threads = [threading.Thread(target=client) for _ in range(3)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while in_flight(server.url) < 3:  # all three admitted (a slow machine may take a while to send them)
        assert time.monotonic() < deadline, "the three requests never got in flight"
        time.sleep(0.05)
    server.stop()  # what SIGTERM does
    for thread in threads:
        thread.join(20)
    assert results == [200, 200, 200]
    assert not server.thread.is_alive()
    with pytest.raises(httpx.ConnectError):  # and it no longer accepts connections
        httpx.get(f"{server.url}/healthz", timeout=2)


def test_background_loading_reports_readiness(models_dir: Path) -> None:
    settings = ServerSettings(models=str(models_dir), background_load=True, warmup=True)
    app = create_app(settings, backend_factory=slow_factory(0.0, [], load_delay=1.0))
    with BackgroundServer(app) as server:
        assert httpx.get(f"{server.url}/healthz", timeout=CLIENT_TIMEOUT).status_code == 200
        loading = httpx.get(f"{server.url}/readyz", timeout=CLIENT_TIMEOUT)
        assert loading.status_code == 503 and "loading models (0 of 1" in loading.json()["detail"]
        assert loading.headers["retry-after"] == "5"
        early = httpx.post(f"{server.url}/v1/stylize?model=tiny", content=photo(), timeout=CLIENT_TIMEOUT)
        assert early.status_code == 503 and early.json()["error"] == "unavailable"
        deadline = time.monotonic() + 15
        while httpx.get(f"{server.url}/readyz", timeout=CLIENT_TIMEOUT).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        ok = httpx.post(f"{server.url}/v1/stylize?model=tiny", content=photo(), timeout=CLIENT_TIMEOUT)
        assert ok.status_code == 200
