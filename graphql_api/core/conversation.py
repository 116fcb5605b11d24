"""The one conversation turn every channel runs: web, Telegram and scheduled."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from . import events, messages, sessions
from .agent import Agent, AgentError, ChatTurn, StreamingAgent
from .db import Executor
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


# The turn's first statement: store the person's message and, if it is new, try to take the
# session's turn lease in the same statement (it commits at once, so the message is stored before
# the turn waits for anything). A key stored before (a redelivery) inserts nothing and yields
# that message and, if there is one, its reply instead.
_TAKE_LEASE = """
    INSERT INTO session_turns AS t (session_id, holder, lease_until)
    SELECT $1, {holder}::uuid, now() + make_interval(secs => {lease}) {condition}
    ON CONFLICT (session_id) DO UPDATE
       SET holder = EXCLUDED.holder, lease_until = EXCLUDED.lease_until
     WHERE t.lease_until < now()
    RETURNING holder
"""
# The person's message ($1 session, $2 message, $3 key), unless its key was stored before, and
# the session named by it when it is the first (`title`: the parameter holding the title).
_STORED = f"""stored AS (
    INSERT INTO chat_message_history (session_id, message, idempotency_key, via)
    SELECT $1::text, $2::jsonb, $3::text, {{via}}::text FROM {messages.IN_SESSION_TURN}
    ON CONFLICT (session_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING {MESSAGE_COLUMNS}
)"""
_TITLED = """titled AS (
    UPDATE chat_sessions SET title = {title}
     WHERE session_id = $1 AND title IS NULL AND {title}::text IS NOT NULL
       AND EXISTS (SELECT FROM stored)
)"""
_STORE_MESSAGE = f"""
WITH {_STORED.format(via="$7")}, taken AS (
    {_TAKE_LEASE.format(holder="$5", lease="$6", condition="WHERE EXISTS (SELECT FROM stored)")}
), {_TITLED.format(title="$8")}
SELECT 'new' AS kind, EXISTS (SELECT FROM taken) AS locked, {MESSAGE_COLUMNS}
  FROM stored
UNION ALL
SELECT CASE WHEN idempotency_key = $3 THEN 'user' ELSE 'reply' END, NULL, {MESSAGE_COLUMNS}
  FROM chat_message_history
 WHERE session_id = $1 AND idempotency_key IN ($3, $4) AND NOT EXISTS (SELECT FROM stored)
"""
# Waiting for the lease: the same insert alone.
_TRY_LEASE = f"""
WITH taken AS ({_TAKE_LEASE.format(holder="$2", lease="$3", condition="")})
SELECT EXISTS (SELECT FROM taken)
"""
_RELEASE = "DELETE FROM session_turns WHERE session_id = $1 AND holder = $2"

_BY_KEYS = f"""
SELECT CASE WHEN idempotency_key = $2 THEN 'user' ELSE 'reply' END AS kind, {MESSAGE_COLUMNS}
  FROM chat_message_history
 WHERE session_id = $1 AND idempotency_key IN ($2, $3)
"""

# The turn's last write, one statement: the reply, the session touched (last activity, failure
# cleared, is_active set unless $4 is null), and the turn's lease ended.
_STORE_REPLY = f"""
WITH reply AS (
    INSERT INTO chat_message_history (session_id, message, idempotency_key, via)
    SELECT $1::text, $2::jsonb, $3::text, $6::text FROM {messages.IN_SESSION_TURN}
    ON CONFLICT (session_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING {MESSAGE_COLUMNS}
), touched AS (
    UPDATE chat_sessions
       SET updated_at = now(), last_error = NULL, last_error_at = NULL,
           is_active = coalesce($4, is_active)
     WHERE session_id = $1
    RETURNING {SESSION_COLUMNS}
), released AS (
    DELETE FROM session_turns WHERE session_id = $1 AND holder = $5
)
SELECT r.id AS reply_id, r.message AS reply_message, r.created_at AS reply_created_at,
       r.via AS reply_via, t.*
  FROM (SELECT) AS one
  LEFT JOIN reply r ON true
  LEFT JOIN touched t ON true
"""

# A queued turn's message, stored when it arrives (run_turn with the same key answers it later).
_STORE_WAITING = f"""
WITH {_STORED.format(via="$4")}, {_TITLED.format(title="$5")}
SELECT {MESSAGE_COLUMNS} FROM stored
"""

LEASE_MARGIN = 10.0  # seconds a lease outlives the agent's timeout (history read, the write)
WAIT_FIRST, WAIT_MAX = 0.02, 0.5  # polling for a busy session's lease: back off to 0.5 s


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
    via: str | None = None,
) -> TurnOutcome:
    """Append the person's message, run the agent on the history, append the reply.

    The message is stored first, so it is never lost. Turns in one session then run one at a
    time (a lease row in session_turns, taken with the message and ended by the reply): each
    sees the replies to the messages before it. No database connection is held while the agent
    answers or while a turn waits for the lease, so the pool's size does not bound how many
    turns a process runs at once. With an idempotency key (a Telegram message, a schedule slot,
    a web client's message id) a redelivered turn stores nothing twice and, once the first copy
    has answered, returns that answer without running the agent again. If the agent fails, the
    failure is recorded on the session and returned as the outcome's `failure` (no exception:
    only invalid content raises, BadInput, before anything is stored). `is_active_after`: what
    the turn's closing write (reply or failure) sets the session's is_active to; None leaves it.
    `via`: the door the message came in by (default: the session's channel), kept on the message
    and its reply.

    An agent that streams is shown as it writes: every PROGRESS_EVERY seconds the reply so far
    goes to the session's live subscribers (REPLY_PROGRESS) and to `on_progress`; a reply done
    sooner sends none. The stored reply is the whole text, once.

    A new message's turn, when the session is free, is three statements on two short
    connection uses: store + lease and history on one, reply + touch + release on the other.
    """
    content = messages.validate_content(content)
    session_id = session.session_id
    reply_key = f"{idempotency_key}:reply" if idempotency_key else None
    holder, lease = uuid.uuid4(), agent_timeout + LEASE_MARGIN
    door = via or session.channel
    async with pool.acquire() as conn:
        found = await conn.fetch(
            _STORE_MESSAGE,
            session_id,
            langchain_message(Role.USER, content),
            idempotency_key,
            reply_key,
            holder,
            lease,
            door,
            sessions.title_from(content) if session.title is None else None,
        )
        rows = {r["kind"]: r for r in found}
        new = rows.get("new")
        first = new or rows.get("user")  # the person's message: this copy's, or the first's
        if first is not None and "reply" in rows:  # a redelivery, answered before
            return TurnOutcome(
                session, MessageRow.from_record(first), MessageRow.from_record(rows["reply"])
            )
        locked = bool(new and new["locked"])
        turns = await _history_for(conn, MessageRow.from_record(new)) if locked and new else None
    ended = False
    try:
        if not locked:  # another turn of the session is running (or, a redelivery, may be)
            await _wait_for_lease(pool, session_id, holder, lease)
        if new is None:  # a redelivery: did the copy ahead of it answer meanwhile?
            rows = {
                r["kind"]: r
                for r in await pool.fetch(_BY_KEYS, session_id, idempotency_key, reply_key)
            }
            first = rows["user"]
            if "reply" in rows:
                reply = MessageRow.from_record(rows["reply"])
                return TurnOutcome(session, MessageRow.from_record(first), reply)
        assert first is not None
        user_message = MessageRow.from_record(first)
        if turns is None:
            turns = await _history_for(pool, user_message)
        outcome = await _answer(
            pool,
            agent,
            session,
            user_message,
            turns,
            content,
            reply_key=reply_key,
            via=door,
            holder=holder,
            agent_timeout=agent_timeout,
            is_active_after=is_active_after,
            on_progress=on_progress,
        )
        ended = True  # the closing write ended the lease
        return outcome
    finally:
        if not ended:
            await pool.execute(_RELEASE, session_id, holder)


async def store_message(
    db: Executor, session: SessionRow, content: str, *, idempotency_key: str, via: str
) -> MessageRow | None:
    """Store a person's message whose turn runs later, elsewhere (a queued Telegram turn): it
    is in the registry, and live, at once. run_turn with the same key then answers it. None: it
    was stored before (a redelivery)."""
    content = messages.validate_content(content)
    record = await db.fetchrow(
        _STORE_WAITING,
        session.session_id,
        langchain_message(Role.USER, content),
        idempotency_key,
        via,
        sessions.title_from(content) if session.title is None else None,
    )
    return MessageRow.from_record(record) if record else None


async def _wait_for_lease(
    pool: asyncpg.Pool, session_id: str, holder: uuid.UUID, lease: float
) -> None:
    """Take the session's lease once the turn ahead of this one ends (or its lease expires),
    asking again with backoff; no connection is held in between."""
    delay = WAIT_FIRST
    while not await pool.fetchval(_TRY_LEASE, session_id, holder, lease):
        await asyncio.sleep(delay)
        delay = min(delay * 2, WAIT_MAX)


async def _answer(
    pool: asyncpg.Pool,
    agent: Agent,
    session: SessionRow,
    user_message: MessageRow,
    turns: list[ChatTurn],
    content: str,
    *,
    reply_key: str | None,
    via: str,
    holder: uuid.UUID,
    agent_timeout: float,
    is_active_after: bool | None,
    on_progress: OnProgress | None,
) -> TurnOutcome:
    """The agent's answer, with no connection held while it comes, then the one closing write
    (which also ends the lease)."""
    try:
        async with asyncio.timeout(agent_timeout):
            text = await _generate(pool, agent, session, turns, content, on_progress)
    except Exception as exc:
        log.warning("agent failed in session %s: %r", session.session_id, exc)
        description = _describe(exc)[: sessions.MAX_ERROR_LENGTH]
        failed = await sessions.record_failure(
            pool, session.session_id, description, is_active=is_active_after, release_turn=holder
        )
        return TurnOutcome(failed or session, user_message, None, description)
    record = await pool.fetchrow(
        _STORE_REPLY,
        session.session_id,
        langchain_message(Role.ASSISTANT, text.replace("\x00", "")),  # text cannot hold NUL
        reply_key,
        is_active_after,
        holder,
        via,
    )
    assert record is not None  # the statement always yields its one row
    if record["reply_id"] is not None:
        reply = _reply_of(record, session.session_id)
    else:  # the reply key was stored already: never under this lease, but keep the first
        assert reply_key is not None
        stored = await messages.find_by_idempotency_key(pool, session.session_id, reply_key)
        assert stored is not None
        reply = stored
    touched = SessionRow.from_record(record) if record["id"] is not None else session
    return TurnOutcome(touched, user_message, reply)


async def _generate(
    db: Executor,
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
            await events.publish_progress(db, session.session_id, text)
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
            "via": record["reply_via"],
        }
    )


async def _history_for(db: Executor, current: MessageRow) -> list[ChatTurn]:
    """What the agent sees: the session's latest messages before this one, and the replies that
    turns ahead of it stored since. Later messages of the person wait for their own turn."""
    recent = await messages.page_before(db, current.session_id, HISTORY_FOR_AGENT + 20)
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
