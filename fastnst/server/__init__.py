"""HTTP inference server: FastAPI app with dynamic batching, backpressure, Prometheus metrics and a web page.

``fastnst serve`` runs it with uvicorn; :func:`create_app` builds it for tests and other ASGI servers. The app is
imported on first use, so the CLI (which reads the server's settings schema for its flags) and machines without
FastAPI installed can use the rest of fastnst.
"""

from typing import Any

from fastnst.server.settings import ServerSettings, load_settings

__all__ = ["ServerSettings", "create_app", "load_settings"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from fastnst.server.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
