"""The spec's ScheduledExecutionService.execute(): run one slot of one schedule, once."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg

from graphql_api.channels import installed_channels
from graphql_api.core import conversation, deliveries, sessions
from graphql_api.core.agent import Agent
from graphql_api.core.errors import DomainError
from graphql_api.core.settings import Settings

from . import runs
from .runs import RunState
from .schedules import Outcome, ScheduleRow, slot_token

log = logging.getLogger(__name__)

JOB_TIMEOUT_MARGIN = 60.0  # seconds a job may run beyond the agent's own timeout


class Result(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ALREADY_DONE = "already-done"  # the slot ran before: a duplicate job
    BUSY = "busy"  # another worker is running the slot right now
    GONE = "gone"  # the schedule was deleted


class RetryLater(Exception):
    """The attempt failed and attempts remain: run the job again after `delay` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"retry in {delay:.0f}s")
        self.delay = delay


@dataclass(frozen=True)
class Policy:
    agent_timeout: float
    job_timeout: float
    max_attempts: int
    retry_delay: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            agent_timeout=settings.agent_timeout,
            job_timeout=settings.agent_timeout + JOB_TIMEOUT_MARGIN,
            max_attempts=settings.schedule_max_attempts,
            retry_delay=settings.schedule_retry_delay,
        )


async def execute(
    pool: asyncpg.Pool, agent: Agent, schedule_id: uuid.UUID, slot: datetime, policy: Policy
) -> Result:
    """Create the slot's session (scheduled, active), run the prompt as a turn, mark it inactive.

    Safe to call any number of times for the same slot: the run row decides, the session id and
    the turn's idempotency key are derived from the slot, so one session with one prompt and one
    reply results. When the agent fails, the failure is on the session and the schedule, the
    session is inactive, and RetryLater is raised while attempts remain.
    """
    schedule = await runs.get_schedule_for_run(pool, schedule_id)
    if schedule is None:
        return Result.GONE
    try:
        start = await runs.begin_run(pool, schedule, slot, lease_seconds=policy.job_timeout)
    except DomainError as refused:  # the slot's session id is taken by a session of another kind
        log.warning("schedule %s slot %s refused: %s", schedule.id, slot, refused.message)
        await runs.finish_run(pool, schedule.id, slot, Outcome.FAILED, refused.message)
        return Result.FAILED
    if start.state is not RunState.STARTED:
        return {
            RunState.GONE: Result.GONE,
            RunState.FINISHED: Result.ALREADY_DONE,
            RunState.BUSY: Result.BUSY,
        }[start.state]
    assert start.session is not None
    session_id = start.session.session_id
    if start.attempt > policy.max_attempts:  # earlier attempts were cut short (a killed worker)
        await sessions.set_active(pool, session_id, False)
        await _finish(
            schedule, slot, session_id, pool, f"gave up after {policy.max_attempts} tries"
        )
        return Result.FAILED
    try:
        # The turn's closing write (reply or failure) also marks the session inactive.
        turn = await conversation.run_turn(
            pool,
            agent,
            start.session,
            schedule.prompt,
            idempotency_key=f"schedule:{slot_token(slot)}",
            agent_timeout=policy.agent_timeout,
            is_active_after=False,
        )
    except asyncio.CancelledError:  # shutdown: leave the run to be resumed, never active
        await asyncio.shield(_abandon(pool, schedule.id, slot, session_id))
        raise
    except asyncpg.ForeignKeyViolationError:  # the person deleted the session mid-turn
        log.info("schedule %s slot %s: its session was deleted during the turn", schedule.id, slot)
        return Result.FAILED  # the deletion closed the run (migration 20250113000000)
    except Exception:
        log.exception("schedule %s slot %s failed unexpectedly", schedule.id, slot)
        reason = "the run failed unexpectedly"
        await sessions.set_active(pool, session_id, False)
        return await _failed(pool, schedule, slot, session_id, reason, start.attempt, policy)
    if turn.session.is_active:  # answered by an earlier attempt: this turn wrote nothing
        await sessions.set_active(pool, session_id, False)
    if turn.failure is not None:
        reason = turn.session.last_error or turn.failure
        return await _failed(pool, schedule, slot, session_id, reason, start.attempt, policy)
    await runs.finish_run(pool, schedule.id, slot, Outcome.SUCCEEDED, session_id=session_id)
    if turn.reply is not None and schedule.deliver_to:
        await deliver_elsewhere(pool, schedule, turn.reply.id)
    return Result.SUCCEEDED


async def deliver_elsewhere(pool: asyncpg.Pool, schedule: ScheduleRow, reply_id: int) -> None:
    """The run's reply, also to each deliverTo channel (the outbox: the worker's sweep sends
    it). A person with no address there gets a delivery failed with the reason; the run has
    succeeded all the same. Once per reply, however often the slot is tried."""
    for name in schedule.deliver_to:
        channel = next((c for c in installed_channels() if c.name == name), None)
        part = channel.delivery() if channel and channel.delivery else None
        if part is None or part.person_target is None:
            await deliveries.queue(pool, reply_id, name, None, no_target=f"{name} sends nothing")
            continue
        target = await part.person_target(pool, schedule.user_id)
        await deliveries.queue(pool, reply_id, name, target, no_target=part.no_target)


async def _failed(
    pool: asyncpg.Pool,
    schedule: ScheduleRow,
    slot: datetime,
    session_id: str,
    reason: str,
    attempt: int,
    policy: Policy,
) -> Result:
    """The attempt failed; the session is already inactive."""
    if attempt < policy.max_attempts:
        await runs.release_run(pool, schedule.id, slot, reason)
        raise RetryLater(policy.retry_delay * attempt)
    await _finish(schedule, slot, session_id, pool, reason)
    return Result.FAILED


async def _finish(
    schedule: ScheduleRow, slot: datetime, session_id: str, pool: asyncpg.Pool, reason: str
) -> None:
    await runs.finish_run(pool, schedule.id, slot, Outcome.FAILED, reason, session_id=session_id)


async def _abandon(
    pool: asyncpg.Pool, schedule_id: uuid.UUID, slot: datetime, session_id: str
) -> None:
    await sessions.set_active(pool, session_id, False)
    await runs.release_run(pool, schedule_id, slot, "the worker stopped during the run")
