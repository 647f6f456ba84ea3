"""Reading a request body with a size limit and deadlines, so a slow or stalled upload costs only its connection.

The stylize route reads the whole body before it takes a slot; without deadlines a client sending a byte now and
then would hold its connection (and its partial body) for as long as it liked. Every refusal here also closes the
connection (``Connection: close``): the rest of the body is never read, and a kept-alive connection would otherwise
stay open while the client keeps sending it.
"""

from __future__ import annotations

import asyncio

from fastapi import Request
from starlette.requests import ClientDisconnect

from fastnst.server.errors import ApiError

CLOSE = {"Connection": "close"}


async def read_body(request: Request, *, limit: int, idle_timeout_s: float, total_timeout_s: float) -> bytes:
    """The whole body; 413 past ``limit`` bytes, 408 when no byte comes for ``idle_timeout_s`` or it all takes
    longer than ``total_timeout_s``, 400 when the client disconnects first."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body of {declared} bytes exceeds the limit of {limit} bytes", headers=CLOSE)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + total_timeout_s
    body = bytearray()
    chunks = request.stream().__aiter__()
    try:
        while True:
            wait = min(idle_timeout_s, deadline - loop.time())
            try:
                if wait <= 0:
                    raise asyncio.TimeoutError
                chunk = await asyncio.wait_for(anext(chunks), wait)
            except StopAsyncIteration:
                return bytes(body)
            except asyncio.TimeoutError:
                reason = (f"no body bytes for {idle_timeout_s:g} s" if wait == idle_timeout_s
                          else f"the body took longer than {total_timeout_s:g} s")
                raise ApiError(408, f"request body incomplete ({len(body)} bytes received): {reason}",
                               error="body_timeout", headers=CLOSE) from None
            body += chunk
            if len(body) > limit:
                raise ApiError(413, f"request body exceeds the limit of {limit} bytes", headers=CLOSE)
    except ClientDisconnect:
        raise ApiError(400, "the client disconnected before sending the whole body") from None
    finally:
        await chunks.aclose()
