"""The data `scripts/bench.py` measures on: 3,000,000 messages, 100,000 sessions, 2,000 people.

Kept in a database of its own (`us_bench_3m`) on the bench's PostgreSQL server and reused by
later runs: a table `bench_meta(shape)` is written last, so a generation that was interrupted
(no row, or another shape) is detected, and the database is dropped and generated again. Only
this database is ever created or dropped here.

Shape (deterministic: a seeded random generator plans every session in Python):

- 2,000 people; each session's owner is drawn skewed (u = 2000 * r**2): a few people have
  hundreds to 2,000+ sessions, most a few dozen, some fewer than a page of 50;
- 100,000 sessions over web / telegram / scheduled (70/20/10 %), `updated_at` spread over the
  last 180 days, ~3 % archived, ~10 % untitled;
- 300 busy sessions with 2,000-10,000 messages each (~1.8 M in all), the rest of the 3 M spread
  over the small ones (an exponential draw: many with a handful, some empty);
- messages alternate human / ai (LangChain JSON `{"type": ..., "data": {"content": ...}}`; 2 %
  of ai messages carry a list of text parts), 1-61 words from a vocabulary (a few characters to
  a few hundred), `created_at` increasing within each session up to its `updated_at`, `via`
  NULL (stored before doors were recorded) in a third of the sessions, else the session's
  channel, with an occasional `web` message in another channel's session.

The schema is exactly what the migrations make (`graphql_api.core.migrate.migrate`). For speed
the messages are written with triggers and foreign-key checks off (`session_replication_role =
replica`), filling `user_id` and `search_vector` exactly as the insert trigger would (the
session's owner; `us_search_vector(<search_settings.config>, message, owner)`), with three
secondary indexes dropped during the load and recreated from their own definitions afterwards,
by two connections in parallel. Then VACUUM ANALYZE (so autovacuum does not start during a
timed run).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from graphql_api.core.embedded import with_database
from graphql_api.core.migrate import migrate

DATABASE = "us_bench_3m"
MESSAGES = 3_000_000
SESSIONS = 100_000
PEOPLE = 2_000
BUSY_SESSIONS = 300
BUSY_MIN, BUSY_MAX = 2_000, 10_000
SHAPE = f"v1 messages={MESSAGES} sessions={SESSIONS} people={PEOPLE} busy={BUSY_SESSIONS}"
SEED = 14
BATCH_MESSAGES = 200_000
# Recreated after the load (from pg_indexes' own definitions): cheaper built once than kept.
DEFERRED_INDEXES = (
    "chat_message_history_session_id_id_idx",
    "chat_message_history_search_idx",
    "chat_message_history_user_created_idx",
)
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # fixed: the same plan every time

# The vocabulary of titles and messages (its order is part of the seeded plan); a string, as a
# list literal would take a line per word once formatted.
WORDS = """
the a an and or but if then so because while when where what why how which who this that
these those it its I you we they he she my your our their me us them is are was were be been
being have has had do does did can could will would should may might must shall session
message agent reply schedule telegram web channel history cursor page token report summary
weather meeting project budget invoice deadline review draft plan idea question answer
problem solution error retry timeout server database index query result morning evening
today tomorrow yesterday week month year hour minute time date please thanks hello hi okay
sure great fine good bad better best worse quick slow send read write open close start stop
run build test deploy fix check update delete find search show list tell explain remember
forget translate compare summarise travel flight hotel train ticket booking price cost order
delivery package address recipe dinner lunch breakfast coffee tea shopping groceries list
gift birthday party email call note reminder calendar event invitation contact friend family
team manager python javascript sql graphql api endpoint latency throughput cache memory cpu
disk about after before between during into over under with without from to of in on at by
one two three four five ten twenty hundred first second last next new old big small really
very quite just only also still again already almost never always often sometimes Berlin
Paris London Tokyo Lisbon Madrid Rome Vienna Prague Oslo 2025 2026 42 7 15 99
""".split()  # noqa: SIM905


@dataclass(frozen=True)
class PlannedSession:
    ord: int
    id: uuid.UUID
    user_id: uuid.UUID
    chat_id: uuid.UUID
    session_id: str
    channel: str
    agent_name: str
    is_active: bool
    created_at: datetime
    updated_at: datetime
    title: str | None
    archived_at: datetime | None
    messages: int
    step_seconds: float  # between consecutive messages
    via_mode: int  # 0: via NULL, 1: the channel, 2: the channel with some web messages


def person(index: int) -> uuid.UUID:
    return uuid.UUID(f"00000000-0000-4000-8000-{index:012x}")


def plan() -> list[PlannedSession]:
    rng = random.Random(SEED)
    busy = set(rng.sample(range(SESSIONS), BUSY_SESSIONS))
    counts = {i: rng.randint(BUSY_MIN, BUSY_MAX) for i in sorted(busy)}
    rest = MESSAGES - sum(counts.values())
    small = [i for i in range(SESSIONS) if i not in busy]
    weights = [rng.expovariate(1.0) ** 1.5 for _ in small]
    total = sum(weights)
    shares = [int(w / total * rest) for w in weights]
    for k in range(rest - sum(shares)):  # the rounding remainder, one more each
        shares[k % len(shares)] += 1
    counts.update(zip(small, shares, strict=True))
    assert sum(counts.values()) == MESSAGES
    sessions = []
    for i in range(SESSIONS):
        roll = rng.random()
        channel = "web" if roll < 0.7 else "telegram" if roll < 0.9 else "scheduled"
        chat_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        if channel == "web":
            session_id = str(chat_id)
        elif channel == "telegram":
            session_id = f"tg-{100_000_000 + i}-{rng.getrandbits(32):08x}"
        else:
            session_id = f"sched:{uuid.UUID(int=rng.getrandbits(128), version=4)}:{i}"
        updated_at = NOW - timedelta(seconds=rng.random() * 180 * 86_400)
        n = counts[i]
        step = rng.uniform(20, 60) if i in busy else rng.uniform(30, 600)
        created_at = updated_at - timedelta(seconds=step * (n + 1))
        words = rng.randint(2, 8)
        title = None if rng.random() < 0.1 else " ".join(rng.choices(WORDS, k=words))[:80]
        sessions.append(
            PlannedSession(
                ord=i,
                id=uuid.UUID(int=rng.getrandbits(128), version=4),
                user_id=person(int(PEOPLE * rng.random() ** 2)),
                chat_id=chat_id,
                session_id=session_id,
                channel=channel,
                agent_name=rng.choice(("assistant", "assistant", "default", "researcher")),
                is_active=rng.random() < 0.8,
                created_at=created_at,
                updated_at=updated_at,
                title=title,
                archived_at=updated_at + timedelta(hours=1) if rng.random() < 0.03 else None,
                messages=n,
                step_seconds=step,
                via_mode=rng.choice((0, 1, 1, 2, 2, 2)) if channel != "web" else rng.choice((0, 1)),
            )
        )
    return sessions


_MESSAGES = """
INSERT INTO chat_message_history (session_id, message, created_at, via, user_id, search_vector)
SELECT g.session_id, g.message, g.created_at, g.via, g.user_id,
       us_search_vector($3::regconfig, g.message, g.user_id)
  FROM (
        SELECT p.session_id, p.user_id,
               p.updated_at - make_interval(secs => (p.n - j) * p.step) AS created_at,
               CASE p.via_mode WHEN 0 THEN NULL WHEN 1 THEN p.channel
                    ELSE CASE WHEN j % 10 = 3 THEN 'web' ELSE p.channel END END AS via,
               CASE WHEN j % 2 = 1
                    THEN jsonb_build_object('type', 'human', 'data',
                                            jsonb_build_object('content', t.txt))
                    WHEN (j + p.ord) % 100 = 0
                    THEN jsonb_build_object('type', 'ai', 'data', jsonb_build_object('content',
                             jsonb_build_array(jsonb_build_object('type', 'text', 'text', t.txt),
                                               jsonb_build_object('type', 'text', 'text', '.'))))
                    ELSE jsonb_build_object('type', 'ai', 'data',
                                            jsonb_build_object('content', t.txt))
               END AS message
          FROM bench_plan p
         CROSS JOIN LATERAL generate_series(1, p.n) AS j
         CROSS JOIN LATERAL (
               SELECT string_agg(($4::text[])[1 + floor(random() * $5)::int], ' ') AS txt
                 FROM generate_series(1, 1 + floor(60 * power(random(), 2.5))::int + 0 * j)
         ) AS t
         WHERE p.ord BETWEEN $1 AND $2
         ORDER BY p.ord, j
  ) g
"""


async def _load_messages(url: str, batches: asyncio.Queue[tuple[int, int]], config: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("SET work_mem = '256MB'")
        while not batches.empty():
            low, high = batches.get_nowait()
            await conn.execute(_MESSAGES, low, high, config, list(WORDS), len(WORDS))
            print(f"  sessions {low:,}-{high:,} written", flush=True)
    finally:
        await conn.close()


async def generate(url: str) -> None:
    """Fill the (migrated, empty) database at `url` with the planned shape."""
    sessions = plan()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.copy_records_to_table(
            "chat_sessions",
            records=[
                (
                    s.id,
                    s.user_id,
                    s.chat_id,
                    s.session_id,
                    s.channel,
                    s.agent_name,
                    s.is_active,
                    s.created_at,
                    s.updated_at,
                    s.title,
                    s.archived_at,
                )
                for s in sessions
            ],
            columns=[
                "id",
                "user_id",
                "chat_id",
                "session_id",
                "channel",
                "agent_name",
                "is_active",
                "created_at",
                "updated_at",
                "title",
                "archived_at",
            ],
        )
        # The plan, for the message statement; dropped at the end (not part of the schema).
        await conn.execute(
            "CREATE UNLOGGED TABLE bench_plan (ord int, session_id text, user_id uuid, "
            "channel text, updated_at timestamptz, n int, step float8, via_mode int)"
        )
        await conn.copy_records_to_table(
            "bench_plan",
            records=[
                (
                    s.ord,
                    s.session_id,
                    s.user_id,
                    s.channel,
                    s.updated_at,
                    s.messages,
                    s.step_seconds,
                    s.via_mode,
                )
                for s in sessions
            ],
        )
        config = await conn.fetchval("SELECT config FROM search_settings")
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY($1::text[])",
            list(DEFERRED_INDEXES),
        )
        assert len(indexes) == len(DEFERRED_INDEXES), indexes
        for index in indexes:
            await conn.execute(f'DROP INDEX "{index["indexname"]}"')
        batches: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
        low = written = 0
        for s in sessions:
            written += s.messages
            if written >= BATCH_MESSAGES or s.ord == SESSIONS - 1:
                batches.put_nowait((low, s.ord))
                low, written = s.ord + 1, 0
        start = time.perf_counter()
        await asyncio.gather(*(_load_messages(url, batches, config) for _ in range(2)))
        print(f"  messages written in {time.perf_counter() - start:.0f} s", flush=True)
        await conn.execute("DROP TABLE bench_plan")
        await conn.execute("SET session_replication_role = origin")
        start = time.perf_counter()
        await asyncio.gather(*(_create_index(url, index["indexdef"]) for index in indexes))
        print(f"  indexes rebuilt in {time.perf_counter() - start:.0f} s", flush=True)
        start = time.perf_counter()
        await asyncio.gather(
            *(
                _vacuum(url, table)
                for table in ("chat_message_history", "chat_sessions", "search_settings")
            )
        )
        print(f"  VACUUM ANALYZE in {time.perf_counter() - start:.0f} s", flush=True)
    finally:
        await conn.close()


async def _create_index(url: str, definition: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET maintenance_work_mem = '1GB'")
        await conn.execute(definition)
    finally:
        await conn.close()


async def _vacuum(url: str, table: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"VACUUM (ANALYZE) {table}")
    finally:
        await conn.close()


async def _is_complete(url: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        if await conn.fetchval("SELECT to_regclass('bench_meta')") is None:
            return False
        return bool(await conn.fetchval("SELECT shape = $1 FROM bench_meta", SHAPE))
    finally:
        await conn.close()


async def ensure_data(server_url: str) -> tuple[str, float | None]:
    """The bench database's URL, generating it first unless a complete one exists; and the
    generation's duration in seconds (None: reused)."""
    url = with_database(server_url, DATABASE)
    admin = await asyncpg.connect(server_url)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE)
        if exists and await _is_complete(url):
            return url, None
        if exists:
            print(f"{DATABASE} is incomplete or of another shape: generating it again")
            await admin.execute(f'DROP DATABASE "{DATABASE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await admin.close()
    print(f"generating {DATABASE}: {SHAPE}", flush=True)
    start = time.perf_counter()
    await migrate(url)
    await generate(url)
    seconds = time.perf_counter() - start
    conn = await asyncpg.connect(url)
    try:  # last: marks the database complete
        await conn.execute(
            "CREATE TABLE bench_meta (shape text NOT NULL, generated_seconds float8 NOT NULL, "
            "generated_at timestamptz NOT NULL DEFAULT now()); "
            "INSERT INTO bench_meta (shape, generated_seconds) VALUES "
            f"('{SHAPE}', {seconds:.1f})"
        )
    finally:
        await conn.close()
    print(f"generated in {seconds:.0f} s", flush=True)
    return url, seconds


# What the bench reads: the two tables, their TOAST and their B-tree indexes (not the search
# indexes, the largest part of the database).
_READ_BY_THE_BENCH = """
SELECT c.oid::regclass::text, c.relkind = 'r'
  FROM pg_class c
 WHERE c.oid = ANY($1::regclass[])
    OR c.oid IN (SELECT reltoastrelid FROM pg_class WHERE oid = ANY($1::regclass[]))
    OR c.oid IN (SELECT i.indexrelid FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                  JOIN pg_am am ON am.oid = ic.relam
                 WHERE i.indrelid = ANY($1::regclass[]) AND am.amname = 'btree')
"""


async def warm(url: str) -> str:
    """Read what the bench queries into the OS cache, so that a run after the cache was dropped
    (a reboot, memory pressure) measures the servers, not the disk: on this machine a cold
    cache cut both servers to ~50 req/s with PostgreSQL waiting on DataFileRead. pg_prewarm
    (contrib) where it can be created, else a scan of each table (its indexes stay cold)."""
    conn = await asyncpg.connect(url)
    start = time.perf_counter()
    try:
        relations = await conn.fetch(_READ_BY_THE_BENCH, ["chat_sessions", "chat_message_history"])
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        except asyncpg.PostgresError:
            for name, is_table in relations:
                if is_table:
                    await conn.fetchval(f"SELECT count(*) FROM {name}")
            how = "tables scanned (no pg_prewarm: indexes not warmed)"
        else:
            for name, _ in relations:
                await conn.fetchval("SELECT pg_prewarm($1::regclass, 'read')", name)
            how = f"{len(relations)} relations read with pg_prewarm"
    finally:
        await conn.close()
    return f"{how} in {time.perf_counter() - start:.0f} s"


async def generation_seconds(url: str) -> float | None:
    conn = await asyncpg.connect(url)
    try:
        value = await conn.fetchval("SELECT generated_seconds FROM bench_meta")
        return float(value) if value is not None else None
    finally:
        await conn.close()
