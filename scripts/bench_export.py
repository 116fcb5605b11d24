"""The export rate of `GET /export/all.jsonl`, printed (never asserted).

    python scripts/bench_export.py [--messages 200000] [--sessions 500]

Creates its own database (on BENCH_DATABASE_URL's server, else an embedded PostgreSQL), gives
one person --messages messages over --sessions sessions (and as many to someone else, who must
not appear), starts `unified-sessions serve`, streams the person's all.jsonl over HTTP and prints
messages per second, bytes per second and the server's peak resident memory growth.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
from bench import postgres_server, wait_until_healthy
from bench_live import resident_kib

from graphql_api.core.embedded import free_port, with_database
from graphql_api.core.migrate import migrate
from graphql_api.core.tokens import mint_token

SECRET = "bench-" + secrets.token_hex(16)


async def seed(conn: asyncpg.Connection, owner: uuid.UUID, sessions: int, messages: int) -> None:
    await conn.execute(
        "INSERT INTO chat_sessions (user_id, chat_id, session_id, channel) "
        "SELECT $1, gen_random_uuid(), $2 || n, 'web' FROM generate_series(1, $3) AS n",
        owner,
        f"export-{owner}-",
        sessions,
    )
    await conn.execute(
        "INSERT INTO chat_message_history (session_id, message) "
        "SELECT $1 || (1 + n % $2), jsonb_build_object('type', "
        "CASE WHEN n % 2 = 0 THEN 'human' ELSE 'ai' END, 'data', "
        "jsonb_build_object('content', 'message number ' || n || ' of the export benchmark'))"
        "  FROM generate_series(1, $3) AS n",
        f"export-{owner}-",
        sessions,
        messages,
    )


async def run(server_url: str, args: argparse.Namespace) -> None:
    name = "us_bench_export_" + secrets.token_hex(4)
    url = with_database(server_url, name)
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    process = None
    try:
        await migrate(url)
        person, other = uuid.uuid4(), uuid.uuid4()
        conn = await asyncpg.connect(url)
        try:
            for owner in (person, other):
                await seed(conn, owner, args.sessions, args.messages)
            await conn.execute("ANALYZE")
        finally:
            await conn.close()
        port = free_port()
        env = {**os.environ, "DATABASE_URL": url, "JWT_SECRET": SECRET}
        env.pop("REDIS_URL", None)
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "unified-sessions"), "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        headers = {"Authorization": f"Bearer {mint_token(SECRET, person)}"}
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=600
        ) as client:
            await wait_until_healthy(client)
            before = resident_kib(process.pid)
            peak, lines, size = before, 0, 0
            started = time.perf_counter()
            async with client.stream("GET", "/export/all.jsonl") as response:
                response.raise_for_status()
                async for line in response.aiter_lines():
                    if not line:
                        continue
                    lines += 1
                    size += len(line) + 1
                    if lines == 1:
                        json.loads(line)  # it is JSON
                    if lines % 20_000 == 0:
                        peak = max(peak, resident_kib(process.pid))
            elapsed = time.perf_counter() - started
        print(
            f"all.jsonl: {lines:,} lines ({args.messages:,} messages in {args.sessions} sessions) "
            f"in {elapsed:.1f} s = {lines / elapsed:,.0f} messages/s, "
            f"{size / elapsed / 2**20:.1f} MiB/s; server memory grew {(peak - before) / 1024:.1f} MiB"
        )
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--sessions", type=int, default=500)
    args = parser.parse_args()
    with postgres_server() as server_url:
        asyncio.run(run(server_url, args))


if __name__ == "__main__":
    main()
