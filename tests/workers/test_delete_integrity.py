"""Deleting sessions of every channel leaves no row anywhere that names them; a Telegram
redelivery and a schedule appending to a deleted session never bring its history back."""

from __future__ import annotations

import asyncio
import json
import random
import uuid

import asyncpg
import pytest

from bots import chats
from graphql_api.core import deliveries, events, forgetting, reads
from graphql_api.core.agent import EchoAgent
from graphql_api.core.settings import Settings, SettingsError
from tests.conftest import make_person
from tests.graphql_api.seed import add_messages, make_session

from .conftest import Workers

# Tables holding session ids that are not references to a live session.
NOT_REFERENCES = {"chat_sessions", "deleted_sessions", "orphaned_chat_messages"}


async def _tables_with_session_id(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch(
        "SELECT table_name FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_schema, table_name) "
        "WHERE c.table_schema = 'public' AND c.column_name = 'session_id' "
        "AND t.table_type = 'BASE TABLE' ORDER BY table_name"
    )
    return [r["table_name"] for r in rows if r["table_name"] not in NOT_REFERENCES]


async def _orphans(pool: asyncpg.Pool, session_ids: list[str]) -> dict[str, int]:
    """Rows of every table with a session_id that name one of these ids and no live session."""
    found = {}
    for table in await _tables_with_session_id(pool):
        found[table] = await pool.fetchval(
            f"SELECT count(*) FROM {table} t WHERE t.session_id = ANY($1::text[]) "
            "AND NOT EXISTS (SELECT 1 FROM chat_sessions s WHERE s.session_id = t.session_id)",
            session_ids,
        )
    return found


async def _telegram_session(pool: asyncpg.Pool, owner: uuid.UUID, chat: int) -> tuple[str, int]:
    message_id = random.randint(1, 10**9)
    filed = await chats.file_message(
        pool, telegram_chat_id=chat, telegram_user_id=chat, user_id=owner, message_id=message_id
    )
    await make_session(pool, owner, channel="telegram", session_id=filed.session_id)
    return filed.session_id, message_id


async def test_no_row_names_a_deleted_session_of_any_channel(
    workers: Workers, pool: asyncpg.Pool
) -> None:
    owner = make_person().user_id
    chat = random.randint(10**6, 10**9)
    web = await make_session(pool, owner)
    telegram, message_id = await _telegram_session(pool, owner, chat)
    schedule = await workers.create(owner)
    await workers.make_due(schedule.id)
    await workers.burst(EchoAgent())
    [run] = await workers.runs(schedule.id)
    scheduled = run["session_id"]
    doomed = [web.session_id, telegram, scheduled]
    message_ids = []
    for session_id in doomed:
        ids = await add_messages(pool, session_id, 3)
        await reads.mark_read(pool, owner, session_id, ids[-1])
        await deliveries.queue(pool, ids[-1], "telegram", str(chat))
        message_ids.extend(ids)
    await pool.execute(  # a turn in flight in the web session
        "INSERT INTO session_turns (session_id, holder, lease_until) "
        "VALUES ($1, gen_random_uuid(), now() + interval '1 minute')",
        web.session_id,
    )
    tables = await _tables_with_session_id(pool)
    assert {"chat_message_history", "session_read_marks", "session_turns", "telegram_chats"} <= {
        *tables
    }
    assert {"telegram_messages", "schedule_runs"} <= {*tables}
    before = await _orphans(pool, doomed)
    assert sum(before.values()) == 0, before

    for session_id in doomed:
        assert await forgetting.delete_session(pool, owner, session_id)

    assert await _orphans(pool, doomed) == dict.fromkeys(tables, 0)
    assert not await pool.fetchval(
        "SELECT count(*) FROM message_deliveries WHERE message_id = ANY($1::bigint[])", message_ids
    )
    # What stays: tombstones, and the facts that a slot ran and a Telegram message was handled.
    assert await pool.fetchval(
        "SELECT count(*) FROM deleted_sessions WHERE session_id = ANY($1::text[])", doomed
    ) == len(doomed)
    [kept_run] = await workers.runs(schedule.id)
    assert kept_run["status"] == "succeeded" and kept_run["session_id"] is None
    filed = await pool.fetchrow(
        "SELECT session_id, answered_at FROM telegram_messages "
        "WHERE telegram_chat_id = $1 AND message_id = $2",
        chat,
        message_id,
    )
    assert filed["session_id"] is None and filed["answered_at"] is not None


async def test_a_redelivered_telegram_message_of_a_deleted_session_is_not_answered(
    pool: asyncpg.Pool,
) -> None:
    owner = make_person().user_id
    chat = random.randint(10**6, 10**9)
    session_id, message_id = await _telegram_session(pool, owner, chat)
    await add_messages(pool, session_id, 2)
    assert await forgetting.delete_session(pool, owner, session_id)

    again = await chats.file_message(
        pool, telegram_chat_id=chat, telegram_user_id=chat, user_id=owner, message_id=message_id
    )
    fresh = await chats.file_message(
        pool, telegram_chat_id=chat, telegram_user_id=chat, user_id=owner, message_id=message_id + 1
    )

    assert again.done and not again.first_time  # the bot drops it: nothing stored, nothing sent
    assert fresh.first_time and not fresh.done
    assert fresh.session_id not in (session_id, None)  # the chat's next message starts afresh
    assert not await pool.fetchval(
        "SELECT count(*) FROM chat_message_history WHERE session_id = $1", session_id
    )


async def test_a_deletion_is_announced_to_its_owners_session_events(
    pool: asyncpg.Pool, database_url: str
) -> None:
    owner = make_person().user_id
    session = await make_session(pool, owner, channel="telegram")
    heard: list[dict[str, str]] = []
    conn = await asyncpg.connect(database_url)
    try:
        await conn.add_listener("us_events", lambda *args: heard.append(json.loads(args[-1])))
        assert await forgetting.delete_session(pool, owner, session.session_id)
        for _ in range(100):
            if any(e.get("e") == "DELETED" for e in heard):
                break
            await asyncio.sleep(0.02)
    finally:
        await conn.close()
    event = events.parse(json.dumps(next(e for e in heard if e.get("e") == "DELETED")))
    assert event == events.SessionChanged(owner, session.session_id, "DELETED", "telegram")


def test_retention_settings_are_validated() -> None:
    env = {"RETENTION_DAYS_WEB": "30", "RETENTION_DAYS_SCHEDULED": " 7 "}
    assert Settings.from_env(env).retention_policy == {"web": 30, "scheduled": 7}
    assert Settings.from_env({}).retention_policy == {}
    for bad in ("0", "-3", "2.5", "ten", "36501"):
        with pytest.raises(SettingsError, match="RETENTION_DAYS_TELEGRAM"):
            Settings.from_env({"RETENTION_DAYS_TELEGRAM": bad})
