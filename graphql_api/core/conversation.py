"""The one conversation turn every channel runs: web, Telegram and scheduled."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import asyncpg

from . import messages, sessions
from .agent import Agent, AgentError, ChatTurn
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

    With an idempotency key (a Telegram update id, a schedule slot) a redelivered turn stores
    nothing twice: the database's unique key decides, and a completed turn is returned as it was.
    If the agent fails, the person's message stays stored, the failure is recorded on the session,
    and AgentFailed is raised.
    """
    content = messages.validate_content(content)
    reply_key = f"{idempotency_key}:reply" if idempotency_key else None
    user_message, is_new = await messages.append_message(
        pool, session.session_id, Role.USER, content, idempotency_key=idempotency_key
    )
    if not is_new and reply_key:
        done = await messages.find_by_idempotency_key(pool, session.session_id, reply_key)
        if done is not None:
            return TurnResult(session, user_message, done)

    history = await messages.page_before(
        pool, session.session_id, HISTORY_FOR_AGENT, before_id=user_message.id
    )
    turns = [ChatTurn(m.role, m.content) for m in history]
    try:
        async with asyncio.timeout(agent_timeout):
            text = await agent.reply(turns, content, agent_name=session.agent_name)
    except Exception as exc:
        await sessions.record_failure(pool, session.session_id, _describe(exc))
        log.warning("agent failed in session %s: %r", session.session_id, exc)
        raise AgentFailed(
            "the agent could not answer; your message was saved", user_message=user_message
        ) from exc

    async with pool.acquire() as conn, conn.transaction():
        reply, _ = await messages.append_message(
            conn, session.session_id, Role.ASSISTANT, text, idempotency_key=reply_key
        )
        session = await sessions.touch_session(conn, session.session_id)
    return TurnResult(session, user_message, reply)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, AgentError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "the agent did not answer in time"
    return f"the agent failed ({type(exc).__name__})"
