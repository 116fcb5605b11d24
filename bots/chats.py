"""Each Telegram chat's current session and the session each of its messages was filed under:
the first message starts one, /new a fresh one, /resume points the chat at any of the person's
sessions, and a redelivered message finds where it was filed."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from graphql_api.core import sessions
from graphql_api.core.db import Connection, Executor
from graphql_api.core.models import SESSION_COLUMNS, SessionRow

from .channel import SESSION_ID_PREFIX


async def forget_chats(conn: Connection, telegram_user_id: int, user_id: uuid.UUID) -> None:
    """Forget the Telegram user's chats with the person (unlinking); their sessions stay in the
    registry, marked inactive."""
    await _lock_sessions(
        conn, "c.telegram_user_id = $1 AND c.user_id = $2", telegram_user_id, user_id
    )
    ended = await conn.fetch(
        "DELETE FROM telegram_chats WHERE telegram_user_id = $1 AND user_id = $2 "
        "RETURNING session_id",
        telegram_user_id,
        user_id,
    )
    for row in ended:
        await sessions.set_active(conn, row["session_id"], False)


async def _lock_sessions(conn: Connection, chats: str, *args: object) -> None:
    """Take the current session rows of the `chats` before the chats' own rows.

    A deletion takes a session's row first and then, in its trigger, deletes the chats pointing
    at it: what changes a chat and its session takes them in the same order, so the two queue
    instead of deadlocking. (A chat moved to another session between this and the chat's own
    lock, by a concurrent /resume, is the one order left to PostgreSQL's deadlock detector.)"""
    await conn.execute(
        "SELECT FROM chat_sessions s JOIN telegram_chats c ON c.session_id = s.session_id "
        f"WHERE {chats} ORDER BY s.session_id FOR NO KEY UPDATE OF s",
        *args,
    )


def session_id_for(telegram_chat_id: int, message_id: int) -> str:
    """Derived from the message that started it, so a redelivered message starts nothing new."""
    chat = str(telegram_chat_id) if telegram_chat_id >= 0 else f"n{-telegram_chat_id}"
    return f"{SESSION_ID_PREFIX}{chat}-{message_id}"


_SESSION_ID = re.compile(re.escape(SESSION_ID_PREFIX) + r"(n?)([0-9]{1,19})-[0-9]{1,19}")


def chat_of_session(session_id: str) -> int | None:
    """The Telegram chat a session_id_for() id was made for; None for any other id."""
    matched = _SESSION_ID.fullmatch(session_id)
    if matched is None:
        return None
    chat = int(matched.group(2))
    return -chat if matched.group(1) else chat


async def current_session_id(
    db: Executor,
    *,
    telegram_chat_id: int,
    telegram_user_id: int,
    user_id: uuid.UUID,
    message_id: int,
) -> str:
    """The session the person is in from this chat; the first message starts one."""
    select = "SELECT session_id FROM telegram_chats WHERE telegram_chat_id = $1 AND user_id = $2"
    found = await db.fetchval(select, telegram_chat_id, user_id)
    if found is not None:
        return found
    inserted = await db.fetchval(
        "INSERT INTO telegram_chats (telegram_chat_id, user_id, telegram_user_id, session_id) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING session_id",
        telegram_chat_id,
        user_id,
        telegram_user_id,
        session_id_for(telegram_chat_id, message_id),
    )
    # None: a concurrent message started it first (committed, so this new statement sees it).
    return inserted or await db.fetchval(select, telegram_chat_id, user_id)


@dataclass(frozen=True, slots=True)
class HandledMessage:
    """What a Telegram message is filed under: the session it belongs to, whether this is the
    first time it is seen (False: Telegram redelivered it), and whether nothing is left to do
    (its answer was delivered, or it was another person's: sent before the account was
    unlinked and linked to someone else)."""

    session_id: str
    first_time: bool
    done: bool
    # The person's own session row of that id, read in the same statement (file_message only):
    # None if it does not exist yet, or is not theirs, or was not looked up.
    session: SessionRow | None = None


# Telegram keeps an update it could not deliver for 24 hours; its record is kept a while longer.
KEEP_HANDLED = timedelta(days=7)


async def _handled(
    conn: Connection, telegram_chat_id: int, message_id: int, user_id: uuid.UUID
) -> HandledMessage | None:
    record = await conn.fetchrow(
        "SELECT session_id, answered_at IS NOT NULL OR user_id <> $3 AS done "
        "FROM telegram_messages WHERE telegram_chat_id = $1 AND message_id = $2",
        telegram_chat_id,
        message_id,
        user_id,
    )
    if record is None:
        return None
    return HandledMessage(record["session_id"], first_time=False, done=record["done"])


async def _record(
    conn: Connection,
    telegram_chat_id: int,
    message_id: int,
    user_id: uuid.UUID,
    session_id: str,
    text: str | None = None,
) -> bool:
    """File the message under the session; False if it was filed already (a concurrent copy).
    With `text` it is a turn, waiting for the worker from now (bots/turns.py). The chat's
    answered records older than KEEP_HANDLED are pruned in the same statement."""
    inserted = await conn.fetchval(
        "WITH pruned AS (DELETE FROM telegram_messages "
        "WHERE telegram_chat_id = $1 AND received_at < now() - $5::interval "
        "AND (queued_at IS NULL OR answered_at IS NOT NULL)) "
        "INSERT INTO telegram_messages "
        "(telegram_chat_id, message_id, user_id, session_id, text, queued_at) "
        "VALUES ($1, $2, $3, $4, $6, CASE WHEN $6::text IS NOT NULL THEN now() END) "
        "ON CONFLICT DO NOTHING RETURNING true",
        telegram_chat_id,
        message_id,
        user_id,
        session_id,
        KEEP_HANDLED,
        text,
    )
    return bool(inserted)


# Where a message goes, in one statement: how it was filed before (if it was), the chat's
# current session (if it has one), and the person's own session row of whichever applies.
_WHERE_FILED = f"""
SELECT m.message_id IS NOT NULL AS filed,  -- with no session_id once its session was deleted
       m.session_id AS filed_session_id, m.answered_at IS NOT NULL OR m.user_id <> $3 AS done,
       c.session_id AS current_session_id,
       {", ".join("s." + c.strip() for c in SESSION_COLUMNS.split(","))}
  FROM (SELECT) AS one
  LEFT JOIN telegram_messages m ON m.telegram_chat_id = $1 AND m.message_id = $2
  LEFT JOIN telegram_chats c ON c.telegram_chat_id = $1 AND c.user_id = $3
  LEFT JOIN chat_sessions s ON s.session_id = coalesce(m.session_id, c.session_id)
                           AND s.user_id = $3
"""


async def file_message(
    pool: asyncpg.Pool,
    *,
    telegram_chat_id: int,
    telegram_user_id: int,
    user_id: uuid.UUID,
    message_id: int,
    text: str | None = None,
) -> HandledMessage:
    """The session a message belongs to: the chat's current one when it is first seen, and the
    same one on every redelivery, whatever /new did in between. With it, the person's session
    row of that id, if there is one yet. `text`: the turn the worker is to answer."""
    async with pool.acquire() as conn:
        found = await conn.fetchrow(_WHERE_FILED, telegram_chat_id, message_id, user_id)
        assert found is not None  # the statement always yields its one row
        session = SessionRow.from_record(found) if found["id"] is not None else None
        if found["filed"]:  # a redelivery (of a deleted session's message: done, answered_at)
            if text is not None and not found["done"]:  # a turn not answered: it waits again
                await _wait_again(conn, telegram_chat_id, message_id, text)
            return HandledMessage(
                found["filed_session_id"], first_time=False, done=found["done"], session=session
            )
        session_id = found["current_session_id"]
        if session_id is None:  # the chat's first message starts its session
            session_id = await current_session_id(
                conn,
                telegram_chat_id=telegram_chat_id,
                telegram_user_id=telegram_user_id,
                user_id=user_id,
                message_id=message_id,
            )
            session = None
        if await _record(conn, telegram_chat_id, message_id, user_id, session_id, text):
            return HandledMessage(session_id, first_time=True, done=False, session=session)
        seen = await _handled(conn, telegram_chat_id, message_id, user_id)
        assert seen is not None  # filed by a concurrent copy, committed before our insert saw it
        return seen


async def _wait_again(conn: Connection, telegram_chat_id: int, message_id: int, text: str) -> None:
    await conn.execute(
        "UPDATE telegram_messages SET queued_at = coalesce(queued_at, now()), text = $3 "
        "WHERE telegram_chat_id = $1 AND message_id = $2 AND answered_at IS NULL",
        telegram_chat_id,
        message_id,
        text,
    )


async def mark_answered(db: Executor, *, telegram_chat_id: int, message_id: int) -> None:
    """The message's answer was delivered: a redelivery of it sends nothing again."""
    await db.execute(
        "UPDATE telegram_messages SET answered_at = now() "
        "WHERE telegram_chat_id = $1 AND message_id = $2",
        telegram_chat_id,
        message_id,
    )


async def start_new_session(
    pool: asyncpg.Pool,
    *,
    telegram_chat_id: int,
    telegram_user_id: int,
    user_id: uuid.UUID,
    message_id: int,
) -> HandledMessage:
    """Point the chat at a fresh session (named after the /new message).

    The previous session stays in the registry, marked inactive. A redelivered /new changes
    nothing, even after later messages or another /new.
    """
    new_id = session_id_for(telegram_chat_id, message_id)
    async with pool.acquire() as conn, conn.transaction():
        await _lock_sessions(
            conn, "c.telegram_chat_id = $1 AND c.user_id = $2", telegram_chat_id, user_id
        )
        previous = await conn.fetchval(
            "SELECT session_id FROM telegram_chats WHERE telegram_chat_id = $1 AND user_id = $2 "
            "FOR UPDATE",
            telegram_chat_id,
            user_id,
        )
        if not await _record(conn, telegram_chat_id, message_id, user_id, new_id):
            seen = await _handled(conn, telegram_chat_id, message_id, user_id)
            assert seen is not None
            return seen
        await set_current_session(
            conn,
            telegram_chat_id=telegram_chat_id,
            telegram_user_id=telegram_user_id,
            user_id=user_id,
            session_id=new_id,
        )
        if previous is not None and previous != new_id:
            await sessions.set_active(conn, previous, False)
    return HandledMessage(new_id, first_time=True, done=False)


_POINT_CHAT = """
INSERT INTO telegram_chats (telegram_chat_id, user_id, telegram_user_id, session_id)
{source}
ON CONFLICT (telegram_chat_id, user_id) DO UPDATE
   SET session_id = EXCLUDED.session_id, telegram_user_id = EXCLUDED.telegram_user_id,
       started_at = now()
RETURNING true
"""
# /new: the fresh session is written by the chat's next message.
_TO_A_NEW_SESSION = _POINT_CHAT.format(source="VALUES ($1, $2, $3, $4)")
# /resume: only to a session that still exists, kept from a deletion (FOR KEY SHARE) until
# this commits; a deletion after that finds the chat and unpoints it (its trigger).
_TO_AN_EXISTING_SESSION = _POINT_CHAT.format(
    source="SELECT $1, $2, $3, s.session_id FROM chat_sessions s "
    "WHERE s.session_id = $4 AND s.user_id = $2 FOR KEY SHARE"
)


async def set_current_session(
    db: Executor,
    *,
    telegram_chat_id: int,
    telegram_user_id: int,
    user_id: uuid.UUID,
    session_id: str,
) -> None:
    """Make the chat's next messages turns in a fresh session, that its first one creates."""
    await db.execute(_TO_A_NEW_SESSION, telegram_chat_id, user_id, telegram_user_id, session_id)


async def resume_session(
    db: Executor,
    *,
    telegram_chat_id: int,
    telegram_user_id: int,
    user_id: uuid.UUID,
    session_id: str,
) -> bool:
    """Make one of the person's sessions, of any channel, the chat's current one; False if it
    is gone (deleted since it was listed)."""
    resumed = await db.fetchval(
        _TO_AN_EXISTING_SESSION, telegram_chat_id, user_id, telegram_user_id, session_id
    )
    return bool(resumed)
