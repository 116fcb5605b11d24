"""Sessions: the one upsert every channel uses, and the reads the API pages through."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from .channels import WEB
from .db import Executor
from .errors import BadInput, Forbidden
from .models import SESSION_COLUMNS, SessionRow, parse_uuid
from .tokens import Viewer

SESSION_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")  # fullmatch
MAX_AGENT_NAME = 100


@dataclass(frozen=True)
class SessionUpsert:
    session_id: str | None = None
    channel: str = WEB
    agent_name: str | None = None
    is_active: bool | None = None
    user_id: uuid.UUID | None = None  # whose session; only the service identity may name another


def validate_session_id(session_id: str) -> str:
    if not SESSION_ID_PATTERN.fullmatch(session_id):
        raise BadInput(
            "sessionId must be 1-128 characters: letters, digits and . _ : @ -", field="sessionId"
        )
    return session_id


def _owner_for(actor: Viewer, spec: SessionUpsert, reserved: tuple[str, ...]) -> uuid.UUID:
    if actor.is_service:
        if spec.user_id is None:
            raise BadInput("userId is required when acting as the service", field="userId")
        return spec.user_id
    if spec.user_id is not None and spec.user_id != actor.user_id:
        raise Forbidden("you may only write your own sessions")
    if spec.channel != WEB:
        raise Forbidden("only web sessions are written by people; other channels' by the service")
    if spec.session_id is not None and reserved and spec.session_id.startswith(reserved):
        raise BadInput("sessionId may not start with " + " or ".join(reserved), field="sessionId")
    return actor.user_id


_UPSERT = f"""
INSERT INTO chat_sessions AS s (user_id, chat_id, session_id, channel, agent_name, is_active)
SELECT $1::uuid, coalesce($2::uuid, gen_random_uuid()), $3::text, $4::text, $5::text,
       coalesce($6::boolean, true)
 WHERE NOT EXISTS (SELECT FROM deleted_sessions d WHERE d.session_id = $3::text)
ON CONFLICT (session_id) WHERE session_id IS NOT NULL DO UPDATE
   SET agent_name = coalesce($7, s.agent_name),
       is_active  = coalesce($6, s.is_active),
       updated_at = now()
 WHERE s.user_id = EXCLUDED.user_id AND s.channel = EXCLUDED.channel
RETURNING {SESSION_COLUMNS}
"""

# A person naming an id that is not a uuid may only update their own session by it, never
# create one (see `upsert_session`).
_UPDATE_OWN = f"""
UPDATE chat_sessions AS s
   SET agent_name = coalesce($4, s.agent_name),
       is_active  = coalesce($5, s.is_active),
       updated_at = now()
 WHERE s.session_id = $1 AND s.user_id = $2 AND s.channel = $3
RETURNING {SESSION_COLUMNS}
"""

NEW_SESSION_ID_MUST_BE_UUID = "a new session's id must be a uuid"
DELETED_ID_REUSED = "US001"  # SQLSTATE of the tombstone trigger (db/migrations/20250116...)


class SessionDeleted(BadInput):
    """The id is of a session that was deleted (deleteSession, retention): it is never used
    again, so nothing stored later under it (a retry, a redelivery) brings its history back."""

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"session {session_id} was deleted; its id cannot be used again", field="sessionId"
        )


def is_canonical_uuid(value: str) -> bool:
    """`value` is a uuid in its one canonical spelling (lowercase, hyphenated)."""
    parsed = parse_uuid(value)
    return parsed is not None and str(parsed) == value


async def upsert_session(
    db: Executor,
    actor: Viewer,
    spec: SessionUpsert,
    *,
    default_agent_name: str = "assistant",
    reserved_prefixes: tuple[str, ...] = (),
) -> SessionRow:
    """Create the session or update its agent/activity, in one statement.

    Concurrent calls with the same session_id never duplicate (the unique index decides). A
    session_id that belongs to another person, or to another channel, is refused, never moved.

    A person (not the service) may create a session only under a canonical uuid id, and a
    refusal tells them nothing about anyone else's sessions: an id that is not their own gets
    BAD_USER_INPUT "a new session's id must be a uuid" (sessionId), whether it exists or not,
    and so does a uuid that is someone else's (reachable only by knowing that id already), after
    the same two statements. Ids starting with one of `reserved_prefixes` (those the channels
    mint: `tg-`, `sched:`) are the service's alone: a person's web session under one would be
    theirs first, and the channel's own upsert would then be refused. A deleted session's id
    (deleted_sessions) is refused to everyone, SessionDeleted (to a person only for their own;
    someone else's deleted id reads like someone else's live one).
    """
    owner = _owner_for(actor, spec, reserved_prefixes)
    chat_id = uuid.uuid4()
    may_create = True
    if spec.session_id is None:
        session_id = str(chat_id)
    else:
        session_id = validate_session_id(spec.session_id)
        chat_id = parse_uuid(session_id) or chat_id
        may_create = actor.is_service or is_canonical_uuid(session_id)
    agent_name = _validate_agent_name(spec.agent_name)
    if may_create:
        try:
            record = await db.fetchrow(
                _UPSERT,
                owner,
                chat_id,
                session_id,
                spec.channel,
                agent_name or default_agent_name,
                spec.is_active,
                agent_name,
            )
        except asyncpg.PostgresError as exc:
            if exc.sqlstate != DELETED_ID_REUSED:
                raise
            # It was deleted while this upsert waited for the delete (the tombstone trigger).
            if actor.is_service:
                raise SessionDeleted(session_id) from None
            record = None  # a person's upsert runs on the pool: it can ask why below
    else:
        record = await db.fetchrow(
            _UPDATE_OWN, session_id, owner, spec.channel, agent_name, spec.is_active
        )
    if record is None:
        await _explain_refusal(db, actor, session_id, owner)
    return SessionRow.from_record(record)


async def _explain_refusal(db: Executor, actor: Viewer, session_id: str, owner: uuid.UUID) -> None:
    """Why the upsert wrote nothing. Only the owner's own rows are read for a person's answer,
    so it cannot depend on whether someone else has this id."""
    found = await db.fetchrow(
        "SELECT (SELECT channel FROM chat_sessions WHERE session_id = $1 AND user_id = $2) "
        "AS own_channel, (SELECT user_id = $2 OR $3 FROM deleted_sessions "
        "WHERE session_id = $1) AS deleted",
        session_id,
        owner,
        actor.is_service,
    )
    assert found is not None  # the statement always yields its one row
    own_channel = found["own_channel"]
    if found["deleted"]:  # the owner's own deleted id (the service: anyone's)
        raise SessionDeleted(session_id)
    if own_channel is not None:
        raise BadInput(
            f"session {session_id} is a {own_channel} session; its channel cannot change",
            field="channel",
        )
    if actor.is_service:  # the service may act for anyone: it is told plainly
        raise Forbidden("this sessionId is already in use")
    raise BadInput(NEW_SESSION_ID_MUST_BE_UUID, field="sessionId")


def _validate_agent_name(agent_name: str | None) -> str | None:
    if agent_name is None:
        return None
    agent_name = agent_name.strip()
    if not agent_name or len(agent_name) > MAX_AGENT_NAME or "\x00" in agent_name:
        raise BadInput(f"agentName must be 1-{MAX_AGENT_NAME} characters", field="agentName")
    return agent_name


async def get_session(db: Executor, user_id: uuid.UUID, session_id: str) -> SessionRow | None:
    """The person's session, or None: another person's session looks exactly like a missing one."""
    if not SESSION_ID_PATTERN.fullmatch(session_id):
        return None  # no session can have this id (legacy ids are uuids, which match)
    record = await db.fetchrow(
        f"SELECT {SESSION_COLUMNS} FROM chat_sessions WHERE session_id = $1 AND user_id = $2",
        session_id,
        user_id,
    )
    return SessionRow.from_record(record) if record else None


async def get_sessions_by_ids(
    db: Executor, user_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, SessionRow]:
    records = await db.fetch(
        f"SELECT {SESSION_COLUMNS} FROM chat_sessions WHERE id = ANY($1::uuid[]) AND user_id = $2",
        list(ids),
        user_id,
    )
    return {r["id"]: SessionRow.from_record(r) for r in records}


@dataclass(frozen=True)
class SessionKey:
    """Keyset position in the newest-activity-first order."""

    updated_at: datetime
    id: uuid.UUID


async def list_sessions(
    db: Executor,
    user_id: uuid.UUID,
    *,
    limit: int,
    channel: str | None = None,
    after: SessionKey | None = None,
    archived: bool = False,
) -> list[SessionRow]:
    """Up to `limit` sessions, newest activity first, strictly after the keyset position: the
    unarchived ones, or (`archived`) the archived ones."""
    conditions = ["user_id = $1", f"archived_at IS {'NOT ' if archived else ''}NULL"]
    args: list[object] = [user_id]
    if channel is not None:
        args.append(channel)
        conditions.append(f"channel = ${len(args)}")
    if after is not None:
        args.extend([after.updated_at, after.id])
        conditions.append(f"(updated_at, id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit)
    sql = (
        f"SELECT {SESSION_COLUMNS} FROM chat_sessions WHERE {' AND '.join(conditions)} "
        f"ORDER BY updated_at DESC, id DESC LIMIT ${len(args)}"
    )
    return [SessionRow.from_record(r) for r in await db.fetch(sql, *args)]


MAX_TITLE = 80


def title_from(text: str) -> str | None:
    """A title made of a message: its words, at most MAX_TITLE characters."""
    words = " ".join(text.replace("\x00", "").split())
    if len(words) > MAX_TITLE:
        words = words[: MAX_TITLE - 1].rstrip() + "…"
    return words or None


def validate_title(title: str) -> str:
    cleaned = title_from(title)
    if cleaned is None or len(" ".join(title.split())) > MAX_TITLE:
        raise BadInput(f"title must be 1-{MAX_TITLE} characters", field="title")
    return cleaned


async def rename_session(
    db: Executor, user_id: uuid.UUID, session_id: str, title: str
) -> SessionRow | None:
    record = await db.fetchrow(
        f"UPDATE chat_sessions SET title = $3 WHERE session_id = $1 AND user_id = $2 "
        f"RETURNING {SESSION_COLUMNS}",
        session_id,
        user_id,
        validate_title(title),
    )
    return SessionRow.from_record(record) if record else None


async def set_archived(
    db: Executor, user_id: uuid.UUID, session_id: str, archived: bool
) -> SessionRow | None:
    """Archive (or bring back) the person's session; archiving twice keeps the first moment."""
    record = await db.fetchrow(
        "UPDATE chat_sessions SET archived_at = CASE WHEN $3 THEN coalesce(archived_at, now()) "
        f"END WHERE session_id = $1 AND user_id = $2 RETURNING {SESSION_COLUMNS}",
        session_id,
        user_id,
        archived,
    )
    return SessionRow.from_record(record) if record else None


MAX_ERROR_LENGTH = 500


async def record_failure(
    db: Executor,
    session_id: str,
    description: str,
    *,
    is_active: bool | None = None,
    release_turn: uuid.UUID | None = None,
) -> SessionRow | None:
    """Record a failed turn (and set is_active, unless None); the session as written, or None
    if there is no such session. The same statement tells the session's live subscribers
    (REPLY_FAILED, graphql_api/core/events.py) and ends the turn lease of `release_turn`."""
    record = await db.fetchrow(
        f"""
        WITH released AS (
            DELETE FROM session_turns WHERE session_id = $1 AND holder = $4
        ), failed AS (
            UPDATE chat_sessions
               SET last_error = $2, last_error_at = now(), updated_at = now(),
                   is_active = coalesce($3, is_active)
             WHERE session_id = $1
            RETURNING {SESSION_COLUMNS}
        )
        SELECT failed.*,
               pg_notify('us_events',
                         json_build_object('k', 'f', 's', $1::text, 'r', $2::text)::text)
          FROM failed
        """,
        session_id,
        description[:MAX_ERROR_LENGTH],
        is_active,
        release_turn,
    )
    return SessionRow.from_record(record) if record else None


async def touch_session(db: Executor, session_id: str) -> SessionRow:
    """Mark a successful turn: bump last activity and clear any recorded failure."""
    record = await db.fetchrow(
        f"UPDATE chat_sessions SET updated_at = now(), last_error = NULL, last_error_at = NULL "
        f"WHERE session_id = $1 RETURNING {SESSION_COLUMNS}",
        session_id,
    )
    assert record is not None
    return SessionRow.from_record(record)


async def set_active(db: Executor, session_id: str, is_active: bool) -> SessionRow | None:
    record = await db.fetchrow(
        f"UPDATE chat_sessions SET is_active = $2, updated_at = now() "
        f"WHERE session_id = $1 RETURNING {SESSION_COLUMNS}",
        session_id,
        is_active,
    )
    return SessionRow.from_record(record) if record else None
