"""The GraphQL types of the registry: sessions, messages and their Relay connections."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg
import strawberry
from strawberry import relay

from ..channels import channel_names
from ..core import messages, sessions
from ..core.deliveries import DeliveryRow
from ..core.models import MessageRow, Role, SessionRow, parse_uuid
from ..core.pagination import Keyset, page_size, window
from .context import Context, message_deliveries, message_pages, session_channels, unread_counts

Info = strawberry.Info[Context, None]

# A session's history, wherever it is paged (`messages`, `ChatSession.messages`): bound to the
# session, not the viewer, so one cursor is valid in every view of that session.
MESSAGES = Keyset("m1", "id", (int,))


def message_cursor(session_id: str, message_id: int) -> str:
    return MESSAGES.cursor((session_id,), message_id)


def page_info(
    edges: Sequence[relay.Edge[Any]], *, has_next: bool, has_previous: bool
) -> relay.PageInfo:
    return relay.PageInfo(
        has_next_page=has_next,
        has_previous_page=has_previous,
        start_cursor=edges[0].cursor if edges else None,
        end_cursor=edges[-1].cursor if edges else None,
    )


if TYPE_CHECKING:

    class Channel(Enum):
        """One member per installed channel, e.g. Channel.WEB == Channel("web")."""

else:
    # Each installed channel's name, upper-cased: WEB, then the registered channels in order.
    Channel = strawberry.enum(Enum("Channel", [(n.upper(), n) for n in channel_names()]))


strawberry.enum(Role, name="MessageRole")  # the core's Role, under its GraphQL name


@strawberry.enum
class DeliveryStatus(Enum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


@strawberry.type(description="A message sent out through a channel by the worker's outbox.")
class Delivery:
    channel: Channel
    status: DeliveryStatus
    attempts: int
    last_error: str | None = strawberry.field(description="Why the last attempt failed.")
    sent_at: datetime | None

    @classmethod
    def from_row(cls, row: DeliveryRow) -> Delivery:
        return cls(
            channel=Channel(row.channel),
            status=DeliveryStatus(row.status),
            attempts=row.attempts,
            last_error=row.last_error,
            sent_at=row.sent_at,
        )


@strawberry.type
class ChatMessage(relay.Node):
    id: relay.NodeID[str]
    role: Role
    content: str
    created_at: datetime
    _session_id: strawberry.Private[str]
    _via: strawberry.Private[str | None]

    @classmethod
    def from_row(cls, row: MessageRow) -> ChatMessage:
        return cls(
            id=str(row.id),
            role=row.role,
            content=row.content,
            created_at=row.created_at,
            _session_id=row.session_id,
            _via=row.via,
        )

    @strawberry.field(description="The door the message came in by.")
    async def via(self, info: Info) -> Channel:
        if self._via is not None:
            return Channel(self._via)
        # Stored before doors were recorded: its session's own channel.
        return Channel(await info.context.loader(session_channels).load(self._session_id))

    @strawberry.field(description="Where the message was (or is being) sent out, and how it went.")
    async def deliveries(self, info: Info) -> list[Delivery]:
        rows = await info.context.loader(message_deliveries).load(int(self.id))
        return [Delivery.from_row(r) for r in rows]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[ChatMessage | None]:
        viewer = info.context.require_viewer()
        found: list[ChatMessage | None] = []
        for node_id in node_ids:
            row = None
            if node_id.isascii() and node_id.isdigit() and len(node_id) <= 18:
                row = await messages.get_message(info.context.pool, viewer.user_id, int(node_id))
            found.append(cls.from_row(row) if row else None)
        return found


@strawberry.type
class ChatMessageConnection(relay.Connection[ChatMessage]):
    """A page of a session's history, oldest to newest; `hasPreviousPage` while older ones exist."""

    @classmethod
    def from_page(
        cls, session_id: str, rows: list[MessageRow], *, limit: int, before: int | None
    ) -> Any:
        rows, has_older = window(rows, limit, newest_last=True)
        edges = [
            relay.Edge(cursor=message_cursor(session_id, r.id), node=ChatMessage.from_row(r))
            for r in rows
        ]
        return cls(
            edges=edges,
            page_info=page_info(edges, has_next=before is not None, has_previous=has_older),
        )


async def load_message_page(
    info: Info, session_id: str, last: int | None, before: str | None
) -> ChatMessageConnection:
    limit = page_size(last, "last")
    before_id = MESSAGES.read(before, (session_id,), "before")[0] if before is not None else None
    rows = await info.context.loader(message_pages).load((session_id, before_id, limit + 1))
    return ChatMessageConnection.from_page(session_id, rows, limit=limit, before=before_id)


RowT = TypeVar("RowT")
NodeT = TypeVar("NodeT")


async def resolve_owned_nodes(
    info: Info,
    node_ids: Iterable[str],
    fetch_by_ids: Callable[
        [asyncpg.Pool, uuid.UUID, list[uuid.UUID]], Awaitable[dict[uuid.UUID, RowT]]
    ],
    from_row: Callable[[RowT], NodeT],
) -> list[NodeT | None]:
    """Nodes by uuid ids, in order; None for an id the viewer does not own or that is malformed."""
    viewer = info.context.require_viewer()
    ids = [parse_uuid(node_id) for node_id in node_ids]
    rows = await fetch_by_ids(info.context.pool, viewer.user_id, [i for i in ids if i is not None])
    return [from_row(rows[i]) if i is not None and i in rows else None for i in ids]


@strawberry.type
class ChatSession(relay.Node):
    id: relay.NodeID[str]
    session_id: str
    channel: Channel
    agent_name: str
    is_active: bool
    created_at: datetime
    updated_at: datetime = strawberry.field(description="Last activity.")
    last_error: str | None = strawberry.field(
        description="Why the last turn failed, if it did; cleared by the next successful turn."
    )
    last_error_at: datetime | None
    title: str | None = strawberry.field(
        description="From the session's first message (its first 80 characters), or renamed."
    )
    archived_at: datetime | None = strawberry.field(description="Null unless archived.")

    @classmethod
    def from_row(cls, row: SessionRow) -> ChatSession:
        return cls(
            id=str(row.id),
            session_id=row.session_id,
            channel=Channel(row.channel),
            agent_name=row.agent_name,
            is_active=row.is_active,
            created_at=row.created_at,
            updated_at=row.updated_at,
            last_error=row.last_error,
            last_error_at=row.last_error_at,
            title=row.title,
            archived_at=row.archived_at,
        )

    @strawberry.field(description="The newest message, or null for an empty session.")
    async def last_message(self, info: Info) -> ChatMessage | None:
        rows = await info.context.loader(message_pages).load((self.session_id, None, 1))
        return ChatMessage.from_row(rows[-1]) if rows else None

    @strawberry.field(description="The `last` messages older than `before`, oldest to newest.")
    async def messages(
        self, info: Info, last: int | None = None, before: str | None = None
    ) -> ChatMessageConnection:
        return await load_message_page(info, self.session_id, last, before)

    @strawberry.field(
        description="Messages after the viewer's read mark that are not the viewer's own, "
        "counted up to 100 (markSessionRead moves the mark)."
    )
    async def unread_count(self, info: Info) -> int:
        viewer = info.context.require_viewer()
        return await info.context.loader(unread_counts).load((viewer.user_id, self.session_id))

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[ChatSession | None]:
        return await resolve_owned_nodes(info, node_ids, sessions.get_sessions_by_ids, cls.from_row)


@strawberry.type
class ChatSessionConnection(relay.Connection[ChatSession]):
    """The viewer's sessions, newest activity first."""
