"""The one conversation turn every channel runs: web, Telegram and scheduled."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from . import events, messages, sessions
from .agent import Agent, AgentError, ChatTurn, StreamingAgent
from .db import Connection, lock_id, release_lock, take_lock
from .models import (
    MESSAGE_COLUMNS,
    SESSION_COLUMNS,
    MessageRow,
    Role,
    SessionRow,
    langchain_message,
)

log = logging.getLogger(__name__)

HISTORY_FOR_AGENT = 50
PROGRESS_EVERY = 0.1  # seconds between REPLY_PROGRESS events of a streamed reply (~10 a second)

# Told the reply so far while the agent streams (a Telegram draft), at most every PROGRESS_EVERY.
OnProgress = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class TurnOutcome:
    """What a turn came to. An expected agent failure is an outcome, not an exception.

    session: the row as the turn left it, as its own write returned it: touched (last_error
        cleared) after a reply; with last_error set after a failure; as passed in when the turn
        was a redelivery whose reply was already stored (nothing is written then).
    user_message: the person's stored message (the first copy's, for a redelivery).
    reply: the agent's stored reply; None exactly when the agent failed.
    failure: None, or why the agent failed: the text recorded as the session's last_error.
    """

    session: SessionRow
    user_message: MessageRow
    reply: MessageRow | None
    failure: str | None = None


# The turn's first statement: store the person's message and, if it is new, try for the
# session's turn lock in the same statement (it commits at once, so the message is stored before
# the turn waits for anything). A key stored before (a redelivery) inserts nothing and yields
# that message and, if there is one, its reply instead.
_STORE_MESSAGE = f"""
WITH stored AS (
    INSERT INTO chat_message_history (session_id, message, idempotency_key)
    VALUES ($1, $2, $3)
    ON CONFLICT (session_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING {MESSAGE_COLUMNS}
)
SELECT 'new' AS kind, pg_try_advisory_lock({lock_id("$5")}) AS locked, {MESSAGE_COLUMNS}
  FROM stored
UNION ALL
SELECT CASE WHEN idempotency_key = $3 THEN 'user' ELSE 'reply' END, NULL, {MESSAGE_COLUMNS}
  FROM chat_message_history
 WHERE session_id = $1 AND idempotency_key IN ($3, $4) AND NOT EXISTS (SELECT FROM stored)
"""

_BY_KEYS = f"""
SELECT CASE WHEN idempotency_key = $2 THEN 'user' ELSE 'reply' END AS kind, {MESSAGE_COLUMNS}
  FROM chat_message_history
 WHERE session_id = $1 AND idempotency_key IN ($2, $3)
"""

# The turn's last write, one statement: the reply, and the session touched (last activity,
# failure cleared, is_active set unless $4 is null).
_STORE_REPLY = f"""
WITH reply AS (
    INSERT INTO chat_message_history (session_id, message, idempotency_key)
    VALUES ($1, $2, $3)
    ON CONFLICT (session_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING {MESSAGE_COLUMNS}
), touched AS (
    UPDATE chat_sessions
       SET updated_at = now(), last_error = NULL, last_error_at = NULL,
           is_active = coalesce($4, is_active)
     WHERE session_id = $1
    RETURNING {SESSION_COLUMNS}
)
SELECT r.id AS reply_id, r.message AS reply_message, r.created_at AS reply_created_at, t.*
  FROM (SELECT) AS one
  LEFT JOIN reply r ON true
  LEFT JOIN touched t ON true
"""


async def run_turn(
    pool: asyncpg.Pool,
    agent: Agent,
    session: SessionRow,
    content: str,
    *,
    idempotency_key: str | None = None,
    agent_timeout: float = 120.0,
    is_active_after: bool | None = None,
    on_progress: OnProgress | None = None,
) -> TurnOutcome:
    """Append the person's message, run the agent on the history, append the reply.

    The message is stored first, so it is never lost. Turns in one session then run one at a
    time (a PostgreSQL advisory lock, held on the turn's one connection): each sees the replies
    to the messages before it. With an idempotency key (a Telegram message, a schedule slot, a
    web client's message id) a redelivered turn stores nothing twice and, once the first copy
    has answered, returns that answer without running the agent again. If the agent fails, the
    failure is recorded on the session and returned as the outcome's `failure` (no exception:
    only invalid content raises, BadInput, before anything is stored). `is_active_after`: what
    the turn's closing write (reply or failure) sets the session's is_active to; None leaves it.

    An agent that streams is shown as it writes: every PROGRESS_EVERY seconds the reply so far
    goes to the session's live subscribers (REPLY_PROGRESS) and to `on_progress`; a reply done
    sooner sends none. The stored reply is the whole text, once.

    One pool connection for the whole turn; a new message's turn is four statements when no
    other turn of the session is running (store + try-lock, history, reply + touch, unlock).
    """
    content = messages.validate_content(content)
    session_id = session.session_id
    reply_key = f"{idempotency_key}:reply" if idempotency_key else None
    lock_key = _turn_lock_key(session_id)
    async with pool.acquire() as conn:
        found = await conn.fetch(
            _STORE_MESSAGE,
            session_id,
            langchain_message(Role.USER, content),
            idempotency_key,
            reply_key,
            lock_key,
        )
        rows = {r["kind"]: r for r in found}
        new = rows.get("new")
        first = new or rows.get("user")  # the person's message: this copy's, or the first's
        if first is not None and "reply" in rows:  # a redelivery, answered before
            return TurnOutcome(
                session, MessageRow.from_record(first), MessageRow.from_record(rows["reply"])
            )
        locked = bool(new and new["locked"])
        try:
            if not locked:  # another turn of the session is running (or, a redelivery, may be)
                await take_lock(conn, lock_key)
                locked = True
            if new is None:  # a redelivery: did the copy ahead of it answer meanwhile?
                rows = {
                    r["kind"]: r
                    for r in await conn.fetch(_BY_KEYS, session_id, idempotency_key, reply_key)
                }
                first = rows["user"]
                if "reply" in rows:
                    reply = MessageRow.from_record(rows["reply"])
                    return TurnOutcome(session, MessageRow.from_record(first), reply)
            assert first is not None
            return await _answer(
                conn,
                agent,
                session,
                MessageRow.from_record(first),
                content,
                reply_key,
                agent_timeout,
                is_active_after,
                on_progress,
            )
        finally:
            if locked:
                await release_lock(conn, lock_key)


async def _answer(
    conn: Connection,
    agent: Agent,
    session: SessionRow,
    user_message: MessageRow,
    content: str,
    reply_key: str | None,
    agent_timeout: float,
    is_active_after: bool | None,
    on_progress: OnProgress | None,
) -> TurnOutcome:
    """The turn proper, under the session's lock: history, agent, then the one closing write."""
    turns = await _history_for(conn, user_message)
    try:
        async with asyncio.timeout(agent_timeout):
            text = await _generate(conn, agent, session, turns, content, on_progress)
    except Exception as exc:
        log.warning("agent failed in session %s: %r", session.session_id, exc)
        description = _describe(exc)[: sessions.MAX_ERROR_LENGTH]
        failed = await sessions.record_failure(
            conn, session.session_id, description, is_active=is_active_after
        )
        return TurnOutcome(failed or session, user_message, None, description)
    record = await conn.fetchrow(
        _STORE_REPLY,
        session.session_id,
        langchain_message(Role.ASSISTANT, text.replace("\x00", "")),  # text cannot hold NUL
        reply_key,
        is_active_after,
    )
    assert record is not None  # the statement always yields its one row
    if record["reply_id"] is not None:
        reply = _reply_of(record, session.session_id)
    else:  # the reply key was stored already: never under this lock, but keep the first
        assert reply_key is not None
        stored = await messages.find_by_idempotency_key(conn, session.session_id, reply_key)
        assert stored is not None
        reply = stored
    touched = SessionRow.from_record(record) if record["id"] is not None else session
    return TurnOutcome(touched, user_message, reply)


async def _generate(
    conn: Connection,
    agent: Agent,
    session: SessionRow,
    turns: Sequence[ChatTurn],
    content: str,
    on_progress: OnProgress | None,
) -> str:
    """The agent's whole reply; a streaming agent's pieces are shown while they come."""
    if not isinstance(agent, StreamingAgent):
        return await agent.reply(turns, content, agent_name=session.agent_name)
    text, shown = "", time.monotonic()
    async for piece in agent.stream(turns, content, agent_name=session.agent_name):
        text += piece
        if time.monotonic() - shown >= PROGRESS_EVERY:
            shown = time.monotonic()
            await events.publish_progress(conn, session.session_id, text)
            if on_progress is not None:
                await _tell(on_progress, text)
    if not text.strip():
        raise AgentError("the agent's answer was empty")
    return text


async def _tell(on_progress: OnProgress, text: str) -> None:
    """A progress listener's failure (a draft the Bot API refused) never fails the turn."""
    try:
        await on_progress(text)
    except Exception as exc:
        log.info("a progress listener failed: %r", exc)


def _reply_of(record: Any, session_id: str) -> MessageRow:
    return MessageRow.from_record(
        {
            "id": record["reply_id"],
            "session_id": session_id,
            "message": record["reply_message"],
            "created_at": record["reply_created_at"],
        }
    )


def _turn_lock_key(session_id: str) -> str:
    return "turn:" + session_id


async def _history_for(conn: Connection, current: MessageRow) -> list[ChatTurn]:
    """What the agent sees: the session's latest messages before this one, and the replies that
    turns ahead of it stored since. Later messages of the person wait for their own turn."""
    recent = await messages.page_before(conn, current.session_id, HISTORY_FOR_AGENT + 20)
    seen = [
        m for m in recent if m.id < current.id or (m.id > current.id and m.role is not Role.USER)
    ]
    return [ChatTurn(m.role, m.content) for m in seen[-HISTORY_FOR_AGENT:]]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, AgentError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "the agent did not answer in time"
    return f"the agent failed ({type(exc).__name__})"
