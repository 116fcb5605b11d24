"""`search`: full-text hits over the viewer's messages of every channel, and the history pages
that open a session at a hit (`messages(sessionId, around: hit.messageCursor)`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg
import strawberry
from strawberry import relay
from strawberry.dataloader import DataLoader

from ..core import messages, search
from ..core.channels import SchemaPart
from ..core.errors import BadInput, NotFound
from ..core.models import MessageRow, SessionRow
from ..core.pagination import Keyset, page_size, window
from .context import SharedLoader
from .types import (
    MESSAGES,
    Channel,
    ChatMessage,
    ChatMessageConnection,
    ChatSession,
    Info,
    message_cursor,
    page_info,
)

# `search(...)`: bound to the viewer and the whole filter, so a cursor pages only its own search.
HITS = Keyset("h1", "created_at desc, id desc", (datetime, int))

SessionKey = tuple[uuid.UUID, str]  # (owner, session_id)


def owned_sessions(pool: asyncpg.Pool) -> DataLoader[SessionKey, SessionRow | None]:
    """Sessions by (owner, id), one query per owner for a page of hits."""

    async def load(keys: Sequence[SessionKey]) -> list[SessionRow | None]:
        found: dict[SessionKey, SessionRow] = {}
        for owner in {owner for owner, _ in keys}:
            ids = [session_id for o, session_id in keys if o == owner]
            for row in await search.sessions_of(pool, owner, ids):
                found[(owner, row.session_id)] = row
        return [found.get(key) for key in keys]

    return SharedLoader(load_fn=load)


@strawberry.type(description="A message of the viewer's that matches a search.")
class SearchHit:
    message: ChatMessage
    snippet: str = strawberry.field(
        description="Where the message matches, as HTML: the text escaped, each match in "
        "<mark>...</mark> (the only tags), fragments joined by ' … '."
    )
    message_cursor: str = strawberry.field(
        description="The message's cursor in its session: messages(sessionId, around:) opens "
        "the history there."
    )
    _owner: strawberry.Private[uuid.UUID]
    _session_id: strawberry.Private[str]

    @strawberry.field
    async def session(self, info: Info) -> ChatSession:
        row = await info.context.loader(owned_sessions).load((self._owner, self._session_id))
        if row is None:  # deleted between the search and this read
            raise NotFound("no such session")
        return ChatSession.from_row(row)


# A hit is no Node (it has no global id of its own); Relay's connection shape fits it anyway.
@strawberry.type
class SearchHitConnection(relay.Connection[SearchHit]):  # type: ignore[type-var]
    """Search hits, newest message first."""


def _scope(user_id: uuid.UUID, spec: search.SearchFilter) -> tuple[str, ...]:
    moments = (m.isoformat() if m else "" for m in (spec.since, spec.until))
    return (str(user_id), spec.query, spec.channel or "*", *moments)


@strawberry.type
class SearchQuery:
    @strawberry.field(
        description="The viewer's messages of every channel matching `query` (web search "
        'syntax: words, "a phrase", -excluded, or), stemmed; newest first. Optionally only '
        "one channel's sessions, and messages from `since` (inclusive) until `until` "
        "(exclusive)."
    )
    async def search(
        self,
        info: Info,
        query: str,
        channel: Channel | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> SearchHitConnection:
        viewer = info.context.require_viewer()
        limit = page_size(first, "first")
        channel_value = channel.value if channel else None
        spec = search.validate_filter(search.SearchFilter(query, channel_value, since, until))
        scope = _scope(viewer.user_id, spec)
        key = search.SearchKey(*HITS.read(after, scope, "after")) if after is not None else None
        hits, has_more = window(
            await search.search_messages(
                info.context.pool,
                viewer.user_id,
                spec,
                config=info.context.settings.search_language,
                limit=limit + 1,
                after=key,
            ),
            limit,
        )
        edges = [
            relay.Edge(cursor=_cursor(scope, hit), node=_node(viewer.user_id, hit))  # type: ignore[type-var]
            for hit in hits
        ]
        return SearchHitConnection(
            edges=edges, page_info=page_info(edges, has_next=has_more, has_previous=key is not None)
        )


def _cursor(scope: tuple[str, ...], hit: search.SearchHit) -> str:
    return HITS.cursor(scope, hit.message.created_at, hit.message.id)


def _node(owner: uuid.UUID, hit: search.SearchHit) -> SearchHit:
    return SearchHit(
        message=ChatMessage.from_row(hit.message),
        snippet=hit.snippet,
        message_cursor=message_cursor(hit.message.session_id, hit.message.id),
        _owner=owner,
        _session_id=hit.message.session_id,
    )


async def load_message_page_from(
    info: Info,
    session_id: str,
    last: int | None,
    *,
    before: str | None,
    after: str | None,
    around: str | None,
) -> ChatMessageConnection:
    """`messages` with `after` (the `last` messages just newer than it) or `around` (a page of
    `last` centred on that message: half older, the message, the rest newer)."""
    if sum(cursor is not None for cursor in (before, after, around)) != 1 or before is not None:
        raise BadInput("give at most one of before, after and around", field="around")
    limit = page_size(last, "last")
    pool = info.context.pool
    if after is not None:
        after_id = MESSAGES.read(after, (session_id,), "after")[0]
        rows, has_next = window(
            await messages.page_after(pool, session_id, after_id, limit + 1), limit
        )
        return _connection(session_id, rows, has_next=has_next, has_previous=True)
    assert around is not None
    centre = MESSAGES.read(around, (session_id,), "around")[0]
    older_count = limit // 2
    newer_count = limit - older_count - 1
    # The centre and older ones, one more than needed (is there a previous page?).
    upto = await messages.page_before(pool, session_id, older_count + 2, centre + 1)
    upto, has_previous = window(upto, older_count + 1, newest_last=True)
    newer, has_next = window(
        await messages.page_after(pool, session_id, centre, newer_count + 1), newer_count
    )
    return _connection(session_id, upto + newer, has_next=has_next, has_previous=has_previous)


def _connection(
    session_id: str, rows: Sequence[MessageRow], *, has_next: bool, has_previous: bool
) -> ChatMessageConnection:
    edges = [
        relay.Edge(cursor=message_cursor(session_id, r.id), node=ChatMessage.from_row(r))
        for r in rows
    ]
    return ChatMessageConnection(
        edges=edges, page_info=page_info(edges, has_next=has_next, has_previous=has_previous)
    )


SEARCH = SchemaPart(query=SearchQuery)
