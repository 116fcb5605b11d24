"""Setting up test data through the shared domain functions (the same ones every channel uses)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from graphql_api.core import messages, sessions
from graphql_api.core.channels import WEB
from graphql_api.core.models import Role, SessionRow
from graphql_api.core.tokens import SERVICE_ROLE, Viewer


async def make_session(
    pool: asyncpg.Pool,
    user_id: uuid.UUID,
    *,
    channel: str = WEB,
    session_id: str | None = None,
    agent_name: str | None = None,
) -> SessionRow:
    return await sessions.upsert_session(
        pool,
        Viewer(user_id=user_id, role=SERVICE_ROLE),
        sessions.SessionUpsert(
            session_id=session_id or f"test-{uuid.uuid4()}",
            channel=channel,
            agent_name=agent_name,
            user_id=user_id,
        ),
    )


async def add_messages(
    pool: asyncpg.Pool, session_id: str, count: int, *, role: Role | None = None
) -> list[int]:
    """`count` messages; alternately the person's and the agent's unless `role` is given."""
    ids = []
    for n in range(count):
        role_n = role or (Role.USER if n % 2 == 0 else Role.ASSISTANT)
        row, _ = await messages.append_message(pool, session_id, role_n, f"message {n + 1}")
        ids.append(row.id)
    return ids


async def add_raw_message(pool: asyncpg.Pool, session_id: str, message: dict[str, Any]) -> int:
    return await pool.fetchval(
        "INSERT INTO chat_message_history (session_id, message) VALUES ($1, $2) RETURNING id",
        session_id,
        message,
    )
