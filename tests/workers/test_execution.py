"""Scheduled runs through a real arq worker (burst mode) on real Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from arq.connections import ArqRedis

from graphql_api.core import messages
from graphql_api.core.agent import ChatTurn
from graphql_api.core.models import Role
from tests.conftest import make_person
from workers import arq_queue, schedules
from workers import runs as schedule_runs
from workers.schedules import Slot

from .conftest import ProbeAgent, Workers, unreachable_agent

SESSIONS_QUERY = """
query ($channel: Channel) {
  sessions(channel: $channel) { edges { node { sessionId channel isActive agentName
    messages { edges { node { role content } } } } } }
}
"""


async def test_due_schedule_runs_as_one_scheduled_session(
    workers: Workers, pool: asyncpg.Pool, schedules_api
) -> None:
    owner = make_person()
    schedule = await workers.create(owner.user_id, prompt="Summarise yesterday's tickets")
    await workers.make_due(schedule.id)
    agent = ProbeAgent(pool)

    await workers.burst(agent)

    [run] = await workers.runs(schedule.id)
    assert run["status"] == "succeeded" and run["attempts"] == 1
    [session] = await workers.sessions_of(schedule.agent_name)
    assert session["channel"] == "scheduled"
    assert session["user_id"] == owner.user_id
    assert session["session_id"] == run["session_id"]
    assert agent.active_during_turn == [True]  # active while the agent ran (AC-7) ...
    assert session["is_active"] is False  # ... and inactive after
    assert await workers.messages_of(session["session_id"]) == [
        ("human", "Summarise yesterday's tickets"),
        ("ai", "Done: Summarise yesterday's tickets"),
    ]
    after = await schedules.get_schedule(pool, owner.user_id, schedule.id)
    assert after is not None
    assert after.last_outcome is schedules.Outcome.SUCCEEDED
    assert after.last_run_at == run["slot"]
    assert after.next_run_at is not None and after.next_run_at > datetime.now(UTC)

    # The owner sees it through GraphQL among the scheduled sessions, with both messages.
    data = await schedules_api.ok(SESSIONS_QUERY, {"channel": "SCHEDULED"}, token=owner.token)
    [node] = [e["node"] for e in data["sessions"]["edges"]]
    assert node["sessionId"] == session["session_id"]
    assert node["channel"] == "SCHEDULED" and node["isActive"] is False
    assert node["agentName"] == schedule.agent_name
    assert [(m["node"]["role"], m["node"]["content"]) for m in node["messages"]["edges"]] == [
        ("USER", "Summarise yesterday's tickets"),
        ("ASSISTANT", "Done: Summarise yesterday's tickets"),
    ]
    # In the unfiltered list too (every channel in one list), and not for anyone else.
    data = await schedules_api.ok(SESSIONS_QUERY, {"channel": None}, token=owner.token)
    assert [e["node"]["sessionId"] for e in data["sessions"]["edges"]] == [session["session_id"]]
    stranger = make_person()
    data = await schedules_api.ok(SESSIONS_QUERY, {"channel": "SCHEDULED"}, token=stranger.token)
    assert data["sessions"]["edges"] == []


async def test_same_slot_enqueued_twice_yields_one_session(
    workers: Workers, pool: asyncpg.Pool, arq_redis: ArqRedis
) -> None:
    owner = make_person()
    schedule = await workers.create(owner.user_id)
    slot = datetime.now(UTC).replace(microsecond=0)
    queue = workers.settings.worker_queue

    assert await arq_queue.enqueue_run(arq_redis, queue, Slot(schedule.id, slot)) is True
    assert await arq_queue.enqueue_run(arq_redis, queue, Slot(schedule.id, slot)) is False
    # Past the queue's memory (another job id for the same slot): the database still decides.
    await arq_redis.enqueue_job(
        arq_queue.EXECUTE_JOB,
        str(schedule.id),
        slot.isoformat(),
        _job_id=f"again:{schedule.id}",
        _queue_name=queue,
    )
    agent = ProbeAgent(pool)
    worker = await workers.burst(agent, claim=False)

    assert worker.jobs_complete == 2
    assert agent.calls == [schedule.agent_name]
    [run] = await workers.runs(schedule.id)
    assert run["slot"] == slot and run["status"] == "succeeded"
    [session] = await workers.sessions_of(schedule.agent_name)
    assert len(await workers.messages_of(session["session_id"])) == 2

    # And once more after everything finished: nothing changes.
    await arq_redis.enqueue_job(
        arq_queue.EXECUTE_JOB,
        str(schedule.id),
        slot.isoformat(),
        _job_id=f"third:{schedule.id}",
        _queue_name=queue,
    )
    await workers.burst(agent, claim=False)
    assert agent.calls == [schedule.agent_name]
    assert len(await workers.sessions_of(schedule.agent_name)) == 1


async def test_two_workers_claiming_at_once_run_each_slot_once(
    workers: Workers, pool: asyncpg.Pool
) -> None:
    owner = make_person()
    created = [await workers.create(owner.user_id) for _ in range(12)]
    for schedule in created:
        await workers.make_due(schedule.id)
    agent = ProbeAgent(pool)
    first, second = workers.build(agent), workers.build(agent)

    try:
        await asyncio.gather(first.async_run(), second.async_run())
    finally:
        await asyncio.gather(first.close(), second.close())

    mine = {s.agent_name for s in created}
    assert sorted(c for c in agent.calls if c in mine) == sorted(mine)
    for schedule in created:
        assert len(await workers.runs(schedule.id)) == 1
        assert len(await workers.sessions_of(schedule.agent_name)) == 1


async def test_claim_skips_schedules_another_claimer_holds(
    workers: Workers, pool: asyncpg.Pool
) -> None:
    owner = make_person()
    held, free = await workers.create(owner.user_id), await workers.create(owner.user_id)
    await workers.make_due(held.id)
    await workers.make_due(free.id)
    claimed: list[Slot] = []

    async def collect(due: Slot) -> None:
        claimed.append(due)

    async with pool.acquire() as other, other.transaction():
        await other.execute("SELECT 1 FROM schedules WHERE id = $1 FOR UPDATE", held.id)
        async with asyncio.timeout(60):  # a guard against a hang, not a speed assertion
            await schedule_runs.claim_due(pool, collect)  # does not wait for the held row
        assert free.id in {d.schedule_id for d in claimed}
        assert held.id not in {d.schedule_id for d in claimed}
    await schedule_runs.claim_due(pool, collect)
    assert [d.schedule_id for d in claimed].count(held.id) == 1
    assert [d.schedule_id for d in claimed].count(free.id) == 1


async def test_agent_failure_is_recorded_and_the_session_left_inactive(
    workers: Workers, pool: asyncpg.Pool, schedules_api, arq_redis: ArqRedis
) -> None:
    owner = make_person()
    schedule = await workers.create(owner.user_id, prompt="Check the build")
    await workers.make_due(schedule.id)
    agent = unreachable_agent()
    try:
        await workers.burst(agent)
    finally:
        await agent.aclose()

    [run] = await workers.runs(schedule.id)
    assert run["status"] == "failed"
    assert run["attempts"] == workers.settings.schedule_max_attempts  # bounded retries
    assert "could not be reached" in run["error"]
    [session] = await workers.sessions_of(schedule.agent_name)
    assert session["is_active"] is False
    assert "could not be reached" in session["last_error"]
    assert session["last_error_at"] is not None
    # Nothing lost: the prompt is stored once, however many times the run was tried.
    assert await workers.messages_of(session["session_id"]) == [("human", "Check the build")]
    after = await schedules.get_schedule(pool, owner.user_id, schedule.id)
    assert after is not None and after.last_outcome is schedules.Outcome.FAILED
    assert after.last_error is not None and "could not be reached" in after.last_error

    data = await schedules_api.ok(
        "query { schedules { edges { node { lastOutcome lastError runs { edges { node {"
        " sessionId isActive lastError } } } } } } }",
        token=owner.token,
    )
    [node] = [e["node"] for e in data["schedules"]["edges"]]
    assert node["lastOutcome"] == "FAILED" and "could not be reached" in node["lastError"]
    [run_session] = [e["node"] for e in node["runs"]["edges"]]
    assert run_session["sessionId"] == session["session_id"]
    assert run_session["isActive"] is False and "could not be reached" in run_session["lastError"]

    # The slot queued again later (a fresh job id) is not tried a third time: the run is closed.
    await arq_redis.enqueue_job(
        arq_queue.EXECUTE_JOB,
        str(schedule.id),
        run["slot"].isoformat(),
        _job_id=f"again:{schedule.id}",
        _queue_name=workers.settings.worker_queue,
    )
    probe = ProbeAgent(pool)
    await workers.burst(probe, claim=False)
    assert probe.calls.count(schedule.agent_name) == 0
    [again] = await workers.runs(schedule.id)
    assert again["status"] == "failed" and again["attempts"] == run["attempts"]


async def test_missed_slots_make_one_catch_up_run(workers: Workers, pool: asyncpg.Pool) -> None:
    owner = make_person()
    schedule = await workers.create(owner.user_id, cron="0 * * * *")  # hourly
    await workers.make_due(schedule.id, ago=timedelta(hours=5, minutes=30))  # ~5 slots missed
    agent = ProbeAgent(pool)

    await workers.burst(agent)

    [run] = await workers.runs(schedule.id)  # one run, not five
    now = datetime.now(UTC)
    latest_slot = now.replace(minute=0, second=0, microsecond=0)
    assert run["slot"] == latest_slot  # the latest missed slot
    assert agent.calls.count(schedule.agent_name) == 1
    after = await schedules.get_schedule(pool, owner.user_id, schedule.id)
    assert after is not None and after.next_run_at == latest_slot + timedelta(hours=1)


async def test_a_run_cut_short_by_a_killed_worker_resumes_with_the_same_session(
    workers: Workers, pool: asyncpg.Pool
) -> None:
    owner = make_person()
    schedule = await workers.create(owner.user_id, prompt="Water the plants")
    slot = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
    # What a worker killed mid-turn leaves behind: the run row holding a lease, the session
    # active, the prompt stored, no reply.
    start = await schedule_runs.begin_run(pool, schedule, slot, lease_seconds=3600)
    assert start.state is schedule_runs.RunState.STARTED and start.session is not None
    await messages.append_message(
        pool,
        start.session.session_id,
        Role.USER,
        schedule.prompt,
        idempotency_key=Slot(schedule.id, slot).idempotency_key,
    )
    agent = ProbeAgent(pool)

    # While its lease holds, nobody else takes the slot over.
    await workers.burst(agent, claim=True)
    assert agent.calls.count(schedule.agent_name) == 0
    # The lease runs out; the periodic claim re-queues the open run and a worker resumes it.
    await pool.execute(
        "UPDATE schedule_runs SET lease_until = now() - interval '1 second' WHERE schedule_id = $1",
        schedule.id,
    )
    await workers.burst(agent, claim=True)

    assert agent.calls.count(schedule.agent_name) == 1
    [run] = await workers.runs(schedule.id)
    assert run["status"] == "succeeded" and run["attempts"] == 2
    [session] = await workers.sessions_of(schedule.agent_name)
    assert session["session_id"] == start.session.session_id and session["is_active"] is False
    assert await workers.messages_of(session["session_id"]) == [
        ("human", "Water the plants"),
        ("ai", "Done: Water the plants"),
    ]


async def test_a_deleted_schedule_runs_nothing(
    workers: Workers, pool: asyncpg.Pool, arq_redis: ArqRedis
) -> None:
    owner = make_person()
    schedule = await workers.create(owner.user_id)
    slot = datetime.now(UTC).replace(microsecond=0)
    await arq_queue.enqueue_run(arq_redis, workers.settings.worker_queue, Slot(schedule.id, slot))
    assert await schedules.delete_schedule(pool, owner.user_id, schedule.id)
    agent = ProbeAgent(pool)

    worker = await workers.burst(agent, claim=False)

    assert worker.jobs_complete == 1 and worker.jobs_failed == 0
    assert agent.calls.count(schedule.agent_name) == 0
    assert await workers.sessions_of(schedule.agent_name) == []


@dataclass
class DeletingAgent:
    """The owner deletes the schedule while its turn runs; the agent still answers."""

    pool: asyncpg.Pool
    schedule_id: uuid.UUID
    owner: uuid.UUID

    async def reply(self, history: Sequence[ChatTurn], message: str, *, agent_name: str) -> str:
        assert await schedules.delete_schedule(self.pool, self.owner, self.schedule_id)
        return f"Done: {message}"

    async def aclose(self) -> None:
        return None


async def test_a_schedule_deleted_during_its_turn_finishes_the_job(
    workers: Workers, pool: asyncpg.Pool, arq_redis: ArqRedis
) -> None:
    owner = make_person()
    schedule = await workers.create(owner.user_id, prompt="Tidy the inbox")
    slot = datetime.now(UTC).replace(microsecond=0)
    await arq_queue.enqueue_run(arq_redis, workers.settings.worker_queue, Slot(schedule.id, slot))

    worker = await workers.burst(DeletingAgent(pool, schedule.id, owner.user_id), claim=False)

    assert worker.jobs_complete == 1 and worker.jobs_failed == 0
    assert await schedules.get_schedule(pool, owner.user_id, schedule.id) is None
    assert await workers.runs(schedule.id) == []
    [session] = await workers.sessions_of(schedule.agent_name)  # the run's session remains
    assert session["is_active"] is False
    assert await workers.messages_of(session["session_id"]) == [
        ("human", "Tidy the inbox"),
        ("ai", "Done: Tidy the inbox"),
    ]
    # Closing the run of a deleted schedule is a no-op, like beginning one.
    for outcome in schedules.Outcome:
        assert not await schedule_runs.finish_run(pool, schedule.id, slot, outcome, "late")


async def test_the_repeated_hour_of_a_clock_change_runs_a_daily_slot_once(
    workers: Workers, pool: asyncpg.Pool
) -> None:
    """Berlin, 2025-10-26: 02:30 happens at 00:30Z (summer time) and again at 01:30Z."""
    owner = make_person()
    schedule = await workers.create(owner.user_id, cron="30 2 * * *", timezone="Europe/Berlin")
    first = datetime(2025, 10, 26, 0, 30, tzinfo=UTC)
    await pool.execute("UPDATE schedules SET next_run_at = $2 WHERE id = $1", schedule.id, first)
    claimed: list[Slot] = []

    async def collect(due: Slot) -> None:
        claimed.append(due)

    try:
        now = first - timedelta(minutes=1)
        while now <= datetime(2025, 10, 26, 2, 0, tzinfo=UTC):  # a claim every minute
            await schedule_runs.claim_due(pool, collect, now=now)
            now += timedelta(minutes=1)
        assert [d.at for d in claimed if d.schedule_id == schedule.id] == [first]
        after = await schedules.get_schedule(pool, owner.user_id, schedule.id)
        assert after is not None
        assert after.next_run_at == datetime(2025, 10, 27, 1, 30, tzinfo=UTC)  # 02:30 CET
    finally:  # its claimed slot was never queued: leave no open run behind
        await schedules.delete_schedule(pool, owner.user_id, schedule.id)
