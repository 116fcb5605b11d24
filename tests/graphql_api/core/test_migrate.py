"""Migrations against a real PostgreSQL: the catalog, the backfill, idempotence and locking."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from graphql_api.core.migrate import MIGRATIONS_DIR, MigrationError, discover, migrate
from tests.conftest import DatabaseFactory

BASELINE = "20250101000000"


async def _fetch(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def test_fresh_database_has_the_spec_columns_check_and_indexes(
    databases: DatabaseFactory,
) -> None:
    url = await databases.create()
    applied = await migrate(url)
    assert applied == [m.version for m in discover()]

    columns = {
        r["column_name"]: r
        for r in await _fetch(
            url,
            "SELECT column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_name = 'chat_sessions'",
        )
    }
    assert columns["channel"]["data_type"] == "text"
    assert columns["channel"]["is_nullable"] == "NO"
    assert columns["channel"]["column_default"].startswith("'web'")
    assert columns["session_id"]["data_type"] == "text"
    for name in ("id", "user_id", "chat_id", "agent_name", "is_active", "created_at", "updated_at"):
        assert name in columns

    [check] = await _fetch(
        url,
        "SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint "
        "WHERE conrelid = 'chat_sessions'::regclass AND contype = 'c'",
    )
    for channel in ("web", "telegram", "scheduled"):
        assert f"'{channel}'" in check["def"]

    indexes = {
        r["indexname"]: r["indexdef"]
        for r in await _fetch(
            url,
            "SELECT indexname, indexdef FROM pg_indexes "
            "WHERE tablename IN ('chat_sessions', 'chat_message_history')",
        )
    }
    unique = indexes["chat_sessions_session_id_key"]
    assert "UNIQUE" in unique and "(session_id)" in unique
    assert "WHERE (session_id IS NOT NULL)" in unique
    assert (
        "(user_id, channel, created_at DESC)" in indexes["chat_sessions_user_channel_created_idx"]
    )
    assert "(session_id, id)" in indexes["chat_message_history_session_id_id_idx"]
    assert "(user_id, updated_at DESC, id DESC)" in indexes["chat_sessions_user_updated_idx"]


async def test_backfill_turns_legacy_rows_into_web_sessions(databases: DatabaseFactory) -> None:
    url = await databases.create()
    assert await migrate(url, until=BASELINE) == [BASELINE]
    users = [uuid.uuid4() for _ in range(3)]
    conn = await asyncpg.connect(url)
    try:
        for user in users:
            for n in range(4):
                await conn.execute(
                    "INSERT INTO chat_sessions (user_id, chat_id, agent_name, updated_at) "
                    "VALUES ($1, $2, $3, $4)",
                    user,
                    uuid.uuid4(),
                    None if n == 0 else "legacy-agent",
                    None if n == 1 else datetime.now(UTC),  # legacy rows may lack it
                )
    finally:
        await conn.close()

    await migrate(url)

    rows = await _fetch(url, "SELECT chat_id, session_id, channel, updated_at FROM chat_sessions")
    assert len(rows) == 12
    for row in rows:
        assert row["channel"] == "web"
        assert row["session_id"] == str(row["chat_id"])
        assert row["updated_at"] is not None

    conn = await asyncpg.connect(url)
    try:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO chat_sessions (user_id, chat_id, channel) VALUES ($1, $2, 'sms')",
                users[0],
                uuid.uuid4(),
            )
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                "INSERT INTO chat_sessions (user_id, chat_id, session_id) VALUES ($1, $2, $3)",
                users[1],
                uuid.uuid4(),
                rows[0]["session_id"],
            )
        for _ in range(3):  # the unique index is partial: NULL session_ids may repeat
            await conn.execute(
                "INSERT INTO chat_sessions (user_id, chat_id) VALUES ($1, $2)",
                users[2],
                uuid.uuid4(),
            )
        nulls = await conn.fetchval("SELECT count(*) FROM chat_sessions WHERE session_id IS NULL")
        assert nulls == 3
    finally:
        await conn.close()


async def test_migrate_twice_changes_nothing(databases: DatabaseFactory) -> None:
    url = await databases.create()
    first = await migrate(url)
    ledger = await _fetch(url, "SELECT version, checksum, applied_at FROM schema_migrations")
    assert len(first) == len(ledger) > 0
    assert await migrate(url) == []
    assert (
        await _fetch(url, "SELECT version, checksum, applied_at FROM schema_migrations") == ledger
    )


async def test_concurrent_migrations_apply_each_file_once(databases: DatabaseFactory) -> None:
    url = await databases.create()
    results = await asyncio.gather(*(migrate(url) for _ in range(3)))
    applied = [version for result in results for version in result]
    assert sorted(applied) == [m.version for m in discover()]
    counts = await _fetch(url, "SELECT version, count(*) AS n FROM schema_migrations GROUP BY 1")
    assert {r["n"] for r in counts} == {1}


async def test_an_edited_applied_migration_is_refused(
    databases: DatabaseFactory, tmp_path: Path
) -> None:
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, copy)
    url = await databases.create()
    await migrate(url, directory=copy)

    baseline = next(copy.glob(f"{BASELINE}_*.sql"))
    baseline.write_text(baseline.read_text() + "\n-- an afterthought\n")
    (copy / "29990101000000_later_change.sql").write_text("CREATE TABLE later (id int);")

    with pytest.raises(MigrationError, match="was edited after it was applied"):
        await migrate(url, directory=copy)
    # Nothing after the refusal was applied either.
    tables = await _fetch(url, "SELECT 1 FROM pg_tables WHERE tablename = 'later'")
    assert tables == []


async def test_a_failing_migration_leaves_nothing_behind(
    databases: DatabaseFactory, tmp_path: Path
) -> None:
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, copy)
    (copy / "29990101000000_broken.sql").write_text(
        "CREATE TABLE half_done (id int); SELECT no_such_function();"
    )
    url = await databases.create()
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await migrate(url, directory=copy)
    assert await _fetch(url, "SELECT 1 FROM pg_tables WHERE tablename = 'half_done'") == []
    versions = [r["version"] for r in await _fetch(url, "SELECT version FROM schema_migrations")]
    assert "29990101000000" not in versions
    assert len(versions) == len(discover())
