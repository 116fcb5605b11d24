"""Queries and mutations over sessions and their history."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
import strawberry
from strawberry import relay

from ..core import conversation, deliveries, forgetting, sessions
from ..core.channels import WEB
from ..core.errors import AgentFailed, NotFound
from ..core.models import MessageRow, SessionRow
from ..core.pagination import Keyset, page_size, window
from ..core.sessions import SessionKey
from .search import load_message_page_from
from .types import (
    Channel,
    ChatMessage,
    ChatMessageConnection,
    ChatSession,
    ChatSessionConnection,
    Info,
    load_message_page,
    page_info,
)

# `sessions(channel:)`: the viewer's sessions (a person's, or those of the person a service
# token acts as), optionally one channel's.
SESSIONS = Keyset("s1", "updated_at desc, id desc", (datetime, uuid.UUID))


async def _own_session(info: Info, session_id: str) -> SessionRow:
    viewer = info.context.require_viewer()
    row = await sessions.get_session(info.context.pool, viewer.user_id, session_id)
    if row is None:
        raise NotFound("no such session")
    return row


AGENT_FAILED_MESSAGE = "the agent could not answer; your message was saved"


def _first_message_session_id(user_id: uuid.UUID, key: str | None) -> str | None:
    """A retried first message (same clientMessageId) lands in the session its first attempt
    created, not in a second one. Without a client id: a fresh session."""
    if key is None:
        return None
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"unified-sessions:{user_id}:{key}"))


async def _deliver_to_its_channel(info: Info, session: SessionRow, reply: MessageRow) -> None:
    """A reply to a question asked on the web in another channel's session goes there too
    (through the worker's outbox), if that channel delivers."""
    channel = next((c for c in info.context.channels if c.name == session.channel), None)
    if channel is None or channel.delivery is None:
        return
    part = channel.delivery()
    target = await part.target(info.context.pool, session)
    row = await deliveries.queue(
        info.context.pool, reply.id, channel.name, target, no_target=part.no_target
    )
    wake = getattr(info.context.state, deliveries.WAKE, None)
    if row.status == "pending" and wake is not None:
        await wake(row.id)


async def _set_archived(info: Info, session_id: str, archived: bool) -> ChatSession:
    viewer = info.context.require_viewer()
    row = await sessions.set_archived(info.context.pool, viewer.user_id, session_id, archived)
    if row is None:
        raise NotFound("no such session")
    return ChatSession.from_row(row)


@strawberry.type
class SessionQuery:
    @strawberry.field(description="Any of the viewer's objects by its global id; null if none.")
    async def node(self, info: Info, id: relay.GlobalID) -> relay.Node | None:
        try:
            return await id.resolve_node(info, required=False)
        except NotImplementedError:  # a type name like "Node" that has no nodes of its own
            return None

    @strawberry.field(
        description="The viewer's sessions, newest activity first: the unarchived ones, or "
        "with archived: true the archived ones."
    )
    async def sessions(
        self,
        info: Info,
        channel: Channel | None = None,
        first: int | None = None,
        after: str | None = None,
        archived: bool | None = False,
    ) -> ChatSessionConnection:
        viewer = info.context.require_viewer()
        limit = page_size(first, "first")
        channel_value = channel.value if channel else None
        scope: tuple[str, ...] = (str(viewer.user_id), channel_value or "*")
        if archived:  # another list: its cursors are bound to it (the default's stay as they were)
            scope += ("archived",)
        key = SessionKey(*SESSIONS.read(after, scope, "after")) if after is not None else None
        rows, has_more = window(
            await sessions.list_sessions(
                info.context.pool,
                viewer.user_id,
                limit=limit + 1,
                channel=channel_value,
                after=key,
                archived=bool(archived),
            ),
            limit,
        )
        edges = [
            relay.Edge(
                cursor=SESSIONS.cursor(scope, r.updated_at, r.id), node=ChatSession.from_row(r)
            )
            for r in rows
        ]
        return ChatSessionConnection(
            edges=edges, page_info=page_info(edges, has_next=has_more, has_previous=key is not None)
        )

    @strawberry.field(description="One of the viewer's sessions; null if there is none by that id.")
    async def session(self, info: Info, session_id: str) -> ChatSession | None:
        viewer = info.context.require_viewer()
        row = await sessions.get_session(info.context.pool, viewer.user_id, session_id)
        return ChatSession.from_row(row) if row else None

    @strawberry.field(
        description="The `last` messages older than `before`, oldest to newest; or with `after` "
        "the `last` messages just newer than it; or with `around` (a message's cursor, e.g. a "
        "search hit's messageCursor) `last` messages centred on that message."
    )
    async def messages(
        self,
        info: Info,
        session_id: str,
        last: int | None = None,
        before: str | None = None,
        after: str | None = None,
        around: str | None = None,
    ) -> ChatMessageConnection:
        row = await _own_session(info, session_id)
        if after is not None or around is not None:
            return await load_message_page_from(
                info, row.session_id, last, before=before, after=after, around=around
            )
        return await load_message_page(info, row.session_id, last, before)


@strawberry.input
class UpsertSessionInput:
    session_id: str | None = strawberry.field(
        default=None, description="Absent: a new session with a generated id."
    )
    channel: Channel = Channel(WEB)
    agent_name: str | None = None
    is_active: bool | None = None
    user_id: uuid.UUID | None = strawberry.field(
        default=None,
        description="Whose session. Only the service identity may name another person.",
    )


@strawberry.input
class SendMessageInput:
    session_id: str | None = strawberry.field(
        default=None, description="Absent: the message starts a new web session."
    )
    content: str
    client_message_id: str | None = strawberry.field(
        default=None,
        description="The client's id for this message: a retry with it stores nothing twice.",
    )


@strawberry.input
class RenameSessionInput:
    session_id: str
    title: str = strawberry.field(description="1-80 characters.")


@strawberry.input
class ArchiveSessionInput:
    session_id: str


@strawberry.input
class DeleteSessionInput:
    session_id: str


@strawberry.type
class DeleteSessionPayload:
    deleted_session_id: str


# sendMessage in a session deleted while its turn ran: nothing of the turn was kept.
SESSION_DELETED_MESSAGE = "no such session (it was deleted)"


@strawberry.type
class SendMessagePayload:
    session: ChatSession
    user_message: ChatMessage
    _reply: strawberry.Private[MessageRow | None]
    _failure: strawberry.Private[AgentFailed | None]

    @strawberry.field(
        description="The agent's answer; null with an AGENT_FAILED error if it failed."
    )
    def reply(self) -> ChatMessage | None:
        if self._failure is not None:
            raise self._failure
        return ChatMessage.from_row(self._reply) if self._reply else None


@strawberry.type
class SessionMutation:
    @strawberry.mutation(description="Create a session or update its agent and activity.")
    async def upsert_session(self, info: Info, input: UpsertSessionInput) -> ChatSession:
        viewer = info.context.require_viewer()
        row = await sessions.upsert_session(
            info.context.pool,
            viewer,
            sessions.SessionUpsert(
                session_id=input.session_id,
                channel=input.channel.value,
                agent_name=input.agent_name,
                is_active=input.is_active,
                user_id=input.user_id,
            ),
            default_agent_name=info.context.settings.default_agent_name,
            reserved_prefixes=info.context.reserved_prefixes,
        )
        return ChatSession.from_row(row)

    @strawberry.mutation(description="Name one of the viewer's sessions.")
    async def rename_session(self, info: Info, input: RenameSessionInput) -> ChatSession:
        viewer = info.context.require_viewer()
        row = await sessions.rename_session(
            info.context.pool, viewer.user_id, input.session_id, input.title
        )
        if row is None:
            raise NotFound("no such session")
        return ChatSession.from_row(row)

    @strawberry.mutation(description="Move a session out of the default list (sessions).")
    async def archive_session(self, info: Info, input: ArchiveSessionInput) -> ChatSession:
        return await _set_archived(info, input.session_id, True)

    @strawberry.mutation(description="Bring an archived session back into the default list.")
    async def unarchive_session(self, info: Info, input: ArchiveSessionInput) -> ChatSession:
        return await _set_archived(info, input.session_id, False)

    @strawberry.mutation(
        description="Delete one of the viewer's sessions for good, with its messages, their "
        "deliveries and its read marks. Its id is never used again."
    )
    async def delete_session(self, info: Info, input: DeleteSessionInput) -> DeleteSessionPayload:
        viewer = info.context.require_viewer()
        if not await forgetting.delete_session(info.context.pool, viewer.user_id, input.session_id):
            raise NotFound("no such session")
        return DeleteSessionPayload(deleted_session_id=input.session_id)

    @strawberry.mutation(
        description="Send a message in one of the viewer's sessions, whatever its channel, and get "
        "the agent's reply; in a Telegram session the reply is also sent to its chat."
    )
    async def send_message(self, info: Info, input: SendMessageInput) -> SendMessagePayload:
        viewer = info.context.require_viewer()
        pool = info.context.pool
        key = None
        if input.client_message_id is not None:
            key = "web:" + sessions.validate_session_id(input.client_message_id)
        if input.session_id is None:
            session = await sessions.upsert_session(
                pool,
                viewer,
                sessions.SessionUpsert(
                    session_id=_first_message_session_id(viewer.user_id, key),
                    channel=WEB,
                    user_id=viewer.user_id,
                ),
                default_agent_name=info.context.settings.default_agent_name,
            )
        else:
            session = await _own_session(info, input.session_id)
        try:
            turn = await conversation.run_turn(
                pool,
                info.context.agent,
                session,
                input.content,
                idempotency_key=key,
                agent_timeout=info.context.settings.agent_timeout,
                via=WEB,
            )
            if turn.reply is not None and session.channel != WEB:
                await _deliver_to_its_channel(info, session, turn.reply)
        except asyncpg.ForeignKeyViolationError:  # the session was deleted during the turn
            raise NotFound(SESSION_DELETED_MESSAGE) from None
        failure = None
        if turn.failure is not None:  # recorded on turn.session; the message is stored
            failure = AgentFailed(AGENT_FAILED_MESSAGE, user_message=turn.user_message)
        return SendMessagePayload(
            session=ChatSession.from_row(turn.session),
            user_message=ChatMessage.from_row(turn.user_message),
            _reply=turn.reply,
            _failure=failure,
        )
