"""Live-update figures, printed (never asserted).

    python scripts/bench_live.py [--subscribers 1000] [--samples 200]

Creates its own database (BENCH_DATABASE_URL's server, else an embedded PostgreSQL), starts one
`unified-sessions serve` process, opens one WebSocket per subscriber (each a different person,
each following `messageEvents` of their own session), then measures:

- commit-to-subscriber latency: a message committed by another connection, until the one
  subscriber of that session has the ADDED event (p50/p99 over --samples writes);
- fan-out: one INSERT statement that adds a message to every subscriber's session, from its
  commit until the last subscriber has its event;
- the server's memory per subscriber (resident set before and after subscribing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import websockets
from bench import postgres_server, wait_until_healthy
from websockets.typing import Subprotocol

from graphql_api.core.embedded import free_port, with_database
from graphql_api.core.migrate import migrate
from graphql_api.core.tokens import mint_token

SECRET = "bench-" + secrets.token_hex(16)
SUBSCRIBE = (
    "subscription($s: String!) { messageEvents(sessionId: $s) { kind message { content } } }"
)


def resident_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Subscriber:
    def __init__(self, session_id: str, token: str) -> None:
        self.session_id = session_id
        self.token = token
        self.arrived: dict[str, float] = {}  # message content -> when it arrived
        self.waiters: dict[str, asyncio.Future[float]] = {}

    async def open(self, url: str) -> Any:
        socket = await websockets.connect(url, subprotocols=[Subprotocol("graphql-transport-ws")])
        await socket.send(
            json.dumps(
                {"type": "connection_init", "payload": {"Authorization": f"Bearer {self.token}"}}
            )
        )
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        await socket.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": SUBSCRIBE, "variables": {"s": self.session_id}},
                }
            )
        )
        return socket

    async def read(self, socket: Any) -> None:
        async for raw in socket:
            message = json.loads(raw)
            if message.get("type") != "next":
                continue
            content = message["payload"]["data"]["messageEvents"]["message"]["content"]
            now = time.perf_counter()
            self.arrived[content] = now
            if waiter := self.waiters.pop(content, None):
                waiter.set_result(now)

    def wait_for(self, content: str) -> asyncio.Future[float]:
        future = asyncio.get_running_loop().create_future()
        if content in self.arrived:
            future.set_result(self.arrived[content])
        else:
            self.waiters[content] = future
        return future


async def seed(conn: asyncpg.Connection, count: int) -> list[tuple[str, uuid.UUID]]:
    people = [uuid.uuid4() for _ in range(count)]
    await conn.executemany(
        "INSERT INTO chat_sessions (user_id, chat_id, session_id, channel) "
        "VALUES ($1, gen_random_uuid(), $2, 'web')",
        [(p, f"live-{n}") for n, p in enumerate(people)],
    )
    return [(f"live-{n}", p) for n, p in enumerate(people)]


async def add_message(conn: asyncpg.Connection, session_ids: list[str], content: str) -> float:
    await conn.execute(
        "INSERT INTO chat_message_history (session_id, message) "
        "SELECT s, jsonb_build_object('type', 'ai', 'data', jsonb_build_object('content', $2::text))"
        "  FROM unnest($1::text[]) AS s",
        session_ids,
        content,
    )
    return time.perf_counter()  # the statement has committed (autocommit)


async def run(server_url: str, args: argparse.Namespace) -> None:
    name = "us_bench_live_" + secrets.token_hex(4)
    url = with_database(server_url, name)
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    port = free_port()
    process = None
    readers: list[asyncio.Task[None]] = []
    try:
        await migrate(url)
        writer = await asyncpg.connect(url)
        people = await seed(writer, args.subscribers)
        env = {**os.environ, "DATABASE_URL": url, "JWT_SECRET": SECRET}
        env.pop("REDIS_URL", None)
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "unified-sessions"), "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            await wait_until_healthy(client)
        before = resident_kib(process.pid)
        subscribers = [Subscriber(s, mint_token(SECRET, p)) for s, p in people]
        ws_url = f"ws://127.0.0.1:{port}/graphql"
        started = time.perf_counter()
        sockets = []
        for batch in range(0, len(subscribers), 50):
            group = subscribers[batch : batch + 50]
            sockets += await asyncio.gather(*(s.open(ws_url) for s in group))
        readers = [
            asyncio.create_task(s.read(w)) for s, w in zip(subscribers, sockets, strict=True)
        ]
        await asyncio.sleep(1.0)  # every subscription registered with the server's hub
        after = resident_kib(process.pid)
        print(
            f"{len(subscribers)} subscribers connected in {time.perf_counter() - started:.1f} s; "
            f"server memory {before / 1024:.0f} MiB -> {after / 1024:.0f} MiB, "
            f"{(after - before) / len(subscribers):.1f} KiB per subscriber"
        )

        latencies = []
        for n in range(args.samples):
            target = random.choice(subscribers)
            content = f"sample {n}"
            arrival = target.wait_for(content)
            committed = await add_message(writer, [target.session_id], content)
            latencies.append(await asyncio.wait_for(arrival, 10) - committed)
        latencies.sort()
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000
        print(
            f"commit-to-subscriber latency over {args.samples} writes, "
            f"{len(subscribers)} subscribers: p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )

        arrivals = [s.wait_for("to everyone") for s in subscribers]
        committed = await add_message(writer, [s.session_id for s in subscribers], "to everyone")
        last = max(await asyncio.wait_for(asyncio.gather(*arrivals), 30))
        print(
            f"fan-out: one statement writing to all {len(subscribers)} sessions reached the last "
            f"subscriber {1000 * (last - committed):.0f} ms after its commit"
        )
        for socket in sockets:
            await socket.close()
        await writer.close()
    finally:
        for reader in readers:
            reader.cancel()
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    with postgres_server() as server_url:
        asyncio.run(run(server_url, args))


if __name__ == "__main__":
    main()
