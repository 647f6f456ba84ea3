"""Run the app on a real socket in a background thread, for tests, the benchmark and embedding.

``TestClient`` calls the app in-process and serialises requests; backpressure, timeouts, health under load and
graceful shutdown only show against a real server with concurrent connections, so tests use this.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Any

import uvicorn
from fastapi import FastAPI

from fastnst.server.protocol import DEFAULT_HEADER_TIMEOUT_S, h11_protocol


class BackgroundServer:
    """``with BackgroundServer(app) as server: httpx.get(server.url + "/healthz")`` — port chosen by the OS."""

    def __init__(self, app: FastAPI, *, host: str = "127.0.0.1", port: int = 0, startup_timeout_s: float = 60.0,
                 header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S, **uvicorn_options: Any) -> None:
        options = {"log_level": "warning", "timeout_graceful_shutdown": 10, "http": h11_protocol(header_timeout_s),
                   **uvicorn_options}  # the protocol ``fastnst serve`` uses, so tests see the same server
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, lifespan="on", **options))
        self.startup_timeout_s = startup_timeout_s
        self.thread = threading.Thread(target=self.server.run, name="fastnst-test-server", daemon=True)
        self.url = ""

    def __enter__(self) -> BackgroundServer:  # noqa: PYI034 - final class in practice
        self.thread.start()
        deadline = time.monotonic() + self.startup_timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the server did not start (see its log above)")
            time.sleep(0.02)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Graceful shutdown, as on SIGTERM: stop accepting, finish requests in flight, run the lifespan's end."""
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout_s)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
