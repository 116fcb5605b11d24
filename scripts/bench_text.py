"""The compiled path's own CPU per session list, by the script of the messages' text. Printed,
never asserted.

    python scripts/bench_text.py [--runs 2000] [--rounds 5]

Creates its own database (on BENCH_DATABASE_URL's server, else an embedded PostgreSQL), gives
two people 50 Telegram sessions each, every message ~200 characters: one person's in English,
the other's in Russian. Then runs the bench's Q2 plan (graphql_api.compiled) in this process,
--runs times per round and person, the two taking turns, and prints this process's CPU per run
(time.process_time: the bound variables, asyncpg's round trip, the response body), the
response's size and the median round. PostgreSQL's own time is not in it.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time
import uuid

import asyncpg
from bench import Q2, postgres_server
from graphql import parse

from graphql_api.compiled.plan import Plan, compile_plan
from graphql_api.core.db import create_pool
from graphql_api.core.embedded import with_database
from graphql_api.core.migrate import migrate

SESSIONS = 50
TEXTS = {
    "English": "Hello! This is a longer message about the weather, plans and the day ahead. " * 3,
    "Russian": "Привет! Это длинное сообщение о погоде, планах и делах на завтрашний день. " * 3,  # noqa: RUF001 (Russian on purpose)
}


async def seed(conn: asyncpg.Connection, owner: uuid.UUID, text: str) -> None:
    prefix = f"text-{owner}-"
    await conn.execute(
        "INSERT INTO chat_sessions (user_id, chat_id, session_id, channel) "
        "SELECT $1, gen_random_uuid(), $2 || n, $3 FROM generate_series(1, $4) AS n",
        owner,
        prefix,
        "telegram",
        SESSIONS,
    )
    await conn.execute(
        "INSERT INTO chat_message_history (session_id, message) "
        "SELECT $1 || (1 + n % $2), jsonb_build_object('type', "
        "CASE WHEN n % 2 = 0 THEN 'human' ELSE 'ai' END, 'data', jsonb_build_object('content', $3::text))"
        "  FROM generate_series(1, $2 * 2) AS n",
        prefix,
        SESSIONS,
        text,
    )


async def cpu_per_run(plan: Plan, pool: asyncpg.Pool, viewer: uuid.UUID, runs: int) -> float:
    started = time.process_time()
    for _ in range(runs):
        await plan.run(pool, viewer, {"first": SESSIONS})
    return (time.process_time() - started) / runs * 1e6


async def run(server_url: str, args: argparse.Namespace) -> None:
    name = "us_bench_text_" + secrets.token_hex(4)
    url = with_database(server_url, name)
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        await migrate(url)
        people = {script: uuid.uuid4() for script in TEXTS}
        conn = await asyncpg.connect(url)
        try:
            for script, text in TEXTS.items():
                await seed(conn, people[script], text)
            await conn.execute("ANALYZE")
        finally:
            await conn.close()
        plan = compile_plan(parse(Q2), None, ("web", "telegram", "scheduled"))
        pool = await create_pool(url, min_size=1, max_size=1)
        try:
            rounds: dict[str, list[float]] = {script: [] for script in TEXTS}
            for script, viewer in people.items():
                size = len(await plan.run(pool, viewer, {"first": SESSIONS}))
                print(f"{script}: a response of {size:,} bytes")
            for index in range(args.rounds):
                order = list(people.items())
                for script, viewer in order if index % 2 == 0 else order[::-1]:
                    rounds[script].append(await cpu_per_run(plan, pool, viewer, args.runs))
            for script, figures in rounds.items():
                shown = " ".join(f"{f:.0f}" for f in figures)
                print(f"{script}: {statistics.median(figures):.0f} us per run (rounds {shown})")
        finally:
            await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with postgres_server() as server_url:
        asyncio.run(run(server_url, args))


if __name__ == "__main__":
    main()
