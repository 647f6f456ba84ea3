"""The FastAPI application: routes, lifespan (model loading, batcher), limits and backpressure.

A stylize request goes: body read with a byte limit and deadlines (413/408, before any slot is taken) → the image
header's size → admission (:mod:`fastnst.server.admission`: 503 + Retry-After at once unless the server can answer
within ``request_timeout_s``) → a place in the decoded-pixel budget → decode on a worker thread (415/400/413) → the
dynamic batcher (inference on its own thread) → strength / colour / encoding on a worker thread → image bytes.
An admitted request whose client disconnects, or which passes its deadline (504), is cancelled and dropped from
the batcher's queue. The event loop itself never decodes or computes, so /healthz answers under any load.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import io
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import torch
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, Response
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from PIL import Image
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from fastnst._version import __version__
from fastnst.model.files import WEIGHTS_FILE
from fastnst.model.mixing import parse_mix, style_weights
from fastnst.runtime.color import Controls, apply_controls
from fastnst.runtime.margin import add_margin
from fastnst.server.admission import AdmissionController, PixelGate, Refusal, ServiceEstimate
from fastnst.server.backends import WarmupTimed, load_backend, server_backends
from fastnst.server.batching import BatcherClosed, DeadlineExpired, DynamicBatcher, QueueFull, bucket_for, pad_to
from fastnst.server.body import read_body
from fastnst.server.errors import ApiError, error_response, image_error, install_error_handlers
from fastnst.server.memory import return_large_buffers, trim_heap
from fastnst.server.metrics import MetricsMiddleware, ServerMetrics
from fastnst.server.postprocess import EXTENSIONS, MEDIA_TYPES, encode_image
from fastnst.server.registry import STATIC_DIR, BackendFactory, Registry, discover_models
from fastnst.server.schemas import (
    OPTION_NAMES,
    ErrorBody,
    Health,
    ModelCard,
    ModelList,
    Ready,
    StylizeOptions,
    option_schemas,
)
from fastnst.server.settings import API_KEY_HEADER, ServerSettings
from fastnst.utils.device import resolve_device
from fastnst.utils.errors import FastNSTError, ImageError
from fastnst.utils.images import image_to_tensor, open_image_bytes, resize_max_side, tensor_to_image

log = logging.getLogger("fastnst.server")

# The page loads only its own files; results are blob: URLs. No inline script, so injected markup cannot run.
PAGE_CSP = ("default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
NOT_READY_RETRY_S = 5
ClusterState = Callable[[], dict[str, Any]]
"""Reports the replicas' state (Ray Serve: deployment status and replicas per state) for /readyz."""


@dataclass
class ServerState:
    """Everything the handlers share; one per app, reached through ``Depends(get_state)``."""

    settings: ServerSettings
    factory: BackendFactory
    metrics: ServerMetrics
    registry: Registry = field(default_factory=Registry)
    batcher: DynamicBatcher | None = None
    estimate: ServiceEstimate = field(default_factory=ServiceEstimate)
    admission: AdmissionController | None = None
    gate: PixelGate | None = None
    draining: bool = False
    device: str = "cpu"
    trimming: bool = False
    trim_task: asyncio.Future[None] | None = None
    cluster_state: ClusterState | None = None

    @property
    def admitted(self) -> int:
        return self.admission.requests if self.admission else 0


def get_state(request: Request) -> ServerState:
    return request.app.state.fastnst


_api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False,
                               description="required when the server is started with an API key")


def require_api_key(state: Annotated[ServerState, Depends(get_state)],
                    key: Annotated[str | None, Depends(_api_key_header)]) -> None:
    """Constant-time comparison, so the key cannot be guessed byte by byte from response times."""
    expected = state.settings.api_key
    if expected and not (key and hmac.compare_digest(key.encode(), expected.encode())):
        raise ApiError(401, f"missing or wrong API key (send it in the {API_KEY_HEADER} header)")


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody} for status in statuses}


# ------------------------------------------------------------------------------------------------- app factory


def create_app(settings: ServerSettings | None = None, *, backend_factory: BackendFactory | None = None,
               cluster_state: ClusterState | None = None) -> FastAPI:
    """Build the app. Nothing is loaded here: models load in the lifespan (startup), batches run in it.
    ``cluster_state`` is given when the app runs as one of several replicas: /readyz reports what it returns."""
    settings = settings or ServerSettings()
    state = ServerState(settings=settings,
                        factory=backend_factory or functools.partial(load_backend, threads=settings.threads),
                        metrics=ServerMetrics(settings.max_batch), cluster_state=cluster_state)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        folders = discover_models(settings.models)
        state.registry, state.draining = Registry(), False  # the app may be started again
        state.estimate = ServiceEstimate()
        state.admission = AdmissionController(timeout_s=settings.request_timeout_s, max_requests=settings.queue_size,
                                              max_pixels=settings.max_pending_pixels, estimate=state.estimate)
        # Decoded images wait only for the batch now running and the next one (see PixelGate).
        state.gate = PixelGate(2 * settings.max_batch_pixels)
        state.device = resolve_device(settings.device).type
        return_large_buffers()
        if settings.threads:
            torch.set_num_threads(settings.threads)
        state.batcher = DynamicBatcher(lambda key, batch: _run_batch(state, key, batch),
                                       max_batch=settings.max_batch, max_wait_s=settings.max_wait_ms / 1000,
                                       queue_size=settings.queue_size, max_batch_pixels=settings.max_batch_pixels,
                                       on_batch=state.metrics.observe_batch,
                                       on_run=lambda key, pixels, seconds: state.estimate.observe(
                                           key[0], seconds, pixels),  # type: ignore[index]
                                       on_drop=lambda reason: state.metrics.dropped.labels(reason).inc())
        state.batcher.start()
        state.metrics.track_queue(lambda: state.batcher.depth if state.batcher else 0)
        state.metrics.track_backlog(lambda: state.admission.backlog_s() if state.admission else 0.0)

        def on_loaded(model: Any) -> None:
            if isinstance(model.backend, WarmupTimed):
                model.backend.loaded()
            state.metrics.model_load.labels(model.name).set(model.load_seconds)
            state.metrics.models_ready.set(len(state.registry.models))

        loading = asyncio.ensure_future(asyncio.to_thread(
            state.registry.load_all, folders, state.device, server_backends(state.factory, state.estimate),
            warmup=settings.warmup, on_loaded=on_loaded))
        if not settings.background_load:
            await asyncio.shield(loading)
        try:
            yield
        finally:
            # uvicorn has stopped accepting connections and waited for open requests; finish anything queued.
            state.draining = True
            await state.batcher.close(settings.shutdown_timeout_s)

    # FastAPIOffline serves /docs and /redoc from its own copies of Swagger UI and ReDoc: FastAPI's defaults load
    # them from a CDN, which leaves the pages blank on a server without internet access.
    app = FastAPIOffline(title="fastnst", version=__version__, lifespan=lifespan,
                         description="Fast neural style transfer: stylize photos with trained style networks.")
    app.state.fastnst = state
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=[API_KEY_HEADER, "Content-Type"],
                           expose_headers=["Content-Disposition", "Retry-After"])
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)  # outermost: counts CORS preflights too
    app.include_router(_probes)
    # The key (and its 401) appear in the OpenAPI document only when the server really asks for one.
    app.include_router(_api, **({"dependencies": [Depends(require_api_key)], "responses": _errors(401)}
                                if settings.api_key else {}))
    _document_limits(app, settings)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _document_limits(app: FastAPI, settings: ServerSettings) -> None:
    """Put this server's ``max_side_limit`` into its OpenAPI document (query parameter and form field)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            operation = document["paths"]["/v1/stylize"]["post"]
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "max_side":
                    for branch in parameter["schema"].get("anyOf", [parameter["schema"]]):
                        if branch.get("type") == "integer":
                            branch["maximum"] = settings.max_side_limit
            form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
            form["properties"].update(option_schemas(settings.max_side_limit))
        return app.openapi_schema or document

    app.openapi = openapi  # type: ignore[method-assign]


async def _trim_when_idle(state: ServerState) -> None:
    """After the last admitted request is answered, trim the heap once (on a thread: it walks the heap)."""
    if state.trimming or state.admitted:
        return
    state.trimming = True
    try:
        await asyncio.to_thread(trim_heap)
    finally:
        state.trimming = False


def _run_batch(state: ServerState, key: Hashable, batch: torch.Tensor) -> torch.Tensor:
    """On the inference thread: one backend call for a batch of same-size images of one model and style mix."""
    name, weights = key[0], key[1]  # type: ignore[index]
    model = state.registry.models[name]

    def load(mix: dict[str, float]) -> Any:
        backend, _ = server_backends(state.factory, state.estimate)(model.folder / WEIGHTS_FILE, state.device,
                                                                     mix=mix)
        backend.loaded()  # the model's estimate is seeded already: no timed second run
        return backend

    return model.backend_for(weights, load).stylize(batch)


# ------------------------------------------------------------------------------------------------- probes, page


_probes = APIRouter()


@_probes.get("/healthz", response_model=Health, tags=["probes"], summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health()


@_probes.get("/readyz", response_model=Ready, response_model_exclude_none=True, tags=["probes"],
             responses=_errors(503),
             summary="Readiness: models loaded and warm, not shutting down")
async def readyz(state: Annotated[ServerState, Depends(get_state)]) -> Any:
    if state.draining:
        return error_response(503, "unavailable", "shutting down")
    if not state.registry.ready:
        return error_response(503, "unavailable", state.registry.progress(),
                              {"Retry-After": str(NOT_READY_RETRY_S)})
    cluster = await run_in_threadpool(state.cluster_state) if state.cluster_state else None
    return Ready(models=sorted(state.registry.models), failed=dict(state.registry.failed), cluster=cluster)


@_probes.get("/metrics", tags=["probes"], summary="Prometheus metrics",
             response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(state: Annotated[ServerState, Depends(get_state)]) -> Response:
    return Response(state.metrics.render(), media_type=state.metrics.content_type)


@_probes.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers={"Content-Security-Policy": PAGE_CSP,
                                                            "X-Content-Type-Options": "nosniff"})


# ------------------------------------------------------------------------------------------------- /v1

# Full paths on the routes (no router prefix) so each route object knows its public path: the metrics label.
_api = APIRouter(tags=["stylize"])


@_api.get("/v1/models", response_model=ModelList, summary="The models this server serves")
async def list_models(request: Request, state: Annotated[ServerState, Depends(get_state)]) -> ModelList:
    cards = []
    for name, model in sorted(state.registry.models.items()):
        backend = {"name": model.backend.name, "device": model.backend.device,
                   "precision": model.backend.precision}
        cards.append(ModelCard(name=name, style=model.style(), styles=model.styles(), backends=[backend],
                               thumbnail=str(request.url_for("thumbnail", name=name).path),
                               metadata=model.public_metadata()))
    return ModelList(models=cards)


@_api.get("/v1/models/{name}/thumbnail", name="thumbnail", response_class=Response, summary="A preview of the style",
          responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}}, **_errors(404)})
async def thumbnail(name: str, state: Annotated[ServerState, Depends(get_state)]) -> Response:
    model = _find_model(state, name)
    return Response(model.thumbnail, media_type=model.thumbnail_type,
                    headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"})


_IMAGE_BODY = {"schema": {"type": "string", "format": "binary"}}
_STYLIZE_BODY = {
    "description": "the photo: the raw bytes as the body, or a multipart/form-data upload in a field named `file` "
                   "(other form fields: the options below)",
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary"}}}},  # + options: _document_limits
        "image/jpeg": _IMAGE_BODY, "image/png": _IMAGE_BODY, "image/webp": _IMAGE_BODY,
        "application/octet-stream": _IMAGE_BODY,
    },
}


@_api.post(
    "/v1/stylize", response_class=Response, summary="Stylize one photo; returns the image",
    openapi_extra={"requestBody": _STYLIZE_BODY},
    responses={200: {"content": {media: {} for media in MEDIA_TYPES.values()}, "description": "the stylized image"},
               **_errors(400, 404, 413, 415, 422, 503, 504)},
)
async def stylize(request: Request, state: Annotated[ServerState, Depends(get_state)],
                  query: Annotated[StylizeOptions, Query()]) -> Response:
    settings = state.settings
    if state.draining or state.batcher is None or state.admission is None:
        raise ApiError(503, "the server is shutting down", headers={"Retry-After": str(NOT_READY_RETRY_S)})
    if not state.registry.models and not state.registry.done:
        raise ApiError(503, state.registry.progress(), headers={"Retry-After": str(NOT_READY_RETRY_S)})
    # The whole body arrives before the request takes any place: a slow upload holds only its connection.
    body = await read_body(request, limit=settings.max_body_bytes, idle_timeout_s=settings.body_idle_timeout_s,
                           total_timeout_s=settings.body_timeout_s)
    data, filename, fields = await _split_upload(request, body, settings.max_body_bytes)
    del body
    options = _options(request, fields)
    model = _pick_model(state, options.model)
    weights = _style_weights(model, options)
    max_side = options.max_side or settings.max_side
    if max_side > settings.max_side_limit:
        raise ApiError(422, f"max_side {max_side} exceeds this server's limit of {settings.max_side_limit}",
                       error="invalid_request")
    pixels, decoded = await _planned_pixels(data, filename, max_side, settings)
    decision = state.admission.admit(model.name, pixels)
    if isinstance(decision, Refusal):
        state.metrics.rejected.labels(decision.reason).inc()
        raise ApiError(503, f"{decision.message}; retry later", error="overloaded",
                       headers={"Retry-After": str(decision.retry_after_s)})
    state.metrics.in_flight.inc()
    deadline = time.monotonic() + settings.request_timeout_s
    # A large photo downscaled by max_side is decoded whole first: it holds the gate for whichever is larger.
    work = asyncio.ensure_future(_stylize(state, model, weights, data, filename, options, max_side,
                                          max(pixels, decoded), deadline))
    departed = asyncio.ensure_future(_client_gone(request))
    del data
    try:
        done, _ = await asyncio.wait({work, departed}, timeout=settings.request_timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        if work in done:
            return work.result()
        if departed in done:
            state.metrics.rejected.labels("disconnected").inc()
            raise ApiError(400, "the client disconnected before the result was ready")  # nobody reads this
        state.metrics.rejected.labels("timeout").inc()
        raise _timed_out(settings)
    finally:
        # Cancelling the work drops its job from the batcher's queue; waiting for it keeps the books exact.
        for task in (work, departed):
            task.cancel()
        await asyncio.gather(work, departed, return_exceptions=True)
        state.admission.release(decision)
        state.metrics.in_flight.dec()
        if not state.admitted:
            state.trim_task = asyncio.ensure_future(_trim_when_idle(state))  # referenced: not collected early


def _timed_out(settings: ServerSettings) -> ApiError:
    """The 504 of a request not answered within its deadline (waiting in the route, or dropped by the batcher)."""
    return ApiError(504, f"not finished within {settings.request_timeout_s:g} s; try a smaller image or retry later")


async def _client_gone(request: Request) -> None:
    """Return when the client disconnects (the body has been read: the next ASGI message can only say that)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _planned_pixels(data: bytes, filename: str, max_side: int, settings: ServerSettings) -> tuple[int, int]:
    """(pixels the network will process, after max_side and with margin and padding; pixels the decoder will
    produce), from the image header alone; 413 above ``max_batch_pixels``. Data that is not a readable image is
    decoded now for its error."""
    size = None
    try:
        with Image.open(io.BytesIO(data)) as probe:
            size = probe.size
    except Exception:  # noqa: BLE001 - the decoder below gives the one-line reason
        size = None
    if size is None or size[0] * size[1] > settings.max_pixels:
        try:
            loaded = await run_in_threadpool(open_image_bytes, data, name=filename, max_pixels=settings.max_pixels)
        except ImageError as exc:
            raise image_error(exc) from None
        size = loaded.rgb.size
    pixels = _network_pixels(size, max_side, settings.margin)
    budget = settings.max_batch_pixels
    if pixels > budget:
        low, high = 1, max_side  # the largest max_side that fits, for the message
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if _network_pixels(size, middle, settings.margin) <= budget else (low,
                                                                                                      middle - 1)
        advice = f"ask for max_side ≤ {low}" if _network_pixels(size, low, settings.margin) <= budget else \
            "send a smaller image"
        raise ApiError(413, f"this image is {pixels} pixels to process at max_side {max_side}, more than this "
                            f"server's per-image budget of {budget} (its max_batch_pixels setting); {advice}")
    return pixels, size[0] * size[1]


def _network_pixels(size: tuple[int, int], max_side: int, margin: int) -> int:
    """Pixels the network processes for an image of ``size``: downscaled to ``max_side``, framed, padded."""
    width, height = size
    scale = min(1.0, max_side / max(width, height))
    width, height = max(1, round(width * scale)), max(1, round(height * scale))
    padded_h, padded_w, _ = bucket_for(height + 2 * margin, width + 2 * margin)
    return padded_h * padded_w


async def _stylize(state: ServerState, model: Any, weights: tuple[float, ...], data: bytes, filename: str,
                   options: StylizeOptions, max_side: int, gate_pixels: int, deadline: float) -> Response:
    assert state.gate is not None and state.batcher is not None
    await state.gate.acquire(gate_pixels)  # decode only when the network is about to take it
    try:
        return await _stylize_decoded(state, model, weights, data, filename, options, max_side, deadline)
    finally:
        state.gate.release(gate_pixels)


async def _stylize_decoded(state: ServerState, model: Any, weights: tuple[float, ...], data: bytes, filename: str,
                           options: StylizeOptions, max_side: int, deadline: float) -> Response:
    settings = state.settings

    def prepare() -> tuple[torch.Tensor, Image.Image | None]:
        loaded = open_image_bytes(data, name=filename, max_pixels=settings.max_pixels)
        return image_to_tensor(resize_max_side(loaded.rgb, max_side))[0], loaded.alpha  # [3, H, W]

    try:
        image, alpha = await run_in_threadpool(prepare)
    except ImageError as exc:
        raise image_error(exc) from None
    height, width = image.shape[-2:]
    framed, margin = add_margin(image.unsqueeze(0), settings.margin)
    padded_h, padded_w, mode = bucket_for(*framed.shape[-2:])
    padded = pad_to(framed[0], padded_h, padded_w, mode)
    del framed
    assert state.batcher is not None
    try:
        stylized = await state.batcher.submit((model.name, weights, padded_h, padded_w, mode), padded,
                                              deadline=deadline)
    except QueueFull:
        state.metrics.rejected.labels("queue_full").inc()
        raise ApiError(503, "server busy; retry later", error="overloaded",
                       headers={"Retry-After": str(state.batcher.retry_after_s())}) from None
    except DeadlineExpired:
        raise _timed_out(settings) from None
    except BatcherClosed:
        raise ApiError(503, "the server is shutting down", headers={"Retry-After": str(NOT_READY_RETRY_S)}) from None
    except torch.cuda.OutOfMemoryError:
        raise ApiError(503, "out of accelerator memory; try a smaller max_side", error="overloaded",
                       headers={"Retry-After": "1"}) from None
    del padded
    stylized = stylized[:, margin:margin + height, margin:margin + width]
    fmt = options.format or ("png" if alpha is not None else "jpeg")

    def finish() -> bytes:
        controls = Controls(options.strength, "luminance" if options.preserve_color else "none")
        result = apply_controls(stylized.unsqueeze(0), image.unsqueeze(0), controls)[0]
        return encode_image(tensor_to_image(result), alpha, fmt, options.quality)

    content = await run_in_threadpool(finish)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(filename).stem)[:80] if filename != "<upload>" else "image"
    return Response(content, media_type=MEDIA_TYPES[fmt], headers={
        "Content-Disposition": f'inline; filename="{stem}-{model.name}.{EXTENSIONS[fmt]}"',
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "X-Model": model.name})


async def _split_upload(request: Request, body: bytes, limit: int) -> tuple[bytes, str, dict[str, str]]:
    """(image bytes, file name for messages, form fields): a multipart upload or the raw body itself."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        if not body:
            raise ApiError(400, "no image: send the photo as the request body or as a multipart field 'file'")
        return body, "<upload>", {}

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=2 * len(OPTION_NAMES),
                                                         max_part_size=limit)
    except ApiError:
        raise
    except Exception as exc:  # noqa: BLE001 - starlette/python-multipart raise several types for bad input
        detail = getattr(exc, "detail", None) or str(exc) or type(exc).__name__
        raise ApiError(400, f"malformed multipart body ({detail})") from None
    try:
        uploads = [(key, value) for key, value in form.multi_items() if isinstance(value, UploadFile)]
        fields = {key: value for key, value in form.multi_items() if isinstance(value, str)}
        chosen = next((value for key, value in uploads if key == "file"), uploads[0][1] if uploads else None)
        if chosen is None:
            raise ApiError(400, "multipart upload holds no file; send the photo in a field named 'file'")
        data = await chosen.read()
        if not data:
            raise ApiError(400, "the uploaded file is empty (0 bytes)")
        return data, chosen.filename or "<upload>", fields
    finally:
        await form.close()


def _options(request: Request, fields: dict[str, str]) -> StylizeOptions:
    """Query parameters, overridden by multipart form fields of the same names, validated once."""
    raw: dict[str, Any] = {name: request.query_params[name] for name in OPTION_NAMES if name in request.query_params}
    raw.update({name: fields[name] for name in OPTION_NAMES if name in fields})
    try:
        return StylizeOptions.model_validate(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


def _find_model(state: ServerState, name: str) -> Any:
    model = state.registry.models.get(name)
    if model is not None:
        return model
    if not state.registry.done:
        raise ApiError(503, state.registry.progress(), headers={"Retry-After": str(NOT_READY_RETRY_S)})
    available = ", ".join(sorted(state.registry.models)) or "none"
    shown = name if len(name) <= 80 else name[:77] + "..."
    raise ApiError(404, f"unknown model {shown!r}; available: {available}")


def _style_weights(model: Any, options: StylizeOptions) -> tuple[float, ...]:
    """The request's style or mix as one weight per style of the model (rounded, so blends share batches and
    loaded copies); 422 for names the model does not hold."""
    try:
        mix = parse_mix(options.mix) if options.mix else None
        weights = style_weights(model.info.styles, style=options.style, mix=mix)
    except FastNSTError as exc:
        raise ApiError(422, str(exc), error="invalid_request") from None
    return tuple(round(weight, 4) for weight in weights)


def _pick_model(state: ServerState, name: str | None) -> Any:
    if name is not None:
        return _find_model(state, name)
    models = state.registry.models
    if len(models) == 1 and state.registry.done:
        return next(iter(models.values()))
    raise ApiError(422, f"name a model: one of {', '.join(sorted(models)) or 'none loaded yet'}",
                   error="invalid_request")

