"""Demo data for `unified-sessions dev`: one person with sessions in every channel."""

from __future__ import annotations

import uuid

import asyncpg

from bots.channel import TELEGRAM
from workers.channel import SCHEDULED

from .core import messages, sessions
from .core.channels import WEB
from .core.models import Role
from .core.tokens import SERVICE_ROLE, Viewer

DEMO_USER_ID = uuid.UUID("00000000-0000-4000-8000-00000000de00")
_SERVICE = Viewer(user_id=DEMO_USER_ID, role=SERVICE_ROLE)

_DEMO_SESSIONS: list[tuple[str, str, str, list[tuple[Role, str]]]] = [
    (
        "demo-web-welcome",
        WEB,
        "assistant",
        [
            (Role.USER, "Hi! What is this?"),
            (
                Role.ASSISTANT,
                "Unified Sessions: every conversation you have with an agent, from the web, "
                "Telegram or a scheduled run, in one list. Try sending a message.",
            ),
        ],
    ),
    (
        "demo-telegram-chat",
        TELEGRAM,
        "assistant",
        [
            (Role.USER, "Sent from Telegram: remind me what we planned for Friday?"),
            (Role.ASSISTANT, "You planned to review the quarterly numbers with Ana at 10:00."),
        ],
    ),
    (
        "demo-scheduled-digest",
        SCHEDULED,
        "digest",
        [
            (Role.USER, "Summarise yesterday's support tickets."),
            (Role.ASSISTANT, "12 tickets: 9 resolved, 2 waiting on customers, 1 escalated."),
        ],
    ),
    ("demo-web-empty", WEB, "assistant", []),
]
LONG_SESSION_ID = "demo-web-long-history"
LONG_SESSION_MESSAGES = 400


async def seed_demo(pool: asyncpg.Pool) -> uuid.UUID:
    """Create the demo sessions unless they exist; return the demo person's id.

    Seeded oldest first, so the list (newest activity first) opens on the welcome session."""
    long_history = [
        (Role.USER if i % 2 == 0 else Role.ASSISTANT, f"Message {i + 1} of {LONG_SESSION_MESSAGES}")
        for i in range(LONG_SESSION_MESSAGES)
    ]
    await _seed_session(pool, LONG_SESSION_ID, WEB, "assistant", long_history)
    for session_id, channel, agent, history in reversed(_DEMO_SESSIONS):
        await _seed_session(pool, session_id, channel, agent, history)
    return DEMO_USER_ID


async def _seed_session(
    pool: asyncpg.Pool,
    session_id: str,
    channel: str,
    agent: str,
    history: list[tuple[Role, str]],
) -> None:
    if await sessions.get_session(pool, DEMO_USER_ID, session_id) is not None:
        return
    await sessions.upsert_session(
        pool,
        _SERVICE,
        sessions.SessionUpsert(
            session_id=session_id,
            channel=channel,
            agent_name=agent,
            is_active=channel != SCHEDULED,
            user_id=DEMO_USER_ID,
        ),
    )
    for index, (role, content) in enumerate(history):
        await messages.append_message(
            pool, session_id, role, content, idempotency_key=f"demo:{index}"
        )
