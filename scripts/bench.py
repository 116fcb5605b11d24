"""Speed figures for the GraphQL API, printed (never asserted).

    python scripts/bench.py [--requests 400] [--concurrency 8]

Creates its own database (on BENCH_DATABASE_URL's server, else an embedded PostgreSQL), seeds a
person with 1,000 sessions and one 200,000-message session among 20,000 sessions of other people,
starts `unified-sessions serve` as a real process, and measures request latency over HTTP.
The database is dropped at the end.
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

import asyncpg
import httpx

from graphql_api.core.embedded import embedded_postgres, free_port, with_database
from graphql_api.core.migrate import migrate
from graphql_api.core.tokens import mint_token
from graphql_api.schema.types import message_cursor

SECRET = "bench-" + secrets.token_hex(16)
SCENARIOS = {
    "sessions(first:50) + lastMessage + messages(last:3)": (
        "{ sessions(first: 50) { edges { node { sessionId lastMessage { content } "
        "messages(last: 3) { edges { node { content } } } } } } }",
        None,
    ),
    "messages(last:50), newest page of 200k": (
        "query($s: String!) { messages(sessionId: $s, last: 50) { edges { cursor node { content } } } }",
        "big",
    ),
    "messages(last:50, before: middle of 200k)": (
        "query($s: String!, $b: String) { messages(sessionId: $s, last: 50, before: $b) "
        "{ edges { node { content } } } }",
        "deep",
    ),
    "sendMessage (echo agent)": (
        'mutation($s: String) { sendMessage(input: {sessionId: $s, content: "hi"}) '
        "{ reply { content } } }",
        "web",
    ),
}


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    if url := os.environ.get("BENCH_DATABASE_URL"):
        yield url
        return
    with (
        tempfile.TemporaryDirectory() as tmp,
        embedded_postgres(Path(tmp) / "pg", delete=True) as url,
    ):
        yield url


async def wait_until_healthy(client: httpx.AsyncClient, tries: int = 300) -> None:
    """Until the server under test answers /healthz (it may still be importing)."""
    for _ in range(tries):
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get("/healthz")).status_code == 200:
                return
        await asyncio.sleep(0.1)


async def seed(url: str, person: uuid.UUID) -> dict[str, str]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """
            INSERT INTO chat_sessions (user_id, chat_id, session_id, channel, updated_at)
            SELECT gen_random_uuid(), gen_random_uuid(), 'other-' || n,
                   (ARRAY['web','telegram','scheduled'])[1 + n % 3], now() - n * interval '1 s'
              FROM generate_series(1, 20000) n;
            INSERT INTO chat_sessions (user_id, chat_id, session_id, channel, updated_at)
            SELECT $1::uuid, gen_random_uuid(), 'mine-' || n,
                   (ARRAY['web','telegram','scheduled'])[1 + n % 3], now() - n * interval '1 s'
              FROM generate_series(1, 1000) n;
            INSERT INTO chat_message_history (session_id, message)
            SELECT 'mine-' || s, jsonb_build_object('type', 'human',
                   'data', jsonb_build_object('content', 'message ' || m))
              FROM generate_series(1, 1000) s, generate_series(1, 5) m;
            INSERT INTO chat_message_history (session_id, message)
            SELECT 'mine-1', jsonb_build_object('type', CASE WHEN n % 2 = 0 THEN 'human' ELSE 'ai' END,
                   'data', jsonb_build_object('content', 'message ' || n))
              FROM generate_series(1, 200000) n;
            ANALYZE;
            """.replace("$1::uuid", f"'{person}'::uuid")
        )
        middle = await conn.fetchval(
            "SELECT id FROM chat_message_history WHERE session_id = 'mine-1' "
            "ORDER BY id OFFSET 100000 LIMIT 1"  # setup only, not the API
        )
    finally:
        await conn.close()
    return {"big": "mine-1", "deep": message_cursor("mine-1", middle), "web": "mine-3"}


async def measure(
    client: httpx.AsyncClient, query: str, variables: dict | None, requests: int, concurrency: int
) -> tuple[list[float], float]:
    latencies: list[float] = []
    queue = asyncio.Queue[int]()
    for n in range(requests):
        queue.put_nowait(n)

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            start = time.perf_counter()
            response = await client.post("/graphql", json={"query": query, "variables": variables})
            latencies.append(time.perf_counter() - start)
            body = response.json()
            if body.get("errors"):
                raise RuntimeError(body["errors"])

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


async def run(server_url: str, args: argparse.Namespace) -> None:
    name = "us_bench_" + secrets.token_hex(4)
    url = with_database(server_url, name)
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    port = free_port()
    process = None
    try:
        await migrate(url)
        person = uuid.uuid4()
        t = time.perf_counter()
        ids = await seed(url, person)
        print(f"seeded 21,000 sessions and 205,000 messages in {time.perf_counter() - t:.1f}s")
        env = {**os.environ, "DATABASE_URL": url, "JWT_SECRET": SECRET, "AGENT_BACKEND": "echo"}
        env.pop("REDIS_URL", None)
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "unified-sessions"), "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        token = mint_token(SECRET, person)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ) as client:
            await wait_until_healthy(client)
            print(
                f"\n{args.requests} requests each, {args.concurrency} concurrent, one server process"
            )
            print(f"{'scenario':55} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>8}")
            for name, (query, var) in SCENARIOS.items():
                variables = None
                if var == "big":
                    variables = {"s": ids["big"]}
                elif var == "deep":
                    variables = {"s": ids["big"], "b": ids["deep"]}
                elif var == "web":
                    variables = {"s": None}
                await measure(client, query, variables, 20, 2)  # warm-up
                latencies, elapsed = await measure(
                    client, query, variables, args.requests, args.concurrency
                )
                latencies.sort()
                p50 = statistics.median(latencies) * 1000
                p95 = latencies[int(len(latencies) * 0.95) - 1] * 1000
                print(f"{name:55} {p50:8.1f} {p95:8.1f} {args.requests / elapsed:8.0f}")
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with postgres_server() as server_url:
        asyncio.run(run(server_url, args))


if __name__ == "__main__":
    main()
