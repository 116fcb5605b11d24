"""Outbox delivery latency, printed (never asserted).

    python scripts/bench_delivery.py [--messages 100]

Creates its own database (BENCH_DATABASE_URL's server, else an embedded PostgreSQL) and uses
REDIS_URL (else an embedded Redis), starts `unified-sessions serve` and `unified-sessions
worker` as real processes with a Bot API stand-in in this process, links a person's Telegram
account, and sends --messages web messages one after another into their Telegram session. For
each reply it measures the time from the reply being stored (its created_at) to the stand-in
receiving the Bot API sendMessage call for it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl

import asyncpg
import httpx
import uvicorn
from arq.constants import health_check_key_suffix
from bench import postgres_server, wait_until_healthy
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from graphql_api.core.embedded import embedded_redis, free_port, with_database
from graphql_api.core.migrate import migrate
from graphql_api.core.tokens import mint_token

SECRET = "bench-" + secrets.token_hex(16)
BOT_TOKEN = "123456:bench-token"  # noqa: S105 - the stand-in's, not a secret
CHAT = 4242
SEND = "mutation($s: String!, $c: String!) { sendMessage(input: {sessionId: $s, content: $c}) { reply { content } } }"


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    with tempfile.TemporaryDirectory() as tmp, embedded_redis(Path(tmp)) as url:
        yield url


async def wait_for_worker(redis_url: str, queue: str) -> None:
    """Until the worker has written arq's health-check key for its queue (it is up)."""
    redis = Redis.from_url(redis_url)
    try:
        for _ in range(600):
            if await redis.exists(queue + health_check_key_suffix):
                return
            await asyncio.sleep(0.1)
    finally:
        await redis.aclose()


def bot_api(arrivals: dict[str, float]) -> Starlette:
    async def call(request: Request) -> JSONResponse:
        params = dict(parse_qsl((await request.body()).decode()))
        if request.path_params["method"] == "sendMessage":
            arrivals[params["text"]] = time.time()
            result: object = {
                "message_id": len(arrivals),
                "date": int(time.time()),
                "chat": {"id": CHAT, "type": "private"},
                "text": params["text"],
            }
        else:
            result = True
        return JSONResponse({"ok": True, "result": result})

    return Starlette(routes=[Route("/bot{token}/{method}", call, methods=["POST"])])


async def run(server_url: str, redis_url: str, args: argparse.Namespace) -> None:
    name = "us_bench_delivery_" + secrets.token_hex(4)
    url = with_database(server_url, name)
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    arrivals: dict[str, float] = {}
    api_port, bot_port = free_port(), free_port()
    bot_server = uvicorn.Server(
        uvicorn.Config(bot_api(arrivals), port=bot_port, log_level="warning", lifespan="off")
    )
    bot_task = asyncio.create_task(bot_server.serve())
    processes: list[subprocess.Popen[bytes]] = []
    try:
        await migrate(url)
        person = uuid.uuid4()
        conn = await asyncpg.connect(url)
        session_id = f"tg-{CHAT}-1"
        await conn.execute(
            "INSERT INTO telegram_links (telegram_user_id, user_id) VALUES ($1, $2)", CHAT, person
        )
        await conn.execute(
            "INSERT INTO chat_sessions (user_id, chat_id, session_id, channel) "
            "VALUES ($1, gen_random_uuid(), $2, 'telegram')",
            person,
            session_id,
        )
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "REDIS_URL": redis_url,
            "JWT_SECRET": SECRET,
            "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
            "TELEGRAM_API_BASE": f"http://127.0.0.1:{bot_port}",
            "WORKER_QUEUE": "bench:" + name,
        }
        command = str(Path(sys.executable).parent / "unified-sessions")
        for argv in (["serve", "--port", str(api_port)], ["worker"]):
            processes.append(
                subprocess.Popen(
                    [command, *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            )
        headers = {"Authorization": f"Bearer {mint_token(SECRET, person)}"}
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}", headers=headers, timeout=30
        ) as client:
            await wait_until_healthy(client)
            await wait_for_worker(redis_url, env["WORKER_QUEUE"])
            for n in range(args.messages):
                variables = {"s": session_id, "c": f"message {n}"}
                await client.post("/graphql", json={"query": SEND, "variables": variables})
        deadline = time.monotonic() + 30
        while len(arrivals) < args.messages and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        stored = await conn.fetch(
            "SELECT m.message->'data'->>'content' AS text, extract(epoch FROM m.created_at) AS at "
            "FROM message_deliveries d JOIN chat_message_history m ON m.id = d.message_id"
        )
        await conn.close()
        latencies = sorted(
            arrivals[r["text"]] - float(r["at"]) for r in stored if r["text"] in arrivals
        )
        if not latencies:
            print("no delivery arrived")
            return
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000
        print(
            f"{len(latencies)}/{args.messages} replies delivered; reply stored -> Bot API call: "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms (serve + worker, one process each)"
        )
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
        bot_server.should_exit = True
        await bot_task
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100)
    args = parser.parse_args()
    with postgres_server() as server_url, redis_server() as redis_url:
        asyncio.run(run(server_url, redis_url, args))


if __name__ == "__main__":
    main()
