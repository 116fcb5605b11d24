"""Runs of a schedule: one row per (schedule, slot), the database's word that a slot runs once.
A row exists from the moment its slot is queued (the periodic claim, runScheduleNow) until it
is finished; while its status is 'running' the schedule has a run queued or going. The row is
also the one count of a slot's attempts (workers/execution.py decides on it).

Rows are committed before their slot is enqueued, never while a transaction waits on Redis: an
open row whose job never reached the queue is re-queued by the periodic claim (stalled_runs)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import asyncpg

from graphql_api.core import sessions
from graphql_api.core.db import Executor, lock_until_commit
from graphql_api.core.errors import BadInput
from graphql_api.core.models import SESSION_COLUMNS, SessionRow
from graphql_api.core.tokens import SERVICE_ROLE, Viewer

from .channel import SCHEDULED
from .cron import latest_slot_before, next_run_after
from .schedules import (
    SCHEDULE_COLUMNS,
    Outcome,
    ScheduleRow,
    SessionMode,
    Slot,
    run_session_id,
)

Enqueue = Callable[[Slot], Awaitable[object]]
log = logging.getLogger(__name__)

# runScheduleNow stores its run row, commits, then enqueues; for this long the row is held for
# that enqueue: the claim does not re-queue it meanwhile (it would run a slot the API may yet
# withdraw, when its Redis call fails). More than arq_queue.ENQUEUE_TIMEOUT and the withdrawal.
QUEUE_HOLD_SECONDS = 30.0


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


async def begin_run(
    pool: asyncpg.Pool, schedule: ScheduleRow, slot: datetime, *, lease_seconds: float
) -> RunStart:
    """Take the slot: its run row, a lease on it, and its session (active), in one transaction.

    The run row's unique key (schedule, slot) decides: a slot that already finished is not run
    again; one left running by a killed worker is resumed with the same session once its lease
    has expired. A run never begun (attempts = 0) is free to begin: its lease, if any, is
    runScheduleNow's hold for its enqueue (queue_run_now), not a worker's.
    """
    session_id = schedule.session_id_of(slot)
    async with pool.acquire() as conn, conn.transaction():
        # The session's row before the run's, in a deletion's order (its trigger moves the
        # runs on after taking the session): otherwise each could wait on the other.
        await conn.execute(
            "SELECT FROM chat_sessions WHERE session_id = $1 FOR NO KEY UPDATE", session_id
        )
        try:
            await conn.execute(
                "INSERT INTO schedule_runs (schedule_id, slot, session_id) VALUES ($1, $2, $3) "
                "ON CONFLICT (schedule_id, slot) DO NOTHING",
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
            "AND (attempts = 0 OR lease_until IS NULL OR lease_until < now()) "
            "RETURNING attempts, session_id",
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
                channel=SCHEDULED,
                agent_name=schedule.agent_name,
                is_active=True,
                user_id=schedule.user_id,
            ),
        )
    return RunStart(RunState.STARTED, leased["attempts"], session)


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
    False if the run had already finished, or the schedule was deleted (during the turn, say):
    its session stays in the registry, there is no schedule left to record the outcome on."""
    error = error[:500] if error else None
    try:
        async with pool.acquire() as conn, conn.transaction():
            # The schedule's row before the run's, in a deletion's order (its trigger moves an
            # appending schedule on, then its runs): otherwise each could wait on the other.
            await conn.execute("SELECT FROM schedules WHERE id = $1 FOR NO KEY UPDATE", schedule_id)
            closed = await conn.fetchval(
                "INSERT INTO schedule_runs "
                "(schedule_id, slot, session_id, status, finished_at, error) "
                "VALUES ($1, $2, $3, $4, now(), $5) "
                "ON CONFLICT (schedule_id, slot) DO UPDATE SET status = $4, finished_at = now(), "
                "lease_until = NULL, error = $5 WHERE schedule_runs.status = 'running' "
                "RETURNING id",
                schedule_id,
                slot,
                session_id or Slot(schedule_id, slot).session_id,
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
    except asyncpg.ForeignKeyViolationError:
        return False
    return True


class RunInProgress(BadInput):
    def __init__(self) -> None:
        super().__init__(
            "this schedule already has a run queued or running; run it again once it has finished",
            field="id",
        )


@dataclass(frozen=True)
class QueuedRun:
    schedule: ScheduleRow
    slot: Slot
    queued: bool  # False: this second's slot already ran, it is not run again


async def queue_run_now(
    pool: asyncpg.Pool,
    owner: uuid.UUID,
    schedule_id: uuid.UUID,
    enqueue: Enqueue,
    *,
    now: datetime | None = None,
) -> QueuedRun | None:
    """runScheduleNow: queue a run of the person's schedule at the current second. None if the
    person has no such schedule; RunInProgress while one of its runs is still open.

    A lock on the schedule makes the check and the insert of the run row one step, so two
    requests at once queue one run. The row commits first, held for its enqueue (its lease,
    QUEUE_HOLD_SECONDS: the claim leaves it alone meanwhile), and the job is enqueued after the
    connection went back to the pool: no transaction, lock or connection waits on Redis. When
    the enqueue fails the row is withdrawn before the error propagates, so a queue failure
    leaves nothing open behind; unless a worker has already begun the run (its job did reach
    the queue, though Redis's answer did not reach us), which is then reported as queued.
    """
    slot = Slot(schedule_id, (now or datetime.now(UTC)).replace(microsecond=0))
    try:
        async with pool.acquire() as conn, conn.transaction():
            await lock_until_commit(conn, f"run-now:{schedule_id}")
            record = await conn.fetchrow(
                f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = $1 AND user_id = $2",
                schedule_id,
                owner,
            )
            if record is None:
                return None
            if await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM schedule_runs "
                "WHERE schedule_id = $1 AND status = 'running')",
                schedule_id,
            ):
                raise RunInProgress()
            inserted = await conn.fetchval(
                "INSERT INTO schedule_runs (schedule_id, slot, session_id, lease_until) "
                "VALUES ($1, $2, $3, now() + make_interval(secs => $4)) "
                "ON CONFLICT (schedule_id, slot) DO NOTHING RETURNING id",
                schedule_id,
                slot.at,
                ScheduleRow.from_record(record).session_id_of(slot.at),
                QUEUE_HOLD_SECONDS,
            )
    except asyncpg.ForeignKeyViolationError:  # deleted meanwhile
        return None
    if inserted is not None:
        try:
            await enqueue(slot)
        except Exception:
            if await asyncio.shield(_withdraw(pool, slot)):
                raise
            log.warning(
                "schedule %s slot %s: the enqueue failed, but a worker has the run",
                slot.schedule_id,
                slot.token,
            )
    return QueuedRun(ScheduleRow.from_record(record), slot, queued=inserted is not None)


async def _withdraw(pool: asyncpg.Pool, slot: Slot) -> bool:
    """Remove a run row runScheduleNow stored but could not queue. False if a worker has begun
    it meanwhile (attempts > 0): then it is running (or ran), and stays."""
    try:
        # The outer SELECT sees the row as it was before the DELETE: is it still there after?
        kept = await pool.fetchval(
            "WITH gone AS (DELETE FROM schedule_runs WHERE schedule_id = $1 AND slot = $2 "
            "AND status = 'running' AND attempts = 0 RETURNING id) "
            "SELECT EXISTS (SELECT 1 FROM schedule_runs WHERE schedule_id = $1 AND slot = $2 "
            "AND id NOT IN (SELECT id FROM gone))",
            slot.schedule_id,
            slot.at,
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        # PostgreSQL went away too: the row stays open, and the periodic claim runs it once its
        # hold has passed. Not stuck; but queued although the request was answered as failed.
        log.exception("schedule %s slot %s: could not withdraw the run", slot.schedule_id, slot.at)
        return True
    return not kept  # also when the schedule was deleted meanwhile: the failure stands


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


async def stalled_runs(db: Executor, *, limit: int = 100) -> list[Slot]:
    """Open runs nobody holds (a killed worker, a lost job, an enqueue that failed after its row
    committed), and none that runScheduleNow is still enqueueing (its hold is a lease)."""
    records = await db.fetch(
        "SELECT schedule_id, slot FROM schedule_runs WHERE status = 'running' "
        "AND (lease_until IS NULL OR lease_until < now()) LIMIT $1",
        limit,
    )
    return [Slot(r["schedule_id"], r["slot"]) for r in records]


# --- the periodic claim ----------------------------------------------------------------------


async def claim_due(
    pool: asyncpg.Pool,
    enqueue: Enqueue,
    *,
    now: datetime | None = None,
    batch: int = 200,
) -> list[Slot]:
    """Claim every enabled schedule whose next run is due, one slot each, and advance it.

    Each schedule yields the LATEST due slot only: a worker that was down across several slots
    runs the missed ones as one catch-up run. Rows are locked with SKIP LOCKED, so concurrent
    claimers split the work. The slots' run rows are inserted and the schedules advanced in
    one transaction; the slots are enqueued after it commits (no row lock waits on Redis). A
    queue failure loses nothing: the open rows are re-queued by the next claim (stalled_runs).
    """
    now = now or datetime.now(UTC)
    claimed: list[Slot] = []
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, cron, timezone, session_mode, append_generation FROM schedules "
                "WHERE enabled AND next_run_at <= $1 "
                "ORDER BY next_run_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                now,
                batch,
            )
            dues: list[Slot] = []
            session_ids: list[str] = []
            next_runs: list[datetime] = []
            broken: list[uuid.UUID] = []
            for row in rows:
                try:
                    next_run = next_run_after(row["cron"], row["timezone"], now)
                    slot = latest_slot_before(row["cron"], row["timezone"], next_run)
                except Exception:
                    log.exception("schedule %s: cannot compute its slots; disabling it", row["id"])
                    broken.append(row["id"])
                    continue
                dues.append(Slot(row["id"], slot))
                session_ids.append(
                    run_session_id(
                        dues[-1], SessionMode(row["session_mode"]), row["append_generation"]
                    )
                )
                next_runs.append(next_run)
            ids = [due.schedule_id for due in dues]
            await conn.execute(
                "INSERT INTO schedule_runs (schedule_id, slot, session_id) "
                "SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[]) "
                "ON CONFLICT (schedule_id, slot) DO NOTHING",
                ids,
                [due.at for due in dues],
                session_ids,
            )
            await conn.execute(
                "UPDATE schedules s SET next_run_at = u.next_run_at FROM "
                "unnest($1::uuid[], $2::timestamptz[]) AS u(id, next_run_at) WHERE s.id = u.id",
                ids,
                next_runs,
            )
            if broken:
                await conn.execute(
                    "UPDATE schedules SET enabled = false, next_run_at = NULL, "
                    "last_outcome = 'failed', last_error = 'the cron expression cannot be "
                    "evaluated; edit the schedule' WHERE id = ANY($1::uuid[])",
                    broken,
                )
        for due in dues:
            await enqueue(due)
        claimed.extend(dues)
        if len(rows) < batch:
            return claimed
