"""HTTP request limits: what one client may make the server hold, and for how long.

- request head (request line + headers): at most MAX_HEAD_BYTES, read within HEAD_TIMEOUT
  seconds; enforced by the uvicorn protocol in `graphql_api.server` (431 / 408, then close);
- request body: at most MAX_REQUEST_BYTES (413, Starlette's own `max_body_size`, in app.py),
  each wait for the next piece at most BODY_IDLE_TIMEOUT seconds and the whole body within
  BODY_TOTAL_TIMEOUT seconds (408, `BodyReadTimeout`, wrapped round the app by the server).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_REQUEST_BYTES = 1024 * 1024
MAX_HEAD_BYTES = 64 * 1024
HEAD_TIMEOUT = 10.0
BODY_IDLE_TIMEOUT = 30.0
BODY_TOTAL_TIMEOUT = 60.0

log = logging.getLogger("unified_sessions.http")


@dataclass(frozen=True)
class HttpLimits:
    """The transport limits the server applies (`graphql_api.server` builds uvicorn with them)."""

    max_head_bytes: int = MAX_HEAD_BYTES
    head_timeout: float = HEAD_TIMEOUT
    body_idle_timeout: float = BODY_IDLE_TIMEOUT
    body_total_timeout: float = BODY_TOTAL_TIMEOUT


class _BodyTimedOut(Exception):
    pass


class BodyReadTimeout:
    """Bounds how long the app waits for the request body: each `receive()` at most
    `idle_timeout` seconds, the whole body within `total_timeout` seconds of the request head.

    Plain ASGI, so it needs no server internals. A stalled client gets 408 (and the connection
    is closed) when no response has started; the app's own reaction to the timeout (an error
    response, an exception) is dropped, because the 408 already answers the request. Once the
    body is complete, `receive()` only waits for a disconnect, which is not bounded here.
    """

    def __init__(
        self,
        app: ASGIApp,
        idle_timeout: float = BODY_IDLE_TIMEOUT,
        total_timeout: float = BODY_TOTAL_TIMEOUT,
    ) -> None:
        self.app = app
        self.idle_timeout = idle_timeout
        self.total_timeout = total_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total_timeout
        body_done = False
        timed_out = False
        started = False

        async def timed_receive() -> Message:
            nonlocal body_done, timed_out
            if body_done or timed_out:
                return await receive()
            try:
                async with asyncio.timeout(min(self.idle_timeout, deadline - loop.time())):
                    message = await receive()
            except TimeoutError:
                timed_out = True
                raise _BodyTimedOut from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if timed_out:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except Exception:
            if not timed_out or started:
                raise
        if timed_out and not started:
            log.info("request body from %s not received in time: 408", _client(scope))
            response = PlainTextResponse(
                "request body not received in time",
                status_code=408,
                headers={"connection": "close"},
            )
            await response(scope, receive, send)


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "?"
