"""The per-request context: the viewer and fresh DataLoaders, never shared across requests."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
from strawberry.dataloader import DataLoader

from ..core import deliveries, messages, reads
from ..core.agent import Agent
from ..core.channels import Channel
from ..core.errors import Unauthenticated
from ..core.models import MessageRow
from ..core.runtime import Resources
from ..core.settings import Settings
from ..core.tokens import InvalidToken, TokenVerifier, Viewer

K = TypeVar("K")
V = TypeVar("V")


class SharedLoader(DataLoader[K, V]):
    """A DataLoader whose shared futures survive one waiter's cancellation.

    Strawberry's DataLoader hands every resolver asking for a key the same future. When a
    field error nulls a parent, graphql-core cancels the parent's pending fields, and a task
    cancelled while awaiting a future cancels that future: every other resolver waiting for
    the key then got CancelledError, which escaped as an HTTP 500. Each waiter now awaits its
    own shield of the shared future (DataLoader.load, public API).
    """

    def load(self, key: K) -> Awaitable[V]:
        return asyncio.shield(super().load(key))


LoaderFactory = Callable[[asyncpg.Pool], DataLoader[K, V]]

A = TypeVar("A")
B = TypeVar("B")
P = TypeVar("P")
PagesFetch = Callable[[asyncpg.Pool, list[tuple[A, B]], int], Awaitable[dict[tuple[A, B], P]]]


def paged_loader(pool: asyncpg.Pool, fetch: PagesFetch[A, B, P]) -> DataLoader[tuple[A, B, int], P]:
    """A loader of pages keyed (list, position, rows to fetch): `fetch` reads the pages of many
    lists in one statement per page size."""

    async def load(keys: Sequence[tuple[A, B, int]]) -> list[P]:
        by_limit: dict[int, list[tuple[A, B]]] = defaultdict(list)
        for owner, position, limit in keys:
            by_limit[limit].append((owner, position))
        found: dict[tuple[A, B, int], P] = {}
        for limit, requests in by_limit.items():
            for (owner, position), page in (await fetch(pool, requests, limit)).items():
                found[(owner, position, limit)] = page
        return [found[key] for key in keys]

    return SharedLoader(load_fn=load)


PageKey = tuple[str, int | None, int]  # (session_id, before message id or None, rows to fetch)


def message_pages(pool: asyncpg.Pool) -> DataLoader[PageKey, list[MessageRow]]:
    """Pages of many sessions' histories in one query per page size."""
    return paged_loader(pool, messages.pages_before)


def session_channels(pool: asyncpg.Pool) -> DataLoader[str, str]:
    """Sessions' channels by session id (for messages stored before `via` was recorded)."""

    async def load(keys: Sequence[str]) -> list[str]:
        records = await pool.fetch(
            "SELECT session_id, channel FROM chat_sessions WHERE session_id = ANY($1::text[])",
            list(keys),
        )
        found = {r["session_id"]: r["channel"] for r in records}
        return [found.get(key, "web") for key in keys]

    return SharedLoader(load_fn=load)


def message_deliveries(pool: asyncpg.Pool) -> DataLoader[int, list[deliveries.DeliveryRow]]:
    async def load(keys: Sequence[int]) -> list[list[deliveries.DeliveryRow]]:
        found = await deliveries.of_messages(pool, keys)
        return [found.get(key, []) for key in keys]

    return SharedLoader(load_fn=load)


UnreadKey = tuple[uuid.UUID, str]  # (person, session_id)


def unread_counts(pool: asyncpg.Pool) -> DataLoader[UnreadKey, int]:
    """Unread counts of a page of sessions in one query per person."""

    async def load(keys: Sequence[UnreadKey]) -> list[int]:
        by_user: dict[uuid.UUID, list[str]] = defaultdict(list)
        for user_id, session_id in keys:
            by_user[user_id].append(session_id)
        found: dict[UnreadKey, int] = {}
        for user_id, session_ids in by_user.items():
            counts = await reads.unread_counts(pool, user_id, session_ids)
            found.update({(user_id, sid): n for sid, n in counts.items()})
        return [found.get(key, 0) for key in keys]

    return SharedLoader(load_fn=load)


@dataclass
class Context:
    resources: Resources
    state: Any = None  # the app's lifespan state (request.state): what channels opened at startup
    channels: tuple[Channel, ...] = ()
    viewer: Viewer | None = None
    auth_problem: str | None = None
    request: Any = field(default=None, repr=False)
    response: Any = field(default=None, repr=False)
    connection_params: dict[str, Any] | None = field(default=None, repr=False)  # WebSocket init
    _loaders: dict[object, DataLoader[Any, Any]] = field(default_factory=dict, repr=False)

    @property
    def pool(self) -> asyncpg.Pool:
        return self.resources.pool

    @property
    def agent(self) -> Agent:
        return self.resources.agent

    @property
    def settings(self) -> Settings:
        return self.resources.settings

    @property
    def reserved_prefixes(self) -> tuple[str, ...]:
        """Session-id prefixes the channels mint, which people may not use."""
        return tuple(c.service_id_prefix for c in self.channels if c.service_id_prefix)

    def loader(self, factory: LoaderFactory[K, V]) -> DataLoader[K, V]:
        """This request's DataLoader made by `factory`: made on first use, then shared by every
        resolver of the request (and of no other request)."""
        found = self._loaders.get(factory)
        if found is None:
            found = self._loaders[factory] = factory(self.pool)
        return found

    def fresh_loaders(self) -> None:
        """Forget this context's DataLoaders. A WebSocket connection has one context for all its
        subscriptions: each event must read afresh, not what an earlier event cached."""
        self._loaders.clear()

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
