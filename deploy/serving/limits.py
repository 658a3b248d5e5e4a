"""What the server grants a client: sizes and times, enforced below FastAPI where the app cannot see.

uvicorn alone closes only idle keep-alive connections: a client that opens a connection and sends nothing,
half a request line, or headers without end, or stops in the middle of a body, would hold its connection
(and a buffer) for ever; and neither uvicorn's default parser (httptools) nor the app bounds the size of
the request head. Two pieces close those holes:

* :func:`guarded_protocol` wraps uvicorn's HTTP protocol class (httptools or h11): the request line and
  headers must fit in ``max_header_bytes`` (else 431, connection closed) and arrive within
  ``header_timeout_s`` of the connection opening or of the request's first byte (else the connection is
  closed, with a 408 when part of a request came); a body the app did not wait for (its answer went out
  first) must finish within ``body_timeout_s`` or the connection is closed.
* :class:`LimitsMiddleware` (ASGI) bounds each wait for the next piece of a request body by
  ``body_timeout_s`` (JSON 408, connection closed), and answers a request still running when uvicorn
  cancels it after the drain timeout with the documented JSON 503 instead of a traceback and a plain 500.

Each limit has an ``attnx serve`` option; the README's "Limits and timeouts" lists them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from attnx.core.errors import UserError
from attnx.deploy.serving.protocol import ProtocolError

log = logging.getLogger("attnx.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class Limits:
    """What one request may send and how long it may take: sizes in bytes, timeouts in seconds."""

    max_body_bytes: int = 64 << 20  # --max-body-mb 64
    max_header_bytes: int = 64 << 10  # --max-header-kb 64: request line + headers
    max_json_values: int = 1 << 21  # --max-json-values: numbers (and other JSON values) in one request
    header_timeout_s: float = 10.0  # --header-timeout
    body_timeout_s: float = 30.0  # --body-timeout: longest pause inside a request body
    keep_alive_s: float = 5.0  # --keep-alive-timeout: idle time between requests on one connection

    def check(self) -> None:
        """Each limit must be positive: one line per bad option, before anything is loaded."""
        for option, value in [
            ("--max-body-mb", self.max_body_bytes), ("--max-header-kb", self.max_header_bytes),
            ("--max-json-values", self.max_json_values), ("--header-timeout", self.header_timeout_s),
            ("--body-timeout", self.body_timeout_s), ("--keep-alive-timeout", self.keep_alive_s),
        ]:  # fmt: skip
            if not value > 0:
                raise UserError(f"{option} must be > 0, got {value:g}")


def model_json_values(inputs: Sequence[Any], limit: int, slack: int = 4096) -> int:
    """The most JSON values a valid request to a model with these inputs can hold, capped at ``limit``.

    An input with an engine profile takes at most ``prod(profile max)`` values, a fully static one
    ``prod(shape)``; one with a dynamic axis and no profile is unbounded (then ``limit`` applies). ``slack``
    covers the rest of the JSON (names, shapes, parameters, outputs). So a request far larger than any the
    model accepts is refused from a count of its text, before it is parsed.
    """
    total = slack
    for spec in inputs:
        dims = spec.profile["max"] if spec.profile else spec.shape
        if not all(isinstance(d, int) for d in dims):
            return limit
        total += math.prod(dims)
    return min(limit, total)


class BodyTimeout(ProtocolError):
    """408: the request body stalled longer than ``--body-timeout`` (the connection is closed)."""

    def __init__(self, seconds: float):
        super().__init__(408, f"the request body stalled: no data for {seconds:g} s (--body-timeout); closing")


def _raw_response(status: int, reason: str, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


def guarded_protocol(base: type, limits: Limits) -> type:
    """``base`` (uvicorn's HttpToolsProtocol or H11Protocol) with a head-size limit and read timeouts."""

    class Guarded(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head_bytes = 0  # bytes of the current request head received so far
            self._head_timer: asyncio.TimerHandle | None = None
            self._leftover_timer: asyncio.TimerHandle | None = None

        # -- state -----------------------------------------------------------------------------------
        def _awaiting_head(self) -> bool:
            """True when the next bytes from the client start (or continue) a request head, not a body."""
            cycle = self.cycle
            return cycle is None or not cycle.more_body

        def _busy(self) -> bool:
            """The server owes this connection a response: any silence is then the server's, not the client's."""
            cycle = self.cycle
            return cycle is not None and not cycle.response_complete

        # -- timers ----------------------------------------------------------------------------------
        def _arm_head(self) -> None:
            self._cancel_head()
            self._head_timer = self.loop.call_later(limits.header_timeout_s, self._head_timed_out)

        def _cancel_head(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self.transport.is_closing() or not self._awaiting_head():
                return
            if self._busy():  # a pipelined head waits behind a response still being computed
                self._arm_head()
                return
            if self._head_bytes:
                self._refuse(408, "Request Timeout", f"the request line and headers did not arrive within "
                             f"{limits.header_timeout_s:g} s (--header-timeout); closing")  # fmt: skip
            else:  # a connection that never sent a byte: nothing to answer
                self.transport.close()

        def _leftover_timed_out(self) -> None:
            self._leftover_timer = None
            cycle = self.cycle
            if cycle is not None and cycle.response_complete and cycle.more_body and not self.transport.is_closing():
                self.transport.close()

        def _refuse(self, status: int, reason: str, message: str) -> None:
            log.warning("closing a connection from %s: %s", self.client, message)
            if not self._busy():  # never interleave with a response being written
                self.transport.write(_raw_response(status, reason, message))
            self.transport.close()

        # -- asyncio.Protocol ------------------------------------------------------------------------
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm_head()  # the first request's head must come within the header timeout

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head()
            if self._leftover_timer is not None:
                self._leftover_timer.cancel()
                self._leftover_timer = None
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            while data:
                if self.transport.is_closing():
                    return
                if self._awaiting_head():
                    if self._head_timer is None:
                        self._arm_head()
                    room = limits.max_header_bytes - self._head_bytes
                    if room <= 0:
                        self._refuse(431, "Request Header Fields Too Large", f"the request line and headers "
                                     f"exceed {limits.max_header_bytes} bytes (--max-header-kb)")  # fmt: skip
                        return
                    # feed at most the room left, so a head over the limit is refused before it is buffered
                    piece, data = data[:room], data[room:]
                    self._head_bytes += len(piece)
                else:
                    piece, data = data, b""
                before = self.cycle
                super().data_received(piece)
                if self.cycle is not before:  # a request's head is complete
                    self._head_bytes = 0
                    self._cancel_head()
            cycle = self.cycle
            if (cycle is not None and cycle.response_complete and cycle.more_body and self._leftover_timer is None
                    and not self.transport.is_closing()):  # fmt: skip
                # answered before its body was read (404, 413...): the rest must come within the body timeout
                self._leftover_timer = self.loop.call_later(limits.body_timeout_s, self._leftover_timed_out)

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{base.__name__}"
    return Guarded


def protocol_class(http: str, limits: Limits) -> type:
    """uvicorn's protocol for ``--http`` (auto: httptools when installed), with the limits above."""
    if http == "auto":
        import importlib.util

        http = "httptools" if importlib.util.find_spec("httptools") is not None else "h11"
    if http == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    else:
        from uvicorn.protocols.http.h11_impl import H11Protocol as base
    return guarded_protocol(base, limits)


class LimitsMiddleware:
    """ASGI: bounds each wait for request-body data; answers requests cancelled at shutdown with JSON 503."""

    def __init__(self, app: Callable[..., Awaitable[None]], body_timeout_s: float):
        self.app = app
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = False
        started = False
        timeout = self.body_timeout_s

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                message = await _within(receive(), timeout)
            except asyncio.TimeoutError:
                raise BodyTimeout(timeout) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, tracked_send)
        except asyncio.CancelledError:
            # uvicorn cancels what still runs once its graceful-shutdown timeout has passed: answer with
            # the documented 503 rather than letting it log a traceback and send a plain-text 500.
            if not started:
                body = json.dumps({"error": "the server shut down before this request finished (--drain-timeout)"})
                await send({"type": "http.response.start", "status": 503, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ]})  # fmt: skip
                await send({"type": "http.response.body", "body": body.encode(), "more_body": False})


if sys.version_info >= (3, 11):

    async def _within(awaitable: Awaitable[Message], seconds: float) -> Message:
        async with asyncio.timeout(seconds):
            return await awaitable

else:  # pragma: no cover

    async def _within(awaitable: Awaitable[Message], seconds: float) -> Message:
        return await asyncio.wait_for(awaitable, seconds)
