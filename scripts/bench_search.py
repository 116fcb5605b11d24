"""Search speed at millions of messages, printed (never asserted).

    python scripts/bench_search.py [--messages 3000000] [--people 2000] [--repeat 200]

Creates its own database (on BENCH_DATABASE_URL's server, else an embedded PostgreSQL), applies
the migrations and generates `--messages` messages with generate_series: 10% of them belong to
one person (the searcher, in 200 sessions), the rest to `--people` others. Each message is eight
words drawn from a 5,000-word vocabulary with a skewed distribution (word 1 is common, word
4,999 rare). Rows are written with triggers off and the search indexes dropped, then the indexes
are rebuilt (as the migration defines them) and the table analysed. It then times the core
search function (graphql_api.core.search.search_messages: the statement the GraphQL `search`
field runs, without HTTP) for a few kinds of query, one page of 50 hits, and prints p50/p99.
The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

from graphql_api.core.db import create_pool
from graphql_api.core.embedded import embedded_postgres, with_database
from graphql_api.core.migrate import migrate
from graphql_api.core.search import SearchFilter, search_messages

SEARCHER = uuid.UUID("00000000-0000-4000-8000-00000000be00")
BATCH = 250_000
QUERIES = {
    "rare word": "w4990",
    "medium word": "w300",
    "common word": "w2",
    "two words": "w40 w41",
    '"phrase"': '"w3 w4"',
    "word -excluded": "w50 -w2",
    "a or b": "w800 or w801",
    "no match": "nothingmatches",
}

_GENERATE = """
INSERT INTO chat_message_history (session_id, message, created_at, user_id, search_vector)
SELECT g.session_id, g.message, g.created_at, g.owner,
       us_search_vector('english', g.message, g.owner)
  FROM (
        SELECT s.session_id, s.user_id AS owner,
               jsonb_build_object('type', 'human', 'data', jsonb_build_object('content', (
                   SELECT string_agg('w' || floor(5000 * power(random(), 3))::int, ' ')
                     FROM generate_series(1, 8) AS w WHERE i IS NOT NULL))) AS message,
               now() - make_interval(secs => i) AS created_at
          FROM generate_series($1::bigint, $2::bigint) AS i
          JOIN chat_sessions s ON s.session_id = CASE WHEN i % 10 = 0
               THEN 'mine-' || (i / 10) % 200 ELSE 'theirs-' || i % $3 END
  ) g
"""


@contextlib.asynccontextmanager
async def bench_database() -> AsyncIterator[str]:
    with contextlib.ExitStack() as stack:
        server = os.environ.get("BENCH_DATABASE_URL")
        if not server:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="us-bench-pg-"))
            server = stack.enter_context(embedded_postgres(Path(tmp), delete=True))
        name = "us_bench_" + secrets.token_hex(4)
        admin = await asyncpg.connect(server)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield with_database(server, name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


async def generate(url: str, messages: int, people: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET maintenance_work_mem = '512MB'")
        sessions = people * 10
        await conn.execute(
            "INSERT INTO chat_sessions (user_id, chat_id, session_id) "
            "SELECT $1, gen_random_uuid(), 'mine-' || i FROM generate_series(0, 199) i",
            SEARCHER,
        )
        await conn.execute(
            "INSERT INTO chat_sessions (user_id, chat_id, session_id) "
            "SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(i / 10), 12, '0'))::uuid, "
            "gen_random_uuid(), 'theirs-' || i FROM generate_series(0, $1 - 1) i",
            sessions,
        )
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexname IN "
            "('chat_message_history_search_idx', 'chat_message_history_user_created_idx')"
        )
        for index in indexes:
            await conn.execute(f'DROP INDEX "{index["indexname"]}"')
        await conn.execute("SET session_replication_role = replica")  # no triggers: fast
        start = time.perf_counter()
        for low in range(1, messages + 1, BATCH):
            high = min(low + BATCH - 1, messages)
            await conn.execute(_GENERATE, low, high, sessions)
            print(f"  {high:,} messages, {time.perf_counter() - start:.0f} s", flush=True)
        await conn.execute("SET session_replication_role = origin")
        for index in indexes:
            await conn.execute(index["indexdef"])
        await conn.execute("ANALYZE chat_message_history")
        await conn.execute("ANALYZE chat_sessions")
        print(f"  generated and indexed in {time.perf_counter() - start:.0f} s", flush=True)
    finally:
        await conn.close()


async def measure(url: str, repeat: int) -> None:
    pool = await create_pool(url, min_size=1, max_size=2)
    try:
        print(f"{'query':<18} {'hits':>5} {'p50 ms':>8} {'p99 ms':>8}")
        for label, query in QUERIES.items():
            spec = SearchFilter(query)
            hits = await search_messages(pool, SEARCHER, spec, config="english", limit=50)
            timings = []
            for _ in range(repeat):
                start = time.perf_counter()
                await search_messages(pool, SEARCHER, spec, config="english", limit=50)
                timings.append((time.perf_counter() - start) * 1000)
            p99 = statistics.quantiles(timings, n=100)[98]
            print(f"{label:<18} {len(hits):>5} {statistics.median(timings):>8.2f} {p99:>8.2f}")
    finally:
        await pool.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3_000_000)
    parser.add_argument("--people", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    async with bench_database() as url:
        await migrate(url)
        print(f"generating {args.messages:,} messages ({args.messages // 10:,} of the searcher)")
        await generate(url, args.messages, args.people)
        await measure(url, args.repeat)


if __name__ == "__main__":
    asyncio.run(main())
