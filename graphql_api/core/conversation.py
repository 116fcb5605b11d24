"""The one conversation turn every channel runs: web, Telegram and scheduled."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import asyncpg

from . import messages, sessions
from .agent import Agent, AgentError, ChatTurn
from .db import Connection, holding_lock
from .errors import AgentFailed
from .models import MessageRow, Role, SessionRow

log = logging.getLogger(__name__)

HISTORY_FOR_AGENT = 50


@dataclass(frozen=True)
class TurnResult:
    session: SessionRow
    user_message: MessageRow
    reply: MessageRow


async def run_turn(
    pool: asyncpg.Pool,
    agent: Agent,
    session: SessionRow,
    content: str,
    *,
    idempotency_key: str | None = None,
    agent_timeout: float = 120.0,
) -> TurnResult:
    """Append the person's message, run the agent on the history, append the reply.

    The message is stored first, so it is never lost. Turns in one session then run one at a
    time (a PostgreSQL advisory lock, held on the turn's one connection): each sees the replies
    to the messages before it. With an idempotency key (a Telegram message, a schedule slot, a
    web client's message id) a redelivered turn stores nothing twice and, once the first copy
    has answered, returns that answer without running the agent again. If the agent fails, the
    failure is recorded on the session and AgentFailed is raised.
    """
    content = messages.validate_content(content)
    reply_key = f"{idempotency_key}:reply" if idempotency_key else None
    user_message, is_new = await messages.append_message(
        pool, session.session_id, Role.USER, content, idempotency_key=idempotency_key
    )
    async with pool.acquire() as conn, _one_turn_at_a_time(conn, session.session_id):
        if not is_new and reply_key:
            done = await messages.find_by_idempotency_key(conn, session.session_id, reply_key)
            if done is not None:
                return TurnResult(session, user_message, done)
        turns = await _history_for(conn, user_message)
        try:
            async with asyncio.timeout(agent_timeout):
                text = await agent.reply(turns, content, agent_name=session.agent_name)
        except Exception as exc:
            await sessions.record_failure(conn, session.session_id, _describe(exc))
            log.warning("agent failed in session %s: %r", session.session_id, exc)
            raise AgentFailed(
                "the agent could not answer; your message was saved", user_message=user_message
            ) from exc
        async with conn.transaction():
            reply, _ = await messages.append_message(
                conn,
                session.session_id,
                Role.ASSISTANT,
                text.replace("\x00", ""),  # PostgreSQL text cannot hold NUL
                idempotency_key=reply_key,
            )
            session = await sessions.touch_session(conn, session.session_id)
    return TurnResult(session, user_message, reply)


def _one_turn_at_a_time(
    conn: Connection, session_id: str
) -> contextlib.AbstractAsyncContextManager[None]:
    return holding_lock(conn, "turn:" + session_id)


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
