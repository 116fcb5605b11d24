"""Request head and body limits, through a real uvicorn socket.

The in-process server is built by `server_config`, the builder `dev` uses and `serve` shares its
protocol options with, here with 1-second timeouts; one test runs the real `unified-sessions
serve` process with its defaults. Clients are raw asyncio streams, so they can misbehave.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from graphql_api.app import create_app
from graphql_api.core.embedded import free_port
from graphql_api.core.runtime import Resources
from graphql_api.core.settings import Settings
from graphql_api.limits import MAX_HEAD_BYTES, HttpLimits
from graphql_api.server import server_config
from tests.conftest import TEST_JWT_SECRET

HEAD_TIMEOUT = 1.0
BODY_IDLE_TIMEOUT = 1.0
BODY_TOTAL_TIMEOUT = 3.0
LIMITS = HttpLimits(
    head_timeout=HEAD_TIMEOUT,
    body_idle_timeout=BODY_IDLE_TIMEOUT,
    body_total_timeout=BODY_TOTAL_TIMEOUT,
)
GENEROUS = 5.0  # seconds: "promptly", on a loaded two-core machine
TYPENAME = b'{"query": "{ __typename }"}'


@dataclass(frozen=True)
class Server:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@pytest.fixture(scope="module")
async def server(settings: Settings, resources: Resources) -> AsyncIterator[Server]:
    port = free_port()
    config = server_config(
        create_app(settings, resources),
        host="127.0.0.1",
        port=port,
        limits=LIMITS,
        log_level="warning",
        lifespan="on",
    )
    uv = uvicorn.Server(config)
    task = asyncio.create_task(uv.serve())
    while not uv.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    yield Server("127.0.0.1", port)
    uv.should_exit = True
    await task


# --- raw HTTP ---------------------------------------------------------------------------------


def head_of(size: int, target: bytes = b"/healthz") -> bytes:
    """A complete GET request head of exactly `size` bytes, padded with 4 KiB headers."""
    head = b"GET " + target + b" HTTP/1.1\r\nhost: test\r\nconnection: close\r\n"
    lines: list[bytes] = []
    left = size - len(head) - 2  # the blank line that ends the head
    while left > 0:
        name = b"x-pad-%d: " % len(lines)
        length = min(4096, left)
        if left - length < 16 and left > length:  # never leave a remainder too short for a line
            length = left - 16
        lines.append(name + b"a" * (length - len(name) - 2) + b"\r\n")
        left -= length
    data = head + b"".join(lines) + b"\r\n"
    assert len(data) == size
    return data


@dataclass
class Exchange:
    response: bytes  # all the server sent until it closed
    closed: bool  # EOF or reset seen (not our own timeout)
    reset: bool
    seconds: float  # from connecting to the close

    @property
    def status(self) -> int | None:
        if not self.response.startswith(b"HTTP/1.1 "):
            return None
        return int(self.response[9:12])


async def _read_to_close(reader: asyncio.StreamReader, received: bytearray) -> bool:
    """Read into `received` until the server closes; True if it reset the connection."""
    try:
        while chunk := await reader.read(65536):
            received += chunk
    except ConnectionResetError:
        return True
    return False


async def exchange(
    server: Server, chunks: Iterator[bytes] | list[bytes], *, pause: float = 0.0, wait: float
) -> Exchange:
    """Send `chunks` (pausing between them) while reading, until the server closes or `wait`."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    started = time.monotonic()

    async def send() -> None:
        with contextlib.suppress(ConnectionError):
            for chunk in chunks:
                writer.write(chunk)
                await writer.drain()
                if pause:
                    await asyncio.sleep(pause)

    sender = asyncio.create_task(send())
    response = bytearray()
    try:
        reset = await asyncio.wait_for(_read_to_close(reader, response), wait)
        closed = True
    except TimeoutError:
        reset, closed = False, False
    seconds = time.monotonic() - started
    sender.cancel()
    with contextlib.suppress(asyncio.CancelledError, ConnectionError):
        await sender
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    return Exchange(bytes(response), closed, reset, seconds)


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


async def typename(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=GENEROUS) as client:
        response = await client.post("/graphql", content=TYPENAME, headers=_json())
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"__typename": "Query"}}


def _json() -> dict[str, str]:
    return {"content-type": "application/json"}


# --- the head ---------------------------------------------------------------------------------


async def test_normal_requests_and_a_head_of_exactly_the_limit_are_answered(
    server: Server,
) -> None:
    await typename(server)
    result = await exchange(server, [head_of(MAX_HEAD_BYTES)], wait=GENEROUS)
    assert result.status == 200, result.response[:200]


@pytest.mark.parametrize("size", [MAX_HEAD_BYTES + 1, 1 << 20, 2 << 20])
async def test_a_head_past_64_kib_gets_431_and_the_connection_is_closed(
    server: Server, size: int
) -> None:
    result = await exchange(server, pieces(head_of(size), 65536), wait=GENEROUS)
    assert result.closed
    assert result.status == 431, result.response[:200]
    assert b"connection: close" in result.response
    await typename(server)


async def test_a_16_mib_head_is_refused_promptly_without_being_buffered(server: Server) -> None:
    data = head_of(16 << 20)
    tracemalloc.start()
    try:
        result = await exchange(server, pieces(data, 65536), wait=GENEROUS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.closed
    assert result.status == 431 or result.reset, result.response[:200]
    # Unbounded, the parser alone holds the 16 MiB; bounded, a few reads are in flight at most.
    assert peak < 4 << 20, f"{peak} bytes allocated while the server read the head"
    await typename(server)


# --- head read time ---------------------------------------------------------------------------


def _drip() -> Iterator[bytes]:
    """A head that never ends, one byte at a time (the caller pauses 0.2 s between bytes)."""
    yield from (bytes([b]) for b in b"GET /healthz HTTP/1.1\r\nhost: test\r\nx-slow: ")
    while True:
        yield b"a"


@pytest.mark.parametrize("kind", ["drip", "silent", "drip after a first request"])
async def test_a_slow_or_silent_head_is_closed_after_the_header_timeout(
    server: Server, kind: str
) -> None:
    chunks: Iterator[bytes] = iter(())
    if kind == "drip":
        chunks = _drip()
    elif kind == "drip after a first request":
        first = b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n"
        chunks = iter([first, *_first_bytes(_drip(), 1000)])
    slow = asyncio.create_task(exchange(server, chunks, pause=0.2, wait=HEAD_TIMEOUT + GENEROUS))
    await asyncio.sleep(HEAD_TIMEOUT / 2)
    await typename(server)  # others are answered meanwhile
    result = await slow
    assert result.closed, "the slow connection was never closed"
    assert result.seconds >= HEAD_TIMEOUT * 0.9, result
    last = result.response.rsplit(b"HTTP/1.1 ", 1)[-1]
    assert last.startswith(b"408 "), result.response[:300]
    if kind == "drip after a first request":
        assert result.response.startswith(b"HTTP/1.1 200 "), result.response[:300]


def _first_bytes(chunks: Iterator[bytes], count: int) -> list[bytes]:
    return [next(chunks) for _ in range(count)]


# --- the body ---------------------------------------------------------------------------------


def _post_head(length: int) -> bytes:
    return (
        b"POST /graphql HTTP/1.1\r\nhost: test\r\nconnection: close\r\n"
        b"content-type: application/json\r\n"
        b"content-length: %d\r\n\r\n" % length
    )


async def test_a_stalled_body_gets_408_after_the_body_timeout(server: Server) -> None:
    stalled = asyncio.create_task(
        exchange(server, [_post_head(100) + b"0123456789"], wait=BODY_IDLE_TIMEOUT + GENEROUS)
    )
    await asyncio.sleep(BODY_IDLE_TIMEOUT / 2)
    await typename(server)  # others are answered meanwhile
    result = await stalled
    assert result.closed
    assert result.status == 408, result.response[:300]
    assert result.seconds >= BODY_IDLE_TIMEOUT * 0.9, result


async def test_a_trickling_body_gets_408_at_the_total_body_deadline(server: Server) -> None:
    body = TYPENAME.ljust(100)
    chunks = [_post_head(len(body)), *pieces(body, 1)]
    pause = BODY_IDLE_TIMEOUT / 2  # every wait is short; the whole body takes 50 s
    result = await exchange(server, chunks, pause=pause, wait=BODY_TOTAL_TIMEOUT + GENEROUS)
    assert result.closed
    assert result.status == 408, result.response[:300]
    assert result.seconds >= BODY_TOTAL_TIMEOUT * 0.9, result


async def test_a_body_with_pauses_below_the_idle_timeout_is_answered(server: Server) -> None:
    head = _post_head(len(TYPENAME))
    chunks = [head, TYPENAME[:10], TYPENAME[10:]]
    result = await exchange(server, chunks, pause=BODY_IDLE_TIMEOUT / 2, wait=1.0 + GENEROUS)
    assert result.status == 200, result.response[:300]
    assert b'{"data":{"__typename":"Query"}}' in result.response


# --- the real `serve` command ---------------------------------------------------------------


def test_serve_refuses_a_head_past_64_kib(database_url: str, redis_url: str) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
    env |= {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "JWT_SECRET": TEST_JWT_SECRET}
    command = str(Path(sys.executable).parent / "unified-sessions")
    process = subprocess.Popen(
        [command, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_for_health(f"http://127.0.0.1:{port}/healthz", process)
        server = Server("127.0.0.1", port)
        refused = asyncio.run(exchange(server, [head_of(MAX_HEAD_BYTES + 1)], wait=GENEROUS))
        accepted = asyncio.run(exchange(server, [head_of(MAX_HEAD_BYTES)], wait=GENEROUS))
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert refused.closed
    assert refused.status == 431, (refused.response[:200], output)
    assert accepted.status == 200, (accepted.response[:200], output)


def _wait_for_health(url: str, process: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"serve exited early: {output}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError("serve did not answer /healthz in time")
