"""The one adapter between scheduled runs and arq: the job functions' names, the cron claim's
name, a slot's job id and arguments, enqueueing, and arq's retry limit. Nothing else in the
project calls arq's enqueue API or spells these names; the API (runScheduleNow, workers/schema.py)
and the worker (workers/jobs.py, workers/main.py) both go through here, so they cannot drift.

What is queued is only a pointer: the database decides what runs (workers/runs.py). A slot's
job id is Slot.job_id, so a slot enqueued twice is one job while arq remembers it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

from arq.connections import ArqRedis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .schedules import Slot

EXECUTE_JOB = "execute_schedule_run"  # jobs.execute_schedule_run(schedule_id, slot_iso)
CLAIM_JOB = "claim_due_schedules"  # jobs.claim_due_schedules()
DELIVER_JOB = "deliver_message"  # jobs.deliver_message(delivery_id): one outbox row
SWEEP_JOB = "send_due_deliveries"  # jobs.send_due_deliveries(): every due outbox row
RETENTION_JOB = "apply_retention"  # retention.apply_retention(): delete idle sessions
RETENTION_FUNCTION = "workers.retention.apply_retention"  # arq imports it by this path
RETENTION_MINUTE = 17  # of every hour: away from the top of the hour, when schedules are due
RETENTION_TIMEOUT = 300.0  # seconds; above the job's own budget (retention.RETENTION_BUDGET)

# How long the API waits for Redis to take one job before it answers SERVICE_UNAVAILABLE. The
# API's Redis client has no socket timeouts of its own: without this bound an unreachable (not
# refusing) Redis would keep the request, and the run row it just stored, waiting for minutes.
ENQUEUE_TIMEOUT = 5.0

# Redis did not take the job (refused, dropped, timed out): the enqueue can be tried again.
REDIS_DOWN: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    TimeoutError,
    OSError,
)

# arq counts every start of a job (job_try), also the re-runs with which jobs.py rides out a
# PostgreSQL outage; those never reach the run row, so they are no attempt. This many such
# re-runs fit within arq's limit (10 s, 20 s, ... 100 s apart: about 9 minutes of outage).
POSTGRES_OUTAGE_TRIES = 10


class QueueUnavailable(Exception):
    """Redis did not take the job; nothing was queued (or, after a timeout, possibly was)."""


def claim_cron_name(queue_name: str) -> str:
    """The periodic claim's arq cron job name. The queue is in the name: cron job ids are global
    in Redis, and deployments (or test runs) sharing one Redis on different queues must not
    suppress each other's claim."""
    return f"cron:{CLAIM_JOB}:{queue_name}"


def sweep_cron_name(queue_name: str) -> str:
    return f"cron:{SWEEP_JOB}:{queue_name}"


def retention_cron_name(queue_name: str) -> str:
    return f"cron:{RETENTION_JOB}:{queue_name}"


async def enqueue_delivery(
    arq: ArqRedis, queue_name: str, delivery_id: int, attempts: int = 0
) -> None:
    """Queue the next attempt at an outbox row. The job id names the attempt: queued twice, it
    is one job while arq remembers it, and the next attempt is a new one (the row decides)."""
    await arq.enqueue_job(
        DELIVER_JOB,
        delivery_id,
        _job_id=f"delivery:{queue_name}:{delivery_id}:{attempts}",  # job ids are global
        _queue_name=queue_name,
    )


def execute_max_tries(max_attempts: int) -> int:
    """arq's max_tries for EXECUTE_JOB: a safety net, not the retry policy.

    Attempts are counted once, on the run row (schedule_runs.attempts, incremented by each
    begin_run): workers/execution.py retries a failed turn while attempts < max_attempts
    (settings.schedule_max_attempts) and closes the run as failed after that, also when
    earlier attempts were cut short by a killed worker (the start that finds attempts >
    max_attempts). arq must therefore never stop first: it allows those max_attempts + 1
    starts, plus POSTGRES_OUTAGE_TRIES starts that could not reach the database. Should arq
    stop anyway, the run row stays open and the periodic claim re-queues it once arq has
    forgotten the job (its result expires), so nothing is lost.
    """
    return max_attempts + 1 + POSTGRES_OUTAGE_TRIES


def job_args(slot: Slot) -> tuple[str, str]:
    """EXECUTE_JOB's positional arguments for a slot (as already queued jobs carry them)."""
    return str(slot.schedule_id), slot.at.isoformat()


def slot_of_job(schedule_id: str, slot_iso: str) -> Slot:
    """The slot EXECUTE_JOB's arguments name (the inverse of job_args)."""
    return Slot(uuid.UUID(schedule_id), datetime.fromisoformat(slot_iso))


async def enqueue_run(arq: ArqRedis, queue_name: str, slot: Slot) -> bool:
    """Queue one execution of a slot. False: that slot's job is already queued or recently done
    (its job id); the database makes a slot run once anyway. Redis errors propagate."""
    job = await arq.enqueue_job(
        EXECUTE_JOB, *job_args(slot), _job_id=slot.job_id, _queue_name=queue_name
    )
    return job is not None


async def enqueue_run_within(arq: ArqRedis, queue_name: str, slot: Slot) -> bool:
    """enqueue_run for a caller that answers someone (runScheduleNow): at most ENQUEUE_TIMEOUT
    seconds, and QueueUnavailable when Redis did not take the job."""
    try:
        async with asyncio.timeout(ENQUEUE_TIMEOUT):
            return await enqueue_run(arq, queue_name, slot)
    except REDIS_DOWN as exc:
        raise QueueUnavailable(f"{type(exc).__name__}: {exc}") from exc
