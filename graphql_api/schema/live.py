"""Live: `sessionEvents` and `messageEvents` subscriptions, read marks (`markSessionRead`).

A subscription follows hints from the process's EventHub (graphql_api/core/events.py) and reads
the rows itself, scoped to its viewer: another person's session yields the same NOT_FOUND as a
missing one, before anything is sent. `messageEvents(after:)` first replays every message newer
than the cursor, oldest first, then goes live; it remembers what it sent, so a message is sent
once even when a replay and a hint overlap. Every subscription ends when its token expires.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from enum import Enum

import asyncpg
import strawberry

from ..core import events, messages, reads, sessions
from ..core.errors import NotFound, ServiceUnavailable
from ..core.events import EventHub, Listener
from ..core.models import MessageRow
from ..core.tokens import Viewer
from .types import (
    MESSAGES,
    Channel,
    ChatMessage,
    ChatSession,
    Info,
    message_cursor,
)

HUB = "events"  # the lifespan state's EventHub (graphql_api/app.py)
REPLAY_PAGE = 100
PROGRESS_INTERVAL = 0.1  # at most ~10 REPLY_PROGRESS events a second per subscription


@strawberry.enum
class SessionEventKind(Enum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"


@strawberry.enum
class MessageEventKind(Enum):
    ADDED = "ADDED"
    REPLY_PROGRESS = "REPLY_PROGRESS"
    REPLY_FAILED = "REPLY_FAILED"


@strawberry.type(description="One of the viewer's sessions was created, changed or deleted.")
class SessionEvent:
    kind: SessionEventKind
    session_id: str
    session: ChatSession | None = strawberry.field(description="Null once deleted.")


@strawberry.type(description="A message was added, or the agent's reply is being written.")
class MessageEvent:
    kind: MessageEventKind
    message: ChatMessage | None = strawberry.field(description="ADDED: the message.")
    cursor: str | None = strawberry.field(description="ADDED: resume `after:` this cursor.")
    text: str | None = strawberry.field(
        description="REPLY_PROGRESS: the reply so far. REPLY_FAILED: why it failed."
    )

    @classmethod
    def added(cls, row: MessageRow) -> MessageEvent:
        return cls(
            kind=MessageEventKind.ADDED,
            message=ChatMessage.from_row(row),
            cursor=message_cursor(row.session_id, row.id),
            text=None,
        )


def _hub(info: Info) -> EventHub:
    hub: EventHub | None = getattr(info.context.state, HUB, None)
    if hub is None:
        raise ServiceUnavailable("live updates are not available on this server")
    return hub


async def _until_expiry(viewer: Viewer, inbox: Listener) -> AsyncIterator[events.Event]:
    """The inbox's events until the viewer's token expires."""
    while True:
        remaining = None if viewer.expires_at is None else viewer.expires_at - time.time()
        if remaining is not None and remaining <= 0:
            return
        try:
            async with asyncio.timeout(remaining):
                yield await inbox.get()
        except TimeoutError:
            return


@strawberry.type
class LiveSubscription:
    @strawberry.subscription(description="The viewer's sessions as they are created and change.")
    async def session_events(
        self, info: Info, channel: Channel | None = None
    ) -> AsyncGenerator[SessionEvent, None]:
        viewer = info.context.require_viewer()
        user_id = viewer.user_id
        with _hub(info).follow(user_id=user_id) as inbox:
            async for event in _until_expiry(viewer, inbox):
                if not isinstance(event, events.SessionChanged):
                    continue
                if event.kind == SessionEventKind.DELETED.value:  # the hub sends the owner's only
                    if channel is None or event.channel == channel.value:
                        yield SessionEvent(
                            kind=SessionEventKind.DELETED, session_id=event.session_id, session=None
                        )
                    continue
                row = await sessions.get_session(info.context.pool, user_id, event.session_id)
                if row is None or (channel is not None and row.channel != channel.value):
                    continue
                kind = SessionEventKind(event.kind)
                info.context.fresh_loaders()
                yield SessionEvent(
                    kind=kind, session_id=row.session_id, session=ChatSession.from_row(row)
                )

    @strawberry.subscription(
        description="A session's new messages (after `after`: first every message newer than "
        "that cursor, oldest first) and its reply as the agent writes it."
    )
    async def message_events(
        self, info: Info, session_id: str, after: str | None = None
    ) -> AsyncGenerator[MessageEvent, None]:
        viewer = info.context.require_viewer()
        pool = info.context.pool
        owned = await sessions.get_session(pool, viewer.user_id, session_id)
        if owned is None:
            raise NotFound("no such session")
        after_id = MESSAGES.read(after, (session_id,), "after")[0] if after is not None else None
        with _hub(info).follow(session_id=session_id) as inbox:
            sent = _Sent(after_id)
            if after_id is not None:
                async for row in _replay(pool, session_id, sent):
                    yield MessageEvent.added(row)
            last_progress = 0.0
            async for event in _until_expiry(viewer, inbox):
                if isinstance(event, events.RowsAdded):
                    for row in sent.new(r for r in event.rows if r.session_id == session_id):
                        info.context.fresh_loaders()
                        yield MessageEvent.added(row)
                elif isinstance(event, events.MessagesAdded | events.Replay):
                    async for row in _replay(pool, session_id, sent):
                        yield MessageEvent.added(row)
                elif isinstance(event, events.ReplyProgress):
                    now = time.monotonic()
                    if now - last_progress >= PROGRESS_INTERVAL:
                        last_progress = now
                        yield MessageEvent(
                            kind=MessageEventKind.REPLY_PROGRESS,
                            message=None,
                            cursor=None,
                            text=event.text,
                        )
                elif isinstance(event, events.ReplyFailed):
                    yield MessageEvent(
                        kind=MessageEventKind.REPLY_FAILED,
                        message=None,
                        cursor=None,
                        text=event.reason,
                    )


class _Sent:
    """The ids a messageEvents subscription has sent, so none is sent twice. `high` is the
    newest; ids at or below the subscription's starting cursor count as sent."""

    def __init__(self, after_id: int | None) -> None:
        self.floor = after_id
        self.high = after_id or 0
        self._ids: set[int] = set()

    def new(self, rows: Iterable[MessageRow]) -> list[MessageRow]:
        fresh = [
            r for r in rows if r.id not in self._ids and (self.floor is None or r.id > self.floor)
        ]
        for row in fresh:
            self._ids.add(row.id)
            self.high = max(self.high, row.id)
        if len(self._ids) > 10_000:  # forget the oldest; they are below every later read
            self.floor = max(self.floor or 0, min(self._ids))
            self._ids = {i for i in self._ids if i > self.floor}
        return fresh


async def _replay(pool: asyncpg.Pool, session_id: str, sent: _Sent) -> AsyncIterator[MessageRow]:
    """Every message newer than what was sent, a bounded page at a time."""
    while True:
        page = await messages.page_after(pool, session_id, sent.high, REPLAY_PAGE)
        for row in sent.new(page):
            yield row
        if len(page) < REPLAY_PAGE:
            return


@strawberry.input
class MarkSessionReadInput:
    session_id: str
    up_to: str | None = strawberry.field(
        default=None, description="A message cursor; absent: the session's newest message."
    )


@strawberry.type
class LiveMutation:
    @strawberry.mutation(
        description="Mark the viewer's session read up to a message; marks never move back."
    )
    async def mark_session_read(self, info: Info, input: MarkSessionReadInput) -> ChatSession:
        viewer = info.context.require_viewer()
        pool = info.context.pool
        row = await sessions.get_session(pool, viewer.user_id, input.session_id)
        if row is None:
            raise NotFound("no such session")
        up_to = (
            MESSAGES.read(input.up_to, (row.session_id,), "upTo")[0]
            if input.up_to is not None
            else None
        )
        try:
            await reads.mark_read(pool, viewer.user_id, row.session_id, up_to)
        except asyncpg.ForeignKeyViolationError:  # deleted meanwhile: no mark is kept
            raise NotFound("no such session") from None
        return ChatSession.from_row(row)
