"""Messages: append to a session's history and read keyset pages of it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from .db import Executor
from .errors import BadInput
from .models import MESSAGE_COLUMNS, MessageRow, Role, content_of, langchain_message

MAX_CONTENT_LENGTH = 16_000
_MAX_ID = 2**63 - 1


def validate_content(content: str) -> str:
    if not content or not content.strip():
        raise BadInput("content must not be empty", field="content")
    if "\x00" in content:
        raise BadInput("content must not contain NUL characters", field="content")
    if len(content) > MAX_CONTENT_LENGTH:
        raise BadInput(f"content must be at most {MAX_CONTENT_LENGTH} characters", field="content")
    return content


# What a statement storing a message into session $1 selects its row from. It locks the session
# row first (as an UPDATE of it does), and only then is the message's id drawn (the column's
# default, evaluated per row selected): the service's writers to one session take turns from
# their id to their commit, so a session's ids become visible in order and "every message
# after id N" (a live reconnect, a replay) misses none. One row always, also when the session
# is gone: the insert then fails on the foreign key, as before.
IN_SESSION_TURN = (
    "(SELECT) AS one LEFT JOIN (SELECT FROM chat_sessions WHERE session_id = $1::text "
    "FOR NO KEY UPDATE) AS turn ON true"
)


async def append_message(
    db: Executor, session_id: str, role: Role, content: str, *, idempotency_key: str | None = None
) -> tuple[MessageRow, bool]:
    """Store a message; return it and whether it is new (False: this key was stored before)."""
    record = await db.fetchrow(
        f"""
        INSERT INTO chat_message_history (session_id, message, idempotency_key)
        SELECT $1::text, $2::jsonb, $3::text FROM {IN_SESSION_TURN}
        ON CONFLICT (session_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
        RETURNING {MESSAGE_COLUMNS}
        """,
        session_id,
        langchain_message(role, content),
        idempotency_key,
    )
    if record is not None:
        return MessageRow.from_record(record), True
    existing = await find_by_idempotency_key(db, session_id, idempotency_key or "")
    assert existing is not None
    return existing, False


async def find_by_idempotency_key(
    db: Executor, session_id: str, idempotency_key: str
) -> MessageRow | None:
    record = await db.fetchrow(
        f"SELECT {MESSAGE_COLUMNS} FROM chat_message_history "
        "WHERE session_id = $1 AND idempotency_key = $2",
        session_id,
        idempotency_key,
    )
    return MessageRow.from_record(record) if record else None


async def get_message(db: Executor, user_id: uuid.UUID, message_id: int) -> MessageRow | None:
    """A message, only if it belongs to one of the person's sessions."""
    record = await db.fetchrow(
        f"""
        SELECT {", ".join("m." + c.strip() for c in MESSAGE_COLUMNS.split(","))}
          FROM chat_message_history m
          JOIN chat_sessions s ON s.session_id = m.session_id
         WHERE m.id = $1 AND s.user_id = $2
        """,
        message_id,
        user_id,
    )
    return MessageRow.from_record(record) if record else None


async def pages_before(
    db: Executor, requests: Sequence[tuple[str, int | None]], limit: int
) -> dict[tuple[str, int | None], list[MessageRow]]:
    """For each (session_id, before_id): up to `limit` messages older than before_id (None: the
    newest), oldest first. One statement for any number of sessions."""
    if not requests:
        return {}
    session_ids = [session_id for session_id, _ in requests]
    befores = [before if before is not None else _MAX_ID for _, before in requests]
    records = await db.fetch(
        """
        SELECT r.ord, m.id, m.session_id, m.message, m.created_at, m.via
          FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS r(session_id, before_id, ord)
          CROSS JOIN LATERAL (
                SELECT id, session_id, message, created_at, via
                  FROM chat_message_history h
                 WHERE h.session_id = r.session_id AND h.id < r.before_id
                 ORDER BY h.id DESC
                 LIMIT $3
          ) m
        """,
        session_ids,
        befores,
        limit,
    )
    pages: dict[tuple[str, int | None], list[MessageRow]] = {key: [] for key in requests}
    for record in records:
        pages[requests[record["ord"] - 1]].append(MessageRow.from_record(record))
    for page in pages.values():
        page.reverse()
    return pages


async def page_before(
    db: Executor, session_id: str, limit: int, before_id: int | None = None
) -> list[MessageRow]:
    """Up to `limit` messages older than before_id (None: the newest), oldest first."""
    if before_id is None:
        records = await db.fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM chat_message_history WHERE session_id = $1 "
            "ORDER BY id DESC LIMIT $2",
            session_id,
            limit,
        )
    else:
        records = await db.fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM chat_message_history WHERE session_id = $1 "
            "AND id < $2 ORDER BY id DESC LIMIT $3",
            session_id,
            before_id,
            limit,
        )
    return [MessageRow.from_record(r) for r in reversed(records)]


async def page_after(db: Executor, session_id: str, after_id: int, limit: int) -> list[MessageRow]:
    """Up to `limit` messages newer than after_id, oldest first (a live replay's page)."""
    records = await db.fetch(
        f"SELECT {MESSAGE_COLUMNS} FROM chat_message_history WHERE session_id = $1 "
        "AND id > $2 ORDER BY id LIMIT $3",
        session_id,
        after_id,
        limit,
    )
    return [MessageRow.from_record(r) for r in records]


async def first_messages(db: Executor, session_ids: Sequence[str]) -> dict[str, str]:
    """Each session's first message's text (sessions without messages are left out)."""
    records = await db.fetch(
        """
        SELECT s.session_id, m.message
          FROM unnest($1::text[]) AS s(session_id)
          CROSS JOIN LATERAL (
                SELECT message FROM chat_message_history h
                 WHERE h.session_id = s.session_id ORDER BY h.id LIMIT 1
          ) m
        """,
        list(session_ids),
    )
    return {r["session_id"]: content_of(r["message"]) for r in records}
