"""Search in the database: the migration's backfill, owners kept by triggers, the language check,
and the plan at 200,000 messages of one person among others."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from graphql_api.core import search
from graphql_api.core.migrate import migrate
from graphql_api.core.settings import SettingsError
from tests.conftest import DatabaseFactory

BEFORE_SEARCH = "20250111000000"
SEARCH = "20250112000000"  # later ones refuse messages of no session (a foreign key)
OWNER = uuid.UUID("00000000-0000-4000-8000-0000000000a1")


def _message(text: str) -> dict[str, Any]:
    return {"type": "human", "data": {"type": "human", "content": text}}


async def _open(url: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(url)
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    return conn


async def _connect(databases: DatabaseFactory, *, until: str | None = None) -> asyncpg.Connection:
    url = await databases.create()
    await migrate(url, until=until)
    return await _open(url)


async def _session(conn: asyncpg.Connection, session_id: str, owner: uuid.UUID) -> None:
    await conn.execute(
        "INSERT INTO chat_sessions (user_id, chat_id, session_id) VALUES ($1, gen_random_uuid(), $2)",
        owner,
        session_id,
    )


async def test_migration_backfills_owner_and_vector(databases: DatabaseFactory) -> None:
    url = await databases.create()
    await migrate(url, until=BEFORE_SEARCH)
    conn = await _open(url)
    try:
        await _session(conn, "old-session", OWNER)
        await conn.execute(
            "INSERT INTO chat_message_history (session_id, message) VALUES "
            "('old-session', $1), ('no-session', $2)",
            _message("swimming lessons"),
            _message("lost message"),
        )
        await migrate(url, until=SEARCH)
        rows = await conn.fetch(
            "SELECT session_id, user_id, search_vector FROM chat_message_history ORDER BY id"
        )
        assert rows[0]["user_id"] == OWNER
        assert (
            "'swim'" in rows[0]["search_vector"] and f"'owner {OWNER}'" in rows[0]["search_vector"]
        )
        assert rows[1]["user_id"] is None and "owner" not in rows[1]["search_vector"]
        hits = await search.search_messages(
            conn, OWNER, search.SearchFilter("swim"), config="english", limit=10
        )
        assert [h.message.content for h in hits] == ["swimming lessons"]
    finally:
        await conn.close()


async def test_trigger_sets_the_sessions_owner_whatever_the_insert_says(
    databases: DatabaseFactory,
) -> None:
    conn = await _connect(databases, until=SEARCH)
    try:
        await _session(conn, "mine", OWNER)
        someone = uuid.uuid4()
        await conn.execute(
            "INSERT INTO chat_message_history (session_id, message, user_id) VALUES ($1, $2, $3)",
            "mine",
            _message("forged owner"),
            someone,
        )
        assert await conn.fetchval("SELECT user_id FROM chat_message_history") == OWNER
        # A message stored before its session exists is owned once the session is created.
        await conn.execute(
            "INSERT INTO chat_message_history (session_id, message) VALUES ('later', $1)",
            _message("early bird"),
        )
        assert (
            await search.search_messages(
                conn, someone, search.SearchFilter("bird"), config="english", limit=10
            )
            == []
        )
        await _session(conn, "later", someone)
        hits = await search.search_messages(
            conn, someone, search.SearchFilter("bird"), config="english", limit=10
        )
        assert [h.message.session_id for h in hits] == ["later"]
    finally:
        await conn.close()


async def test_language_is_checked_against_the_index(databases: DatabaseFactory) -> None:
    conn = await _connect(databases)
    try:
        await search.check_language(conn, "english")
        await search.check_language(conn, "pg_catalog.english")
        with pytest.raises(SettingsError, match="us_search_reconfigure"):
            await search.check_language(conn, "german")
        with pytest.raises(SettingsError, match="no text-search configuration"):
            await search.check_language(conn, "klingon")
        await _session(conn, "de", OWNER)
        await conn.execute(
            "INSERT INTO chat_message_history (session_id, message) VALUES ('de', $1)",
            _message("Die Häuser sind groß"),
        )
        await conn.execute("SELECT us_search_reconfigure('german')")
        await search.check_language(conn, "german")
        hits = await search.search_messages(
            conn, OWNER, search.SearchFilter("Haus"), config="german", limit=10
        )
        assert len(hits) == 1
    finally:
        await conn.close()


_GENERATE = """
INSERT INTO chat_message_history (session_id, message, created_at)
SELECT $1 || (i % $3), jsonb_build_object('type', 'human', 'data', jsonb_build_object(
         'content', 'note ' || i || ' about topic' || (i % 500)
                    || CASE WHEN i % 20000 = 0 THEN ' aardvark' ELSE '' END
                    || ' hello world')),
       now() - make_interval(secs => i)
  FROM generate_series(1, $2) AS i
"""


@pytest.fixture(scope="module")
async def plan_db(databases: DatabaseFactory) -> AsyncIterator[asyncpg.Connection]:
    """200,000 messages of OWNER in 200 sessions and 100,000 of 50 other people."""
    conn = await _connect(databases)
    await conn.execute(
        "INSERT INTO chat_sessions (user_id, chat_id, session_id) "
        "SELECT $1, gen_random_uuid(), 'mine-' || i FROM generate_series(0, 199) i",
        OWNER,
    )
    await conn.execute(
        "INSERT INTO chat_sessions (user_id, chat_id, session_id) "
        "SELECT gen_random_uuid(), gen_random_uuid(), 'theirs-' || i FROM generate_series(0, 49) i"
    )
    await conn.execute(_GENERATE, "mine-", 200_000, 200)
    await conn.execute(_GENERATE, "theirs-", 100_000, 50)
    await conn.execute("ANALYZE chat_message_history")
    await conn.execute("ANALYZE chat_sessions")
    yield conn
    await conn.close()


@pytest.mark.parametrize("query", ["aardvark", "topic7", "hello", "hello -topic7"])
async def test_plan_is_an_index_scan_at_200000_messages(
    plan_db: asyncpg.Connection, query: str
) -> None:
    sql, args = search._search_sql(search.SearchFilter(query), None)
    args[-1] = 51
    plan = "\n".join(
        r[0] for r in await plan_db.fetch("EXPLAIN " + sql, "english", query, OWNER, *args)
    )
    assert "Seq Scan on chat_message_history" not in plan, plan
    assert (
        "chat_message_history_search_idx" in plan or "chat_message_history_user_created_idx" in plan
    ), plan
    hits = await search.search_messages(
        plan_db, OWNER, search.SearchFilter(query), config="english", limit=50
    )
    assert hits and all(h.message.session_id.startswith("mine-") for h in hits)
