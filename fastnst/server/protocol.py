"""uvicorn's h11 protocol with a deadline on the request head, so unfinished headers cannot hold connections open.

uvicorn times out a connection only between requests (``timeout_keep_alive``, armed after a response). A client
that connects and sends nothing, or sends part of a request line and headers and then stalls, keeps its connection
(and a file descriptor) forever; a few hundred such clients exhaust the process. This protocol closes a connection
whose request head is not complete ``header_timeout_s`` after the connection opened or after the first byte of a
later request on a kept-alive connection. Dribbling header bytes does not extend the deadline.

Install it with ``uvicorn.Config(app, http=h11_protocol(header_timeout_s))``. It replaces uvicorn's ``"auto"``
choice, so the server uses h11 even where httptools is installed.
"""

from __future__ import annotations

import asyncio
import contextlib

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

DEFAULT_HEADER_TIMEOUT_S = 10.0


def _timeout_response(header_timeout_s: float) -> bytes:
    body = f"request head not received within {header_timeout_s:g} s\n".encode()
    head = ("HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode()
    return head + body


class HeaderTimeoutH11Protocol(H11Protocol):
    """One connection; :func:`h11_protocol` makes a subclass with the deadline uvicorn cannot pass itself.

    The same deadline covers the rest of a request body the app answered without reading (a 405, 422 or 413 sent
    early): uvicorn discards such bytes and keeps the connection while they trickle in.
    """

    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop()
        super().connection_lost(exc)

    def _waiting_for_head(self) -> bool:
        return self.conn.their_state is h11.IDLE and self.conn.our_state is h11.IDLE

    def _waiting_for_unread_body(self) -> bool:
        return self.conn.our_state is h11.DONE and self.conn.their_state is h11.SEND_BODY

    def _watch(self) -> None:
        """Arm the deadline while the client owes a head or an answered body; drop it when neither is owed."""
        if self.transport.is_closing() or not (self._waiting_for_head() or self._waiting_for_unread_body()):
            self._stop()
        elif self._deadline is None and (self.timeout_keep_alive_task is None or self.conn.trailing_data[0]):
            # An idle kept-alive connection is the keep-alive timer's; from its first byte on, it is ours.
            self._deadline = self.loop.call_later(self.header_timeout_s, self._expired)

    def _stop(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._waiting_for_head():
            if self.conn.trailing_data[0]:  # part of a head arrived: say why the connection ends
                self.transport.write(_timeout_response(self.header_timeout_s))
                self.logger.info("closed a connection whose request head was incomplete after %g s",
                                 self.header_timeout_s)
        elif not self._waiting_for_unread_body():
            return
        with contextlib.suppress(h11.LocalProtocolError):
            self.conn.send(h11.ConnectionClosed())
        self.transport.close()


def h11_protocol(header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S) -> type[H11Protocol]:
    """The protocol class to pass as ``uvicorn.Config(http=...)``."""
    if not header_timeout_s > 0:
        raise ValueError(f"header_timeout_s must be positive, got {header_timeout_s}")
    return type("HeaderTimeoutH11Protocol", (HeaderTimeoutH11Protocol,), {"header_timeout_s": header_timeout_s})
