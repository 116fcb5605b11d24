"""arq job functions. They take ids, never objects, and are idempotent: running one twice is
harmless, because the database decides what has already been done."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

import asyncpg
from arq import Retry
from arq.connections import ArqRedis

from . import runs, schedules
from .execution import Policy, RetryLater, execute

log = logging.getLogger(__name__)

CLAIM_JOB = "claim_due_schedules"
EXECUTE_JOB = schedules.EXECUTE_JOB

# PostgreSQL did not answer: the job says so in one line and is tried again later.
POSTGRES_DOWN: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, timed out, no socket
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.AdminShutdownError,  # the server ended the connection
    asyncpg.ConnectionDoesNotExistError,  # the connection died during a query
)
POSTGRES_RETRY_DELAY = 10.0  # seconds, times the job's try


async def claim_due_schedules(ctx: dict[str, Any]) -> int:
    """Queue the latest due slot of every due schedule, and re-queue runs whose worker died."""
    try:
        return await _claim(ctx["pool"], ctx["redis"], ctx["queue_name"])
    except POSTGRES_DOWN as exc:
        log.warning("PostgreSQL is unreachable (%s); the next claim tries again", _why(exc))
        return 0


async def _claim(pool: asyncpg.Pool, arq: ArqRedis, queue: str) -> int:
    async def enqueue(due: schedules.DueSlot) -> None:
        await schedules.enqueue_run(arq, queue, due.schedule_id, due.slot)

    claimed = await runs.claim_due(pool, enqueue)
    just_queued = {(due.schedule_id, due.slot) for due in claimed}
    for schedule_id, slot in await runs.stalled_runs(pool):
        if (schedule_id, slot) in just_queued:
            continue
        if await schedules.enqueue_run(arq, queue, schedule_id, slot):
            log.info("re-queued the open run of schedule %s slot %s", schedule_id, slot)
    return len(claimed)


async def execute_schedule_run(ctx: dict[str, Any], schedule_id: str, slot_iso: str) -> str:
    """Run one slot of one schedule (see workers.execution.execute)."""
    policy: Policy = ctx["policy"]
    try:
        result = await execute(
            ctx["pool"],
            ctx["agent"],
            uuid.UUID(schedule_id),
            datetime.fromisoformat(slot_iso),
            policy,
        )
    except RetryLater as later:
        raise Retry(defer=later.delay) from None
    except POSTGRES_DOWN as exc:
        delay = POSTGRES_RETRY_DELAY * ctx.get("job_try", 1)
        log.warning(
            "PostgreSQL is unreachable (%s); schedule %s slot %s is tried again in %.0f s",
            _why(exc),
            schedule_id,
            slot_iso,
            delay,
        )
        raise Retry(defer=delay) from None
    return result.value


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
