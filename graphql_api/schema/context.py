"""The per-request context: the viewer and fresh DataLoaders, never shared across requests."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg
from strawberry.dataloader import DataLoader

from ..core import messages, schedule_runs
from ..core.agent import Agent
from ..core.errors import Unauthenticated
from ..core.models import MessageRow, SessionRow
from ..core.settings import Settings
from ..core.tokens import InvalidToken, TokenVerifier, Viewer

if TYPE_CHECKING:
    from ..app import Resources

PageKey = tuple[str, int | None, int]  # (session_id, before message id or None, rows to fetch)


def _message_pages_loader(pool: asyncpg.Pool) -> DataLoader[PageKey, list[MessageRow]]:
    async def load(keys: Sequence[PageKey]) -> list[list[MessageRow]]:
        by_limit: dict[int, list[tuple[str, int | None]]] = defaultdict(list)
        for session_id, before, limit in keys:
            by_limit[limit].append((session_id, before))
        found: dict[PageKey, list[MessageRow]] = {}
        for limit, requests in by_limit.items():
            pages = await messages.pages_before(pool, requests, limit)
            for (session_id, before), page in pages.items():
                found[(session_id, before, limit)] = page
        return [found[key] for key in keys]

    return DataLoader(load_fn=load)


RunPageKey = tuple[uuid.UUID, datetime | None, int]  # (schedule id, before slot, rows to fetch)
RunPage = list[tuple[datetime, SessionRow]]


def _schedule_runs_loader(pool: asyncpg.Pool) -> DataLoader[RunPageKey, RunPage]:
    async def load(keys: Sequence[RunPageKey]) -> list[RunPage]:
        by_limit: dict[int, list[schedule_runs.RunPageKey]] = defaultdict(list)
        for schedule_id, before, limit in keys:
            by_limit[limit].append((schedule_id, before))
        found: dict[RunPageKey, RunPage] = {}
        for limit, requests in by_limit.items():
            pages = await schedule_runs.run_session_pages(pool, requests, limit)
            for (schedule_id, before), page in pages.items():
                found[(schedule_id, before, limit)] = page
        return [found[key] for key in keys]

    return DataLoader(load_fn=load)


@dataclass
class Loaders:
    message_pages: DataLoader[PageKey, list[MessageRow]]
    schedule_runs: DataLoader[RunPageKey, RunPage]

    @classmethod
    def for_request(cls, pool: asyncpg.Pool) -> Loaders:
        return cls(
            message_pages=_message_pages_loader(pool),
            schedule_runs=_schedule_runs_loader(pool),
        )


@dataclass
class Context:
    resources: Resources
    loaders: Loaders
    viewer: Viewer | None = None
    auth_problem: str | None = None
    request: Any = field(default=None, repr=False)
    response: Any = field(default=None, repr=False)

    @property
    def pool(self) -> asyncpg.Pool:
        return self.resources.pool

    @property
    def agent(self) -> Agent:
        return self.resources.agent

    @property
    def settings(self) -> Settings:
        return self.resources.settings

    def require_viewer(self) -> Viewer:
        if self.viewer is None:
            raise Unauthenticated(
                self.auth_problem or "sign in: send Authorization: Bearer <token>"
            )
        return self.viewer


async def authenticate(
    verifier: TokenVerifier, authorization: str | None
) -> tuple[Viewer | None, str | None]:
    """The viewer named by an Authorization header, or the reason there is none. The anon key
    is no viewer: the request is anonymous, as without a token."""
    if not authorization:
        return None, None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None, "the Authorization header must be 'Bearer <token>'"
    try:
        viewer = await verifier.verify(token.strip())
    except InvalidToken:
        return None, "the token is invalid or expired"
    if viewer is None:
        return None, "the anon key signs no one in: send a person's access token"
    return viewer, None
