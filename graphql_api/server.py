"""The HTTP server: uvicorn, configured in this one place for `serve`, `dev` and the tests.

Limits (values in `graphql_api.limits`, documented in the README):

- the request head (request line and headers) is capped at 64 KiB: past that the client gets
  431 and the connection is closed, without the server buffering the rest;
- the head must arrive within 10 s of the connection (or of its first byte on a kept-alive
  connection): else 408 and close. This also closes connections that never send anything;
- the body: `BodyReadTimeout` (30 s per wait, 60 s in all) and the 1 MiB `LimitRequestBody`.

Why a protocol subclass: uvicorn 0.54 has no public setting for either head limit. The
httptools parser (what `uvicorn[standard]` selects) accumulates headers without bound, and
`timeout_keep_alive` only runs between requests, cancelled by the first byte that arrives.
h11's public `h11_max_incomplete_event_size` bounds only an *incomplete* head: a complete head
that arrives in one read is accepted whatever its size (measured: 64 KiB + 1 passes), and h11
offers no read deadline either, so switching to h11 would cost throughput and still need code.
The subclass below therefore keeps httptools and adds both limits. It relies on uvicorn's
`HttpToolsProtocol` internals: the parser callbacks (`on_message_begin`, `on_headers_complete`,
`on_message_complete`, named by httptools), `data_received`, and the `transport`/`cycle`
attributes; tests/graphql_api/test_http_limits.py fails if an upgrade changes them.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any, ClassVar, Literal

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .limits import BodyReadTimeout, HttpLimits

log = logging.getLogger("unified_sessions.http")

DEFAULT_LIMITS = HttpLimits()
# After refusing a request, keep reading (and dropping) what the client still sends for this
# long before closing, so that its TCP stack does not reset the connection before the client
# has read the refusal (a close with unread data sends RST); the usual "lingering close".
LINGER_SECONDS = 1.0

_REASONS = {408: "Request Timeout", 431: "Request Header Fields Too Large"}


def _refusal(status: int, text: str) -> bytes:
    body = text.encode()
    return (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        "content-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    ).encode() + body


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a cap on the request head's size and read time."""

    max_head_bytes: ClassVar[int] = DEFAULT_LIMITS.max_head_bytes
    head_timeout: ClassVar[float] = DEFAULT_LIMITS.head_timeout

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase: Literal["idle", "head", "body"] = "idle"
        self._head_bytes = 0  # bytes fed since the last request ended (or the connection began)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._refused = False

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering after a refusal: drop what the client still sends
        while data and not self._refused and not self.transport.is_closing():
            if self._phase == "body":
                super().data_received(data)
                return
            # Waiting for or inside a head: feed the parser no more than the cap allows, so an
            # oversized head is refused at its first byte past the cap, never buffered. (If a
            # pipelined request begins inside a body chunk, its head is counted from the next
            # read on: the overshoot is bounded by one read.)
            self._arm_head_deadline()
            room = self.max_head_bytes - self._head_bytes
            if room <= 0:
                self._refuse(431, f"request head larger than {self.max_head_bytes} bytes")
                return
            piece, data = data[:room], data[room:]
            self._head_bytes += len(piece)
            super().data_received(piece)

    # --- httptools parser callbacks -------------------------------------------------------

    def on_message_begin(self) -> None:
        self._phase = "head"
        self._arm_head_deadline()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._phase = "body"
        self._cancel_head_deadline()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase = "idle"
        self._head_bytes = 0
        super().on_message_complete()

    # --- the limits -----------------------------------------------------------------------

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self._phase == "body" or self.transport.is_closing():
            return
        if self._responding():
            # A pipelined head waits behind a response still being computed: its clock starts
            # again, so the slow response is not cut off by the next request's deadline.
            self._arm_head_deadline()
            return
        self._refuse(408, f"request head not received within {self.head_timeout:g} s")

    def _responding(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _refuse(self, status: int, text: str) -> None:
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
        log.warning("%s from %s: %s", status, client, text)
        self._refused = True
        self._cancel_head_deadline()
        if self._responding():
            self.transport.close()  # a pipelined request's response is being written: close
            return
        self.transport.write(_refusal(status, text))
        if self.transport.can_write_eof():  # plain TCP (not TLS): linger
            self.transport.write_eof()  # the client sees the end; its own EOF closes the transport
            self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()


def _protocol(limits: HttpLimits) -> type[BoundedHttpToolsProtocol]:
    """The protocol class for `limits`: the module's own for the defaults (worker processes
    import it by name), a subclass for others (single-process servers only)."""
    if (limits.max_head_bytes, limits.head_timeout) == (
        DEFAULT_LIMITS.max_head_bytes,
        DEFAULT_LIMITS.head_timeout,
    ):
        return BoundedHttpToolsProtocol
    return type(
        "BoundedHttpToolsProtocol",
        (BoundedHttpToolsProtocol,),
        {"max_head_bytes": limits.max_head_bytes, "head_timeout": limits.head_timeout},
    )


class FrozenStartupHeap:
    """Hides what exists once the app has started from the garbage collector (`gc.freeze`).

    After start-up a process holds objects that live as long as it does (modules, the schema,
    the compiled plans' machinery): ~230,000 in a single-process `serve`, and one full
    collection walks them all, ~200 ms on this project's 2-core bench machine, paid by whichever
    requests are in flight (Q1's p99 alone: 188-232 ms before, 34-49 ms after;
    docs/performance.md). Frozen, they are never walked again; what requests create is
    collected as usual.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)

        async def send_then_freeze(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                gc.collect()  # no garbage made permanent
                gc.freeze()
            await send(message)

        await self.app(scope, receive, send_then_freeze)


def bounded_app(app: ASGIApp, limits: HttpLimits = DEFAULT_LIMITS) -> ASGIApp:
    return BodyReadTimeout(app, limits.body_idle_timeout, limits.body_total_timeout)


def _options(limits: HttpLimits) -> dict[str, Any]:
    return {"http": _protocol(limits)}


def server_config(
    app: ASGIApp, *, host: str, port: int, limits: HttpLimits = DEFAULT_LIMITS, **options: Any
) -> uvicorn.Config:
    """A uvicorn config for an app object in this process (`dev`, tests)."""
    return uvicorn.Config(
        bounded_app(app, limits), host=host, port=port, **_options(limits), **options
    )


def serve(*, host: str, port: int, workers: int, access_log: bool = False) -> None:
    """`unified-sessions serve`: each worker process builds the app from the environment. A
    line per request (uvicorn's access log) only with ACCESS_LOG=true: at thousands of requests
    a second it costs CPU and fills logs."""
    uvicorn.run(
        "graphql_api.server:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
        access_log=access_log,
        **_options(DEFAULT_LIMITS),
    )


def app_from_env() -> ASGIApp:
    """What uvicorn imports in each `serve` worker: the app, inside the body read timeouts, its
    start-up heap frozen."""
    from .main import app_from_env as create

    return bounded_app(FrozenStartupHeap(create()))
