"""Slow clients: uploads that trickle or stall and request heads that never finish cannot lock anyone out.

``read_body`` is tested on its own with a scripted ASGI ``receive``; the rest runs against a real server on
127.0.0.1 through raw sockets (an HTTP client library would not send a body one byte at a time). Timeouts are
shortened through the settings so the file stays fast; every socket read has a deadline.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")
from fastapi import FastAPI, Request
from server_photos import photo

from fastnst.server import ServerSettings, create_app
from fastnst.server.body import read_body
from fastnst.server.errors import ApiError, install_error_handlers
from fastnst.server.testing import BackgroundServer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
CLIENT_TIMEOUT = httpx.Timeout(20.0)


# ------------------------------------------------------------------------------------------------- read_body alone


def scripted_request(script: list[tuple[float, dict[str, Any]]], headers: dict[str, str] | None = None,
                     received: list[float] | None = None) -> Request:
    """A request whose ``receive`` returns each (delay, message) of ``script`` in turn, then stalls for good."""
    steps = list(script)

    async def receive() -> dict[str, Any]:
        if received is not None:
            received.append(time.perf_counter())
        if not steps:
            await asyncio.sleep(3600)
        delay, message = steps.pop(0)
        await asyncio.sleep(delay)
        return message

    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"",
             "headers": [(key.lower().encode(), value.encode()) for key, value in (headers or {}).items()]}
    return Request(scope, receive)


def chunk(data: bytes, more: bool = True, delay: float = 0.0) -> tuple[float, dict[str, Any]]:
    return delay, {"type": "http.request", "body": data, "more_body": more}


def read(request: Request, limit: int = 1000, idle: float = 5.0, total: float = 10.0) -> Awaitable[bytes]:
    return read_body(request, limit=limit, idle_timeout_s=idle, total_timeout_s=total)


def refusal(coroutine: Awaitable[bytes]) -> tuple[ApiError, float]:
    started = time.perf_counter()
    with pytest.raises(ApiError) as info:
        asyncio.run(coroutine)  # type: ignore[arg-type]
    return info.value, time.perf_counter() - started


def test_read_body_joins_the_chunks() -> None:
    request = scripted_request([chunk(b"ab"), chunk(b"cd", delay=0.05), chunk(b"", more=False)])
    assert asyncio.run(read(request, idle=1.0)) == b"abcd"


def test_declared_length_over_the_limit_is_413_before_reading() -> None:
    calls: list[float] = []
    error, _ = refusal(read(scripted_request([chunk(b"x")], {"content-length": "1001"}, calls)))
    assert error.status == 413 and "1001 bytes exceeds the limit of 1000" in error.detail
    assert error.headers == {"Connection": "close"} and calls == []


def test_body_over_the_limit_is_413_as_soon_as_it_passes() -> None:
    calls: list[float] = []
    script = [chunk(b"x" * 600), chunk(b"x" * 600)] + [chunk(b"x" * 600) for _ in range(5)]
    error, seconds = refusal(read(scripted_request(script, received=calls), idle=5.0))
    assert error.status == 413 and error.headers == {"Connection": "close"}
    assert len(calls) == 2 and seconds < 2.0  # stopped at the chunk that passed the limit


def test_stalled_body_is_408_after_the_idle_time() -> None:
    error, seconds = refusal(read(scripted_request([chunk(b"x" * 100)]), idle=0.3, total=10.0))
    assert error.status == 408 and error.error == "body_timeout"
    assert "100 bytes received" in error.detail and "no body bytes for 0.3 s" in error.detail
    assert error.headers == {"Connection": "close"}
    assert 0.25 < seconds < 2.0


def test_trickling_body_is_408_at_the_total_deadline() -> None:
    script = [chunk(b"x", delay=0.05) for _ in range(400)]  # never idle for long, never finished
    error, seconds = refusal(read(scripted_request(script), idle=0.5, total=0.6))
    assert error.status == 408 and error.error == "body_timeout"
    assert "took longer than 0.6 s" in error.detail
    assert 0.55 < seconds < 2.5


def test_client_disconnect_is_400() -> None:
    error, _ = refusal(read(scripted_request([chunk(b"ab"), (0.0, {"type": "http.disconnect"})])))
    assert error.status == 400 and "disconnected" in error.detail


# ------------------------------------------------------------------------------------------------- raw sockets


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def upload_head(path: str, length: int, keep_alive: bool = True) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: image/png\r\nContent-Length: {length}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n").encode()


def until_closed(sock: socket.socket, limit_s: float) -> tuple[bytes, float | None]:
    """Everything the server sends, and when (``perf_counter``) it closed the connection; None: still open."""
    started = time.perf_counter()
    data = b""
    while (left := limit_s - (time.perf_counter() - started)) > 0:
        sock.settimeout(left)
        try:
            part = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return data, time.perf_counter()
        if not part:
            return data, time.perf_counter()
        data += part
    return data, None


def parse(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def stylize_app(models_dir: Path, **settings: Any) -> FastAPI:
    return create_app(ServerSettings(models=str(models_dir), background_load=False, warmup=False, **settings))


def test_stalled_upload_gets_408_and_the_connection_closes() -> None:
    """read_body's refusal closes the connection (``Connection: close``) with the body still unread."""
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        body = await read_body(request, limit=10_000, idle_timeout_s=0.4, total_timeout_s=30)
        return {"bytes": len(body)}

    with BackgroundServer(app) as server, connect(server.url) as sock:
        started = time.perf_counter()
        sock.sendall(upload_head("/upload", 5000) + b"x" * 100)
        response, closed_at = until_closed(sock, 5.0)
    status, headers, body = parse(response)
    assert status == 408 and json.loads(body)["error"] == "body_timeout"
    assert headers["connection"] == "close"
    assert closed_at is not None and closed_at - started < 3.0


def test_slow_uploads_do_not_lock_out_a_normal_request(models_dir: Path) -> None:
    """32 uploads sending 100 bytes then a byte every 5 s (the default queue is 32 slots): others still get 200."""
    stop = threading.Event()
    with BackgroundServer(stylize_app(models_dir)) as server:
        sockets = [connect(server.url) for _ in range(32)]
        for sock in sockets:
            sock.sendall(upload_head("/v1/stylize?model=tiny", 1_000_000) + b"\x89PNG" + b"x" * 96)

        def dribble() -> None:
            while not stop.wait(5.0):
                for sock in sockets:
                    sock.sendall(b"x")

        dribbler = threading.Thread(target=dribble, daemon=True)
        started = time.perf_counter()
        dribbler.start()
        answers = []
        try:
            for when in (0.5, 5.5):  # before and after the first dribbled byte
                time.sleep(max(0.0, started + when - time.perf_counter()))
                sent = time.perf_counter()
                response = httpx.post(f"{server.url}/v1/stylize?model=tiny", content=photo(),
                                      timeout=CLIENT_TIMEOUT)
                answers.append((response.status_code, round(time.perf_counter() - sent, 3)))
            for sock in sockets:  # none was answered or dropped: they were all still uploading
                sock.settimeout(0.01)
                with pytest.raises(TimeoutError):
                    sock.recv(1)
        finally:
            stop.set()
            dribbler.join(10)
            for sock in sockets:
                sock.close()
    assert [status for status, _ in answers] == [200, 200], answers
    assert max(seconds for _, seconds in answers) < 3.0, answers


def test_stalled_stylize_upload_is_408_and_closed(models_dir: Path) -> None:
    app = stylize_app(models_dir, body_idle_timeout_s=0.5, body_timeout_s=30.0)
    with BackgroundServer(app) as server, connect(server.url) as sock:
        started = time.perf_counter()
        sock.sendall(upload_head("/v1/stylize?model=tiny", 50_000) + b"\x89PNG" + b"x" * 96)
        response, closed_at = until_closed(sock, 5.0)
        assert httpx.post(f"{server.url}/v1/stylize?model=tiny", content=photo(),
                          timeout=CLIENT_TIMEOUT).status_code == 200
    status, headers, body = parse(response)
    assert status == 408 and json.loads(body)["error"] == "body_timeout", response
    assert headers["connection"] == "close"
    assert closed_at is not None and 0.4 < closed_at - started < 3.0


def test_unfinished_request_heads_are_closed(models_dir: Path) -> None:
    with BackgroundServer(stylize_app(models_dir), header_timeout_s=0.8) as server:
        started = time.perf_counter()
        partial = [connect(server.url) for _ in range(20)]
        for sock in partial:
            sock.sendall(b"POST /v1/stylize?model=tiny HTTP/1.1\r\nHost: test\r\nContent-Len")
        silent = [connect(server.url) for _ in range(5)]  # connected, never sent a byte
        trickler = connect(server.url)

        def trickle() -> None:  # one header byte every 0.1 s does not extend the deadline
            for byte in upload_head("/v1/stylize?model=tiny", 10):
                try:
                    trickler.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.1)

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        normal = httpx.post(f"{server.url}/v1/stylize?model=tiny", content=photo(), timeout=CLIENT_TIMEOUT)
        results = [until_closed(sock, 5.0) for sock in [*partial, *silent, trickler]]
        thread.join(15)
        for sock in [*partial, *silent, trickler]:
            sock.close()
    assert normal.status_code == 200
    assert all(closed_at is not None for _, closed_at in results), "a connection with no complete head stayed open"
    assert all(0.7 < closed_at - started < 4.0 for _, closed_at in results)  # type: ignore[operator]
    for response, _ in results[:20]:
        status, headers, body = parse(response)
        assert status == 408 and headers["connection"] == "close" and b"0.8 s" in body
    assert all(response == b"" for response, _ in results[20:25])  # nothing started, nothing to explain


def test_kept_alive_connection_gets_the_head_deadline_for_its_next_request(models_dir: Path) -> None:
    with BackgroundServer(stylize_app(models_dir), header_timeout_s=1.0) as server, connect(server.url) as sock:
        request = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"
        sock.sendall(request[:10])
        time.sleep(0.2)  # a head in two parts, within the deadline, is served
        sock.sendall(request[10:])
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        started = time.perf_counter()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")
        response, closed_at = until_closed(sock, 5.0)
    assert parse(response)[0] == 408
    assert closed_at is not None and 0.8 < closed_at - started < 3.0


def test_body_left_unread_after_an_early_answer_cannot_hold_the_connection(models_dir: Path) -> None:
    """A 405 answers before the body is read; a client dribbling the rest is cut off at the same deadline."""
    with BackgroundServer(stylize_app(models_dir), header_timeout_s=0.8) as server, connect(server.url) as sock:
        sock.sendall(upload_head("/healthz", 100_000) + b"x" * 100)
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 405")
        started = time.perf_counter()
        closed_at = None
        while closed_at is None and time.perf_counter() - started < 5:
            try:
                sock.sendall(b"x")
            except OSError:
                closed_at = time.perf_counter()
                break
            _, closed_at = until_closed(sock, 0.2)
    assert closed_at is not None and 0.7 < closed_at - started < 3.0
