"""arq job functions. They take ids, never objects, and are idempotent: running one twice is
harmless, because the database decides what has already been done. Their names, arguments and
enqueueing are workers/arq_queue.py's."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from arq import Retry
from arq.connections import ArqRedis

from graphql_api.core import deliveries

from . import arq_queue, outbox, runs
from .execution import Policy, RetryLater, execute
from .schedules import Slot

log = logging.getLogger(__name__)

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


async def _claim(pool: asyncpg.Pool, arq: ArqRedis, queue_name: str) -> int:
    async def enqueue(slot: Slot) -> None:
        await arq_queue.enqueue_run(arq, queue_name, slot)

    claimed = await runs.claim_due(pool, enqueue)
    just_queued = set(claimed)
    for slot in await runs.stalled_runs(pool):
        if slot in just_queued:
            continue
        if await arq_queue.enqueue_run(arq, queue_name, slot):
            log.info("re-queued the open run of schedule %s slot %s", slot.schedule_id, slot.at)
    return len(claimed)


async def execute_schedule_run(ctx: dict[str, Any], schedule_id: str, slot_iso: str) -> str:
    """Run one slot of one schedule (see workers.execution.execute). The arguments are
    arq_queue.job_args(slot), as jobs already in the queue carry them."""
    policy: Policy = ctx["policy"]
    slot = arq_queue.slot_of_job(schedule_id, slot_iso)
    try:
        result = await execute(ctx["pool"], ctx["agent"], slot.schedule_id, slot.at, policy)
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


async def deliver_message(ctx: dict[str, Any], delivery_id: int) -> str:
    """Send one outbox row (see workers.outbox.deliver)."""
    try:
        return await outbox.deliver(ctx, delivery_id)
    except POSTGRES_DOWN as exc:
        log.warning("PostgreSQL is unreachable (%s); the next sweep sends it", _why(exc))
        return "postgres down"


async def send_due_deliveries(ctx: dict[str, Any]) -> int:
    """Queue every due outbox row: new ones the API could not queue, retries whose time has
    come, and rows a killed worker left claimed."""
    try:
        due = await deliveries.due(ctx["pool"])
    except POSTGRES_DOWN as exc:
        log.warning("PostgreSQL is unreachable (%s); the next sweep tries again", _why(exc))
        return 0
    for delivery_id, attempts in due:
        await arq_queue.enqueue_delivery(ctx["redis"], ctx["queue_name"], delivery_id, attempts)
    return len(due)


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
