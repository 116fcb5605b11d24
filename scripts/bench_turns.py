"""Concurrent turns on one API process, printed (never asserted).

    python scripts/bench_turns.py [--turns 1000] [--pool 20] [--agent-seconds 2]

Starts `unified-sessions serve` with DB_POOL_MAX=--pool and the echo agent slowed down so each
reply takes about --agent-seconds, sends --turns `sendMessage` requests at once (each starts its
own session), and prints how long they took and how many succeeded. With a connection held per
turn the pool would bound them: 1,000 two-second turns on 20 connections would take 100 s.
"""

from __future__ import annotations

import argparse
import asyncio
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

from graphql_api.core.embedded import free_port, with_database
from graphql_api.core.migrate import migrate
from graphql_api.core.tokens import mint_token

SECRET = "bench-" + secrets.token_hex(16)
SEND = "mutation($c: String!) { sendMessage(input: {content: $c}) { reply { content } } }"
ECHO_WORDS = 9  # the echo agent's reply to "turn N": "[assistant] You said: turn N (message 1 ...)"


async def run(server_url: str, args: argparse.Namespace) -> None:
    name = "us_bench_turns_" + secrets.token_hex(4)
    url = with_database(server_url, name)
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    port = free_port()
    process = None
    try:
        await migrate(url)
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "JWT_SECRET": SECRET,
            "DB_POOL_MAX": str(args.pool),
            "ECHO_WORD_DELAY": str(args.agent_seconds / ECHO_WORDS),
        }
        env.pop("REDIS_URL", None)
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "unified-sessions"), "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        token = mint_token(SECRET, uuid.uuid4())
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {token}"},
            limits=httpx.Limits(max_connections=args.turns),
            timeout=300,
        ) as client:
            await wait_until_healthy(client)

            async def one(n: int) -> bool:
                answer = await client.post(
                    "/graphql", json={"query": SEND, "variables": {"c": f"turn {n}"}}
                )
                body = answer.json()
                return not body.get("errors") and body["data"]["sendMessage"]["reply"] is not None

            started = time.perf_counter()
            done = await asyncio.gather(*(one(n) for n in range(args.turns)))
            elapsed = time.perf_counter() - started
        print(
            f"{sum(done)}/{args.turns} turns (new sessions, a ~{args.agent_seconds:g} s agent) "
            f"completed in {elapsed:.1f} s on one API process with DB_POOL_MAX={args.pool}"
        )
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--pool", type=int, default=20)
    parser.add_argument("--agent-seconds", type=float, default=2.0)
    args = parser.parse_args()
    with postgres_server() as server_url:
        asyncio.run(run(server_url, args))


if __name__ == "__main__":
    main()
