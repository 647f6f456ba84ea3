"""HTTP errors: every failure leaves the server as JSON ``{"error": code, "detail": one line}``, never a traceback.

The library raises :class:`~fastnst.utils.errors.FastNSTError` subclasses; this is the one place that turns them (and
FastAPI's own 404/405/422) into status codes, as the design notes ask.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fastnst.server.schemas import ErrorBody
from fastnst.utils.errors import ImageError, ImageTooLargeError, NotAnImageError

log = logging.getLogger("fastnst.server")

_CODES: dict[int, str] = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    408: "request_timeout", 413: "payload_too_large", 415: "unsupported_media_type", 422: "invalid_request",
    429: "too_many_requests", 500: "internal", 503: "unavailable", 504: "timeout",
}


class ApiError(Exception):
    """Raised by handlers for a client-visible failure with a status, a code and a one-line detail."""

    def __init__(self, status: int, detail: str, *, error: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error or _CODES.get(status, "error")
        self.detail = detail
        self.headers = headers


def error_response(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ErrorBody(error=error, detail=detail).model_dump(), status_code=status, headers=headers)


def image_error(exc: ImageError) -> ApiError:
    """Status for an image the decoder refused: 415 not an image, 413 too large, 400 damaged or empty."""
    message = str(exc)
    if isinstance(exc, NotAnImageError):
        return ApiError(415, message)
    if isinstance(exc, ImageTooLargeError):
        # An HTTP client cannot raise the server's cap, only send a smaller image.
        return ApiError(413, f"{message} (send a smaller image)")
    return ApiError(400, message)


def _one_line(errors: Any) -> str:
    parts = []
    for item in errors:
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception type to the JSON error shape."""

    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.error, exc.detail, exc.headers)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return error_response(status, _CODES.get(status, "error"), detail, getattr(exc, "headers", None))

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(422, "invalid_request", _one_line(exc.errors()))

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("fastnst: internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal", "internal server error (logged on the server)")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)
