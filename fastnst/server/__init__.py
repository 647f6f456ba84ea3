"""HTTP inference server: FastAPI app with dynamic batching, backpressure, Prometheus metrics and a web page.

``fastnst serve`` runs it with uvicorn; :func:`create_app` builds it for tests and other ASGI servers.
"""

from .app import create_app
from .settings import ServerSettings, load_settings

__all__ = ["ServerSettings", "create_app", "load_settings"]
