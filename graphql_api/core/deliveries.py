"""The outbox: replies to send out through a channel, sent at least once by the worker.

A delivery row is written when a reply must also reach another door (a question asked on the
web in a Telegram session). The worker claims a due row (attempts + 1, and a lease: another
worker skips it until DELIVERY_LEASE_SECONDS pass), asks the channel to send it, and marks it
sent; a failure is retried after a backoff (or the channel's own `retry_after`) until
MAX_ATTEMPTS, then the row is failed with its last error. A worker killed mid-send leaves a
claimed row whose lease expires: it is sent again (at least once).

One address's deliveries (a Telegram chat) go out in the order they were written: a row is
claimed only when no older one to the same target is pending, so a retry holds back the replies
after it, and a row that finally failed lets them go.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .db import Executor
from .models import content_of

# The lifespan state's key for a function that tells the worker a delivery is waiting (the
# scheduled channel provides it when the API has Redis); without it the worker's sweep finds it.
WAKE = "deliveries_wake"

MAX_ATTEMPTS = 5
IN_A_ROW = 20  # one job sends at most this many of one address's deliveries, oldest first
BACKOFF_BASE, BACKOFF_CAP = 2.0, 300.0


class RetryLater(Exception):
    """The channel asked to be left alone for `seconds` (Telegram's retry_after)."""

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(reason)
        self.seconds = seconds


class Undeliverable(Exception):
    """The delivery can never succeed (no linked account, a blocked bot): no more attempts."""


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: int
    message_id: int
    channel: str
    status: str
    attempts: int
    last_error: str | None
    sent_at: datetime | None

    @classmethod
    def from_record(cls, record: Any) -> DeliveryRow:
        return cls(*(record[name] for name in _FIELDS))


_FIELDS = ("id", "message_id", "channel", "status", "attempts", "last_error", "sent_at")
_COLUMNS = ", ".join(_FIELDS)


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    channel: str
    target: str
    text: str
    attempts: int


async def queue(
    db: Executor, message_id: int, channel: str, target: str | None, *, no_target: str = ""
) -> DeliveryRow:
    """A delivery of the message through `channel` (once: a second call returns the first row).
    Without a target it is failed at once, with `no_target` as its reason."""
    record = await db.fetchrow(
        f"""
        WITH added AS (
            INSERT INTO message_deliveries (message_id, channel, target, status, last_error)
            VALUES ($1, $2, $3, CASE WHEN $3::text IS NULL THEN 'failed' ELSE 'pending' END,
                    CASE WHEN $3::text IS NULL THEN $4 END)
            ON CONFLICT (message_id, channel) DO NOTHING
            RETURNING {_COLUMNS}
        )
        SELECT * FROM added
        UNION ALL
        SELECT {_COLUMNS} FROM message_deliveries WHERE message_id = $1 AND channel = $2
        LIMIT 1
        """,
        message_id,
        channel,
        target,
        no_target or "there is nowhere to deliver it",
    )
    assert record is not None
    return DeliveryRow.from_record(record)


async def due(db: Executor, limit: int = 100) -> list[tuple[int, int]]:
    """(id, attempts so far) of deliveries whose next attempt is due and that `claim` would take
    (the oldest pending one of their address), the longest waiting first. Rows held back behind
    an older one are left out: `limit` of them (one chat's backlog behind a retry) would
    otherwise fill every sweep, and no other address's due row would ever be listed."""
    records = await db.fetch(
        "SELECT d.id, d.attempts FROM message_deliveries d "
        "WHERE d.status = 'pending' AND d.next_attempt_at <= now() "
        "AND NOT EXISTS (SELECT FROM message_deliveries o WHERE o.channel = d.channel "
        "AND o.target = d.target AND o.status = 'pending' AND o.id < d.id) "
        "ORDER BY d.next_attempt_at LIMIT $1",
        limit,
    )
    return [(r["id"], r["attempts"]) for r in records]


async def claim(db: Executor, delivery_id: int, lease: float) -> Claimed | None:
    """Take a due delivery for one attempt, for `lease` seconds (DELIVERY_LEASE_SECONDS); None
    if it is not due (sent, failed, or claimed by a sender whose lease has not expired)."""
    record = await db.fetchrow(
        """
        UPDATE message_deliveries d
           SET attempts = d.attempts + 1,
               next_attempt_at = now() + make_interval(secs => $2)
          FROM chat_message_history m
         WHERE d.id = $1 AND m.id = d.message_id
           AND d.status = 'pending' AND d.next_attempt_at <= now()
           AND NOT EXISTS (SELECT FROM message_deliveries o
                            WHERE o.channel = d.channel AND o.target = d.target
                              AND o.status = 'pending' AND o.id < d.id)
        RETURNING d.id, d.channel, d.target, d.attempts, m.message
        """,
        delivery_id,
        lease,
    )
    if record is None:
        return None
    return Claimed(
        record["id"],
        record["channel"],
        record["target"],
        content_of(record["message"]),
        record["attempts"],
    )


async def next_in_line(db: Executor, claimed: Claimed) -> int | None:
    """The oldest delivery still pending to the same address, after this one was settled."""
    found: int | None = await db.fetchval(
        "SELECT id FROM message_deliveries "
        "WHERE channel = $1 AND target = $2 AND status = 'pending' ORDER BY id LIMIT 1",
        claimed.channel,
        claimed.target,
    )
    return found


async def sent(db: Executor, delivery_id: int) -> None:
    await db.execute(
        "UPDATE message_deliveries SET status = 'sent', sent_at = now(), last_error = NULL "
        "WHERE id = $1",
        delivery_id,
    )


async def failed_attempt(
    db: Executor,
    claimed: Claimed,
    error: str,
    *,
    retry_in: float | None = None,
    final: bool = False,
) -> str:
    """Record a failed attempt: retried after `retry_in` (default: the backoff) unless it was
    the last one or `final`. Returns the row's status."""
    last = final or claimed.attempts >= MAX_ATTEMPTS
    delay = retry_in if retry_in is not None else min(BACKOFF_CAP, BACKOFF_BASE**claimed.attempts)
    status: str = await db.fetchval(
        """
        UPDATE message_deliveries
           SET status = CASE WHEN $3 THEN 'failed' ELSE 'pending' END,
               last_error = $2, next_attempt_at = now() + make_interval(secs => $4)
         WHERE id = $1
        RETURNING status
        """,
        claimed.id,
        error[:500],
        last,
        delay,
    )
    return status


async def of_messages(db: Executor, message_ids: Sequence[int]) -> dict[int, list[DeliveryRow]]:
    records = await db.fetch(
        f"SELECT {_COLUMNS} FROM message_deliveries WHERE message_id = ANY($1::bigint[]) "
        "ORDER BY id",
        list(message_ids),
    )
    found: dict[int, list[DeliveryRow]] = {i: [] for i in message_ids}
    for record in records:
        found[record["message_id"]].append(DeliveryRow.from_record(record))
    return found
