"""Read marks: per person and session, the newest message they have read; unread counts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from .db import Executor
from .errors import BadInput

UNREAD_CAP = 100  # unreadCount counts up to this many: a badge says "99+", not 12,345


async def mark_read(
    db: Executor, user_id: uuid.UUID, session_id: str, up_to: int | None
) -> int | None:
    """Mark the session read up to message `up_to` (None: its newest). Marks never move back.
    Returns the mark; None when the session has no messages yet."""
    record = await db.fetchrow(
        """
        WITH target AS (
            SELECT CASE WHEN $3::bigint IS NULL
                        THEN (SELECT max(id) FROM chat_message_history WHERE session_id = $2)
                        ELSE (SELECT id FROM chat_message_history
                               WHERE session_id = $2 AND id = $3)
                   END AS id
        )
        INSERT INTO session_read_marks AS r (user_id, session_id, last_read_id)
        SELECT $1, $2, target.id FROM target WHERE target.id IS NOT NULL
        ON CONFLICT (user_id, session_id) DO UPDATE
           SET last_read_id = greatest(r.last_read_id, EXCLUDED.last_read_id), read_at = now()
        RETURNING last_read_id
        """,
        user_id,
        session_id,
        up_to,
    )
    if record is None and up_to is not None:
        raise BadInput("upTo is not a message of this session", field="upTo")
    return record["last_read_id"] if record else None


async def unread_counts(
    db: Executor, user_id: uuid.UUID, session_ids: Sequence[str]
) -> dict[str, int]:
    """For each session: its messages after the person's read mark that are not the person's
    own (capped at UNREAD_CAP). One statement for a page of sessions."""
    records = await db.fetch(
        """
        SELECT s.session_id,
               (SELECT count(*) FROM (
                    SELECT 1 FROM chat_message_history h
                     WHERE h.session_id = s.session_id
                       AND h.id > coalesce(m.last_read_id, 0)
                       AND h.message->>'type' IS DISTINCT FROM 'human'
                     LIMIT $3) AS unread) AS n
          FROM unnest($2::text[]) AS s(session_id)
          LEFT JOIN session_read_marks m ON m.user_id = $1 AND m.session_id = s.session_id
        """,
        user_id,
        list(session_ids),
        UNREAD_CAP,
    )
    return {r["session_id"]: r["n"] for r in records}
