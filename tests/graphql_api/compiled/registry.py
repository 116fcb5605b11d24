"""A varied registry for the differential tests: every channel, archived and renamed sessions,
failures, odd stored messages, deliveries and read marks."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from bots.channel import TELEGRAM
from graphql_api.core import reads, sessions
from graphql_api.core.channels import WEB
from graphql_api.core.models import SessionRow
from tests.conftest import Person, make_person
from tests.graphql_api.seed import add_messages, add_raw_message, make_session
from workers.channel import SCHEDULED

ODD_MESSAGES = [
    {"type": "ai", "data": {"content": [{"type": "text", "text": "a"}, "b", {"type": "image"}]}},
    {"type": "human", "data": {"content": 'quotes " \\ backslash\nnew line\ttab \u0001 </script>'}},
    {"type": "ai", "data": {"content": "emoji 🦊 and ünïcödé"}},
    {"type": 5, "data": {"content": 12}},
    {"type": "tool", "data": {"content": None}},
    {"type": "system"},
    {"type": "human", "data": ["not", "an", "object"]},
    {"type": "mystery", "data": {"content": [{"text": 7}, {"text": "x"}]}},
]


@dataclass
class Registry:
    owner: Person
    stranger: Person
    sessions: list[SessionRow] = field(default_factory=list)
    busy: SessionRow | None = None
    message_ids: list[int] = field(default_factory=list)  # the busy session's, oldest first
    stranger_session: SessionRow | None = None


async def seed(pool: asyncpg.Pool) -> Registry:
    registry = Registry(make_person(), make_person())
    owner = registry.owner.user_id
    for n, channel in enumerate([WEB, WEB, TELEGRAM, SCHEDULED, WEB, TELEGRAM, WEB, SCHEDULED]):
        session = await make_session(pool, owner, channel=channel, agent_name=f"agent-{n % 3}")
        await add_messages(pool, session.session_id, n)
        registry.sessions.append(session)
    odd = registry.sessions[1]
    for message in ODD_MESSAGES:
        await add_raw_message(pool, odd.session_id, message)
    await sessions.rename_session(pool, owner, registry.sessions[2].session_id, "Renamed ✓")
    await sessions.set_archived(pool, owner, registry.sessions[3].session_id, True)
    await sessions.set_archived(pool, owner, registry.sessions[7].session_id, True)
    await pool.execute(
        "UPDATE chat_sessions SET last_error = 'the agent timed out', last_error_at = "
        "date_trunc('second', now()) WHERE session_id = $1",
        registry.sessions[4].session_id,
    )
    await pool.execute(  # whole seconds: isoformat() prints no fraction
        "UPDATE chat_message_history SET created_at = date_trunc('second', created_at), "
        "via = CASE WHEN id % 2 = 0 THEN 'telegram' END WHERE session_id = $1",
        registry.sessions[5].session_id,
    )
    busy = registry.busy = await make_session(pool, owner, channel=TELEGRAM)
    registry.message_ids = await add_messages(pool, busy.session_id, 250)
    await _deliveries(pool, registry.message_ids[-6:])
    await reads.mark_read(pool, owner, busy.session_id, registry.message_ids[200])
    await reads.mark_read(pool, owner, registry.sessions[6].session_id, None)
    registry.stranger_session = await make_session(pool, registry.stranger.user_id)
    await add_messages(pool, registry.stranger_session.session_id, 3)
    return registry


async def _deliveries(pool: asyncpg.Pool, message_ids: list[int]) -> None:
    for n, message_id in enumerate(message_ids):
        status = ("pending", "sent", "failed")[n % 3]
        await pool.execute(
            "INSERT INTO message_deliveries (message_id, channel, target, status, attempts, "
            "last_error, sent_at, next_attempt_at) VALUES ($1, 'telegram', '42', $2, $3, $4, "
            "CASE WHEN $2 = 'sent' THEN now() END, 'infinity')",  # never due: no worker sends it
            message_id,
            status,
            n,
            "Bad Request: chat not found" if status == "failed" else None,
        )
