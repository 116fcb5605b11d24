"""arq job functions. They take ids, never objects, and are idempotent: running one twice is
harmless, because the database decides what has already been done."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from arq import Retry

from graphql_api.core import schedule_runs, schedules

from .execution import Policy, RetryLater, execute

log = logging.getLogger(__name__)

CLAIM_JOB = "claim_due_schedules"
EXECUTE_JOB = schedules.EXECUTE_JOB


async def claim_due_schedules(ctx: dict[str, Any]) -> int:
    """Queue the latest due slot of every due schedule, and re-queue runs whose worker died."""
    queue = ctx["queue_name"]
    arq = ctx["redis"]

    async def enqueue(due: schedules.DueSlot) -> None:
        await schedules.enqueue_run(arq, queue, due.schedule_id, due.slot)

    claimed = await schedule_runs.claim_due(ctx["pool"], enqueue)
    just_queued = {(due.schedule_id, due.slot) for due in claimed}
    for schedule_id, slot in await schedule_runs.stalled_runs(ctx["pool"]):
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
    return result.value
