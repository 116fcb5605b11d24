"""Forgetting: deleting sessions for good (deleteSession, the retention policy) and the record of
retention runs. Channel-neutral: a deletion is one `DELETE FROM chat_sessions`; foreign keys
(ON DELETE CASCADE) remove the messages, their deliveries, read marks and turn leases, and the
trigger of migration 20250113000000_delete_retention.sql writes the tombstone, unlinks what the
channels keep (Telegram chats and filed messages, schedule runs) and tells live subscribers."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from .db import Executor
from .sessions import SESSION_ID_PATTERN
from .settings import RETENTION_CHANNELS, Settings, SettingsError

RETENTION_BATCH = 200  # sessions per statement (and per live-event notification, at most 200)
RUNS_KEPT = 100  # retention_runs rows kept


async def _delete(db: Executor, condition: str, *args: object) -> list[str]:
    """The one deletion: every way of forgetting sessions goes through this statement."""
    records = await db.fetch(
        f"DELETE FROM chat_sessions s WHERE {condition} RETURNING s.session_id", *args
    )
    return [r["session_id"] for r in records]


async def delete_session(db: Executor, owner: uuid.UUID, session_id: str) -> bool:
    """Delete the person's session; False if they have none by that id (another person's
    session looks exactly like a missing one)."""
    if not SESSION_ID_PATTERN.fullmatch(session_id):
        return False
    return bool(await _delete(db, "s.session_id = $1 AND s.user_id = $2", session_id, owner))


async def delete_idle(
    db: Executor, channel: str, days: int, *, limit: int = RETENTION_BATCH
) -> list[str]:
    """Up to `limit` of the channel's sessions with no activity for `days` days, oldest first.
    Rows another deletion holds are skipped (SKIP LOCKED): two runs at once split the work."""
    return await _delete(
        db,
        "s.id IN (SELECT id FROM chat_sessions WHERE channel = $1 "
        "AND updated_at < now() - make_interval(days => $2) "
        "ORDER BY updated_at LIMIT $3 FOR UPDATE SKIP LOCKED)",
        channel,
        days,
        limit,
    )


@dataclass(frozen=True, slots=True)
class RetentionRun:
    id: int
    started_at: datetime
    finished_at: datetime | None
    policy: dict[str, int]
    sessions_deleted: int
    error: str | None

    @classmethod
    def from_record(cls, record: Any) -> RetentionRun:
        policy = record["policy"]
        return cls(
            id=record["id"],
            started_at=record["started_at"],
            finished_at=record["finished_at"],
            policy=json.loads(policy) if isinstance(policy, str) else dict(policy),
            sessions_deleted=record["sessions_deleted"],
            error=record["error"],
        )


_RUN_COLUMNS = "id, started_at, finished_at, policy, sessions_deleted, error"


async def last_retention_run(db: Executor) -> RetentionRun | None:
    record = await db.fetchrow(
        f"SELECT {_RUN_COLUMNS} FROM retention_runs ORDER BY id DESC LIMIT 1"
    )
    return RetentionRun.from_record(record) if record else None


async def _start_run(db: Executor, policy: Mapping[str, int]) -> int:
    run_id: int = await db.fetchval(
        "WITH pruned AS (DELETE FROM retention_runs WHERE id <= "
        "(SELECT max(id) FROM retention_runs) - $2) "
        "INSERT INTO retention_runs (policy) VALUES ($1::text::jsonb) RETURNING id",
        json.dumps(dict(sorted(policy.items()))),
        RUNS_KEPT - 1,
    )
    return run_id


async def _progress(
    db: Executor, run_id: int, deleted: int, *, done: bool = False, error: str | None = None
) -> None:
    await db.execute(
        "UPDATE retention_runs SET sessions_deleted = $2, error = $3, "
        "finished_at = CASE WHEN $4 THEN now() END WHERE id = $1",
        run_id,
        deleted,
        error,
        done,
    )


async def apply_retention(
    pool: asyncpg.Pool,
    policy: Mapping[str, int],
    *,
    budget: float,
    batch: int = RETENTION_BATCH,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Delete every session idle longer than its channel's retention (`policy`: channel -> days;
    a channel not in it keeps everything), `batch` at a time, until none is left or `budget`
    seconds have passed (the next run carries on). Safe to run any number of times, also two at
    once. Each run is recorded in retention_runs as it goes, with how it ended."""
    run_id = await _start_run(pool, policy)
    deadline, deleted = clock() + budget, 0
    try:
        for channel, days in sorted(policy.items()):
            while clock() < deadline:
                gone = await delete_idle(pool, channel, days, limit=batch)
                deleted += len(gone)
                if gone:
                    await _progress(pool, run_id, deleted)
                if len(gone) < batch:
                    break
    except BaseException as exc:  # also the job's timeout (a cancellation): say so, then stop
        reason = (
            "cancelled (timeout or shutdown)"
            if isinstance(exc, asyncio.CancelledError)
            else (f"{type(exc).__name__}: {exc}")
        )
        await asyncio.shield(_progress(pool, run_id, deleted, done=True, error=reason[:500]))
        raise
    await _progress(pool, run_id, deleted, done=True)
    return deleted


def _policy_text(policy: Mapping[str, int]) -> str:
    return ", ".join(
        f"{channel} {policy[channel]} days" if channel in policy else f"{channel} keep everything"
        for channel in RETENTION_CHANNELS
    )


def _run_text(run: RetentionRun | None) -> str:
    if run is None:
        return "last run: never"
    if run.finished_at is None:
        state = f"running (or stopped without a word), {run.sessions_deleted} deleted so far"
    else:
        state = f"finished {run.finished_at.isoformat()}, {run.sessions_deleted} deleted"
    lines = [
        f"last run: started {run.started_at.isoformat()}, {state}",
        f"  its policy: {_policy_text(run.policy)}",
    ]
    if run.error:
        lines.append(f"  error: {run.error}")
    return "\n".join(lines)


async def retention_report(settings: Settings) -> str:
    """`unified-sessions retention`: the policy of this environment (the worker's may differ:
    the last run shows the one it applied) and the job's last run."""
    conn = await asyncpg.connect(settings.require_database_url())
    try:
        run = await last_retention_run(conn)
    except asyncpg.UndefinedTableError:
        raise SettingsError("the database is not migrated: run unified-sessions migrate") from None
    finally:
        await conn.close()
    return f"policy: {_policy_text(settings.retention_policy)}\n{_run_text(run)}"
