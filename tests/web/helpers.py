"""Helpers for the browser tests: URLs, seeding sessions the way the channels do, reading the page.

`expect` is Playwright's, or None when the package is missing (the `browser` fixture then skips
or, in CI, fails before any test uses it).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg

from graphql_api.core import messages, sessions
from graphql_api.core.models import Role
from graphql_api.core.tokens import SERVICE_ROLE, Viewer

try:
    from playwright.async_api import expect
except ImportError:  # pragma: no cover - reported by the browser fixture
    expect = None  # type: ignore[assignment]


def app_url(server_url: str, token: str | None = None, session_id: str | None = None) -> str:
    url = server_url + "/"
    if session_id is not None:
        url += f"?session={session_id}"
    if token is not None:
        url += f"#token={token}"
    return url


def open_session_id(url: str) -> str | None:
    """The ?session= of a page address."""
    values = parse_qs(urlsplit(url).query).get("session")
    return values[0] if values else None


async def seed_session(
    pool: asyncpg.Pool,
    user_id: uuid.UUID,
    channel: str,
    history: Sequence[tuple[Role, str]] = (),
    *,
    session_id: str | None = None,
    agent_name: str = "assistant",
    is_active: bool | None = None,
) -> str:
    """A session made the way the channels make them: the shared upsert as the service, then
    the shared append. Returns its session id."""
    service = Viewer(user_id=user_id, role=SERVICE_ROLE)
    row = await sessions.upsert_session(
        pool,
        service,
        sessions.SessionUpsert(
            session_id=session_id or f"{channel}-{uuid.uuid4()}",
            channel=channel,
            agent_name=agent_name,
            is_active=is_active,
            user_id=user_id,
        ),
    )
    for role, content in history:
        await messages.append_message(pool, row.session_id, role, content)
    if history:
        await sessions.touch_session(pool, row.session_id)
    return row.session_id


def conversation(*pairs: tuple[str, str]) -> list[tuple[Role, str]]:
    """[(question, answer), ...] as alternating user and assistant messages."""
    history: list[tuple[Role, str]] = []
    for question, answer in pairs:
        history += [(Role.USER, question), (Role.ASSISTANT, answer)]
    return history


async def message_rows(page: Any) -> list[dict[str, str]]:
    """Every shown message, top to bottom: its role, content and id."""
    return await (
        page.get_by_test_id("message-list")
        .get_by_test_id("message")
        .evaluate_all(
            """items => items.map(item => ({
                role: item.dataset.role,
                id: item.dataset.messageId || "",
                content: item.querySelector(".message-content").textContent,
            }))"""
        )
    )


def session_item(page: Any, session_id: str) -> Any:
    return page.locator(f'[data-testid="session-item"][data-session-id="{session_id}"]')
