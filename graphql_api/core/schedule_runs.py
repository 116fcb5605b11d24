"""Runs of a schedule: one row per (schedule, slot), the database's word that a slot runs once."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg

from . import sessions
from .models import SESSION_COLUMNS, Channel, SessionRow
from .schedules import SCHEDULE_COLUMNS, Outcome, ScheduleRow, slot_session_id
from .tokens import SERVICE_ROLE, Viewer

Executor = asyncpg.Pool | asyncpg.Connection


async def get_schedule_for_run(db: Executor, schedule_id: uuid.UUID) -> ScheduleRow | None:
    """Any schedule by id: for the worker, which acts as the service for every owner."""
    record = await db.fetchrow(
        f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = $1", schedule_id
    )
    return ScheduleRow.from_record(record) if record else None


class RunState(StrEnum):
    STARTED = "started"  # this worker holds the slot: run it
    FINISHED = "finished"  # the slot already ran to an end
    BUSY = "busy"  # another worker holds the slot's lease
    GONE = "gone"  # the schedule was deleted


@dataclass(frozen=True)
class RunStart:
    state: RunState
    attempt: int = 0
    session: SessionRow | None = None
    resumed: bool = False


async def begin_run(
    pool: asyncpg.Pool, schedule: ScheduleRow, slot: datetime, *, lease_seconds: float
) -> RunStart:
    """Take the slot: its run row, a lease on it, and its session (active), in one transaction.

    The run row's unique key (schedule, slot) decides: a slot that already finished is not run
    again; one left running by a killed worker is resumed with the same session once its lease
    has expired.
    """
    session_id = slot_session_id(schedule.id, slot)
    async with pool.acquire() as conn, conn.transaction():
        try:
            inserted = await conn.fetchval(
                "INSERT INTO schedule_runs (schedule_id, slot, session_id) VALUES ($1, $2, $3) "
                "ON CONFLICT (schedule_id, slot) DO NOTHING RETURNING id",
                schedule.id,
                slot,
                session_id,
            )
        except asyncpg.ForeignKeyViolationError:
            return RunStart(RunState.GONE)
        leased = await conn.fetchrow(
            "UPDATE schedule_runs SET attempts = attempts + 1, "
            "lease_until = now() + make_interval(secs => $3) "
            "WHERE schedule_id = $1 AND slot = $2 AND status = 'running' "
            "AND (lease_until IS NULL OR lease_until < now()) RETURNING attempts, session_id",
            schedule.id,
            slot,
            lease_seconds,
        )
        if leased is None:
            status = await conn.fetchval(
                "SELECT status FROM schedule_runs WHERE schedule_id = $1 AND slot = $2",
                schedule.id,
                slot,
            )
            return RunStart(RunState.BUSY if status == "running" else RunState.FINISHED)
        session = await sessions.upsert_session(
            conn,
            Viewer(user_id=schedule.user_id, role=SERVICE_ROLE),
            sessions.SessionUpsert(
                session_id=leased["session_id"],
                channel=Channel.SCHEDULED,
                agent_name=schedule.agent_name,
                is_active=True,
                user_id=schedule.user_id,
            ),
        )
    return RunStart(RunState.STARTED, leased["attempts"], session, resumed=inserted is None)


async def release_run(db: Executor, schedule_id: uuid.UUID, slot: datetime, error: str) -> None:
    """The attempt failed and will be retried: keep the run open, give up the lease."""
    await db.execute(
        "UPDATE schedule_runs SET lease_until = NULL, error = $3 "
        "WHERE schedule_id = $1 AND slot = $2 AND status = 'running'",
        schedule_id,
        slot,
        error[:500],
    )


async def finish_run(
    pool: asyncpg.Pool,
    schedule_id: uuid.UUID,
    slot: datetime,
    outcome: Outcome,
    error: str | None = None,
    *,
    session_id: str | None = None,
) -> bool:
    """Close the run and record its outcome on the schedule (unless a later slot already did).
    False if the run had already finished."""
    error = error[:500] if error else None
    async with pool.acquire() as conn, conn.transaction():
        closed = await conn.fetchval(
            "INSERT INTO schedule_runs (schedule_id, slot, session_id, status, finished_at, error) "
            "VALUES ($1, $2, $3, $4, now(), $5) "
            "ON CONFLICT (schedule_id, slot) DO UPDATE SET status = $4, finished_at = now(), "
            "lease_until = NULL, error = $5 WHERE schedule_runs.status = 'running' RETURNING id",
            schedule_id,
            slot,
            session_id or slot_session_id(schedule_id, slot),
            outcome.value,
            error,
        )
        if closed is None:
            return False
        await conn.execute(
            "UPDATE schedules SET last_run_at = $2, last_outcome = $3, last_error = $4 "
            "WHERE id = $1 AND (last_run_at IS NULL OR last_run_at <= $2)",
            schedule_id,
            slot,
            outcome.value,
            error,
        )
    return True


@dataclass(frozen=True)
class RunRow:
    slot: datetime
    status: str
    attempts: int
    session_id: str
    error: str | None
    finished_at: datetime | None


async def get_run(db: Executor, schedule_id: uuid.UUID, slot: datetime) -> RunRow | None:
    record = await db.fetchrow(
        "SELECT slot, status, attempts, session_id, error, finished_at FROM schedule_runs "
        "WHERE schedule_id = $1 AND slot = $2",
        schedule_id,
        slot,
    )
    return RunRow(**dict(record)) if record else None


RunPageKey = tuple[uuid.UUID, datetime | None]  # (schedule id, slot to page before or None)


async def run_session_pages(
    db: Executor, requests: Sequence[RunPageKey], limit: int
) -> dict[RunPageKey, list[tuple[datetime, SessionRow]]]:
    """For each (schedule, before_slot): up to `limit` sessions its runs created, newest slot
    first, each with its slot. One statement for any number of schedules."""
    if not requests:
        return {}
    columns = ", ".join("s." + c.strip() for c in SESSION_COLUMNS.split(","))
    records = await db.fetch(
        f"""
        SELECT k.ord, r.slot, {columns}
          FROM unnest($1::uuid[], $2::timestamptz[])
               WITH ORDINALITY AS k(schedule_id, before_slot, ord)
          JOIN schedules sc ON sc.id = k.schedule_id
          CROSS JOIN LATERAL (
                SELECT slot, session_id FROM schedule_runs
                 WHERE schedule_id = k.schedule_id
                   AND slot < coalesce(k.before_slot, 'infinity'::timestamptz)
                 ORDER BY slot DESC
                 LIMIT $3
          ) r
          JOIN chat_sessions s ON s.session_id = r.session_id AND s.user_id = sc.user_id
                                AND s.channel = 'scheduled'
         ORDER BY k.ord, r.slot DESC
        """,
        [schedule_id for schedule_id, _ in requests],
        [before for _, before in requests],
        limit,
    )
    pages: dict[RunPageKey, list[tuple[datetime, SessionRow]]] = {key: [] for key in requests}
    for record in records:
        pages[requests[record["ord"] - 1]].append((record["slot"], SessionRow.from_record(record)))
    return pages


async def stalled_runs(db: Executor, *, limit: int = 100) -> list[tuple[uuid.UUID, datetime]]:
    """Open runs nobody holds (a killed worker, or a queue that gave up): (schedule, slot)."""
    records = await db.fetch(
        "SELECT schedule_id, slot FROM schedule_runs WHERE status = 'running' "
        "AND (lease_until IS NULL OR lease_until < now()) LIMIT $1",
        limit,
    )
    return [(r["schedule_id"], r["slot"]) for r in records]
