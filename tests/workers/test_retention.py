"""Retention through a real arq worker (burst mode), and a deleted APPEND session."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import timedelta

import asyncpg
from arq.connections import ArqRedis

from graphql_api.core import forgetting
from graphql_api.core.agent import EchoAgent
from graphql_api.core.settings import Settings
from tests.conftest import GraphQLClient, make_person
from tests.graphql_api.seed import add_messages, make_session
from workers import arq_queue
from workers.main import build_worker

from .conftest import Workers


async def _age(pool: asyncpg.Pool, session_id: str, days: float) -> None:
    await pool.execute(
        "UPDATE chat_sessions SET updated_at = now() - $2::interval WHERE session_id = $1",
        session_id,
        timedelta(days=days),
    )


async def _exists(pool: asyncpg.Pool, session_id: str) -> bool:
    return bool(
        await pool.fetchval("SELECT count(*) FROM chat_sessions WHERE session_id = $1", session_id)
    )


async def _run_retention(workers: Workers, arq_redis: ArqRedis) -> None:
    await arq_redis.enqueue_job(
        arq_queue.RETENTION_JOB,
        _queue_name=workers.settings.worker_queue,
        # The queue in the id: the run's clean-up removes the job's keys with the queue's.
        _job_id=f"retention-{workers.settings.worker_queue}-{uuid.uuid4()}",
    )
    await workers.burst(EchoAgent(), claim=False)


async def test_idle_sessions_past_their_channels_retention_are_deleted(
    workers: Workers, pool: asyncpg.Pool, arq_redis: ArqRedis
) -> None:
    owner = make_person().user_id
    old_web = await make_session(pool, owner)
    new_web = await make_session(pool, owner)
    old_scheduled = await make_session(pool, owner, channel="scheduled")
    old_telegram = await make_session(pool, owner, channel="telegram")  # no policy: kept
    for session, days in ((old_web, 31), (new_web, 29), (old_scheduled, 8), (old_telegram, 400)):
        await add_messages(pool, session.session_id, 2)
        await _age(pool, session.session_id, days)
    workers.settings = dataclasses.replace(
        workers.settings, retention=(("web", 30), ("scheduled", 7))
    )

    await _run_retention(workers, arq_redis)

    assert not await _exists(pool, old_web.session_id)
    assert not await _exists(pool, old_scheduled.session_id)
    assert await _exists(pool, new_web.session_id)
    assert await _exists(pool, old_telegram.session_id)
    assert not await pool.fetchval(
        "SELECT count(*) FROM chat_message_history WHERE session_id = ANY($1::text[])",
        [old_web.session_id, old_scheduled.session_id],
    )
    run = await forgetting.last_retention_run(pool)
    assert run is not None and run.finished_at is not None and run.error is None
    assert run.policy == {"scheduled": 7, "web": 30}
    assert run.sessions_deleted >= 2

    # At least once: a second run finds nothing more of these to delete, and fails nothing.
    await _run_retention(workers, arq_redis)
    assert await _exists(pool, new_web.session_id)
    second = await forgetting.last_retention_run(pool)
    assert second is not None and second.id > run.id and second.error is None


async def test_retention_deletes_in_batches_until_none_is_left(pool: asyncpg.Pool) -> None:
    owner = make_person().user_id
    channel = "scheduled"
    idle = [await make_session(pool, owner, channel=channel) for _ in range(7)]
    for session in idle:
        await _age(pool, session.session_id, 1000)

    deleted = await forgetting.apply_retention(pool, {channel: 999}, budget=60, batch=3)

    assert deleted >= 7
    assert not any([await _exists(pool, s.session_id) for s in idle])


async def test_two_retention_runs_at_once_split_the_work_and_both_finish(
    pool: asyncpg.Pool,
) -> None:
    """Running twice is harmless, also at the same moment: each batch skips the rows the
    other run is deleting, every idle session goes once, and both runs end without error."""
    owner = make_person().user_id
    channel = "scheduled"
    idle = [await make_session(pool, owner, channel=channel) for _ in range(40)]
    for session in idle:
        await add_messages(pool, session.session_id, 2)
        await _age(pool, session.session_id, 1000)
    before = await pool.fetchval("SELECT count(*) FROM deleted_sessions")

    counts = await asyncio.gather(
        *(forgetting.apply_retention(pool, {channel: 999}, budget=60, batch=3) for _ in range(2))
    )

    assert not any([await _exists(pool, s.session_id) for s in idle])
    tombstones = await pool.fetchval("SELECT count(*) FROM deleted_sessions") - before
    assert sum(counts) == tombstones >= len(idle)  # each deletion counted by one run only
    runs = await pool.fetch(
        "SELECT finished_at, error FROM retention_runs ORDER BY id DESC LIMIT 2"
    )
    assert all(r["finished_at"] is not None and r["error"] is None for r in runs)


async def test_the_worker_runs_retention_hourly_under_its_queues_name(
    worker_settings: Settings,
) -> None:
    worker = build_worker(worker_settings, burst=True, handle_signals=False)
    try:
        [job] = [
            c
            for c in worker.cron_jobs
            if c.name == arq_queue.retention_cron_name(worker_settings.worker_queue)
        ]
        assert job.minute == arq_queue.RETENTION_MINUTE and job.unique
        assert arq_queue.RETENTION_JOB in worker.functions
    finally:
        await worker.close()


SESSIONS = "query { sessions(channel: SCHEDULED) { edges { node { sessionId } } } }"
DELETE = "mutation ($id: String!) { deleteSession(input: {sessionId: $id}) { deletedSessionId } }"


async def test_an_append_schedule_whose_session_was_deleted_starts_a_fresh_one(
    workers: Workers, pool: asyncpg.Pool, schedules_api: GraphQLClient
) -> None:
    owner = make_person()
    schedule = await workers.create(owner.user_id, prompt="Daily digest")
    await pool.execute("UPDATE schedules SET session_mode = 'append' WHERE id = $1", schedule.id)
    await workers.make_due(schedule.id, timedelta(hours=2))
    await workers.burst(EchoAgent())
    first = f"sched:{schedule.id}"
    assert len(await workers.messages_of(first)) == 2

    await schedules_api.ok(DELETE, {"id": first}, token=owner.token)
    # Another yearly slot (2 January rather than 1 January): the next run is a new slot.
    await pool.execute("UPDATE schedules SET cron = '0 0 2 1 *' WHERE id = $1", schedule.id)
    await workers.make_due(schedule.id)
    await workers.burst(EchoAgent())

    fresh = f"sched:{schedule.id}.1"
    assert not await _exists(pool, first)
    [prompt, reply] = await workers.messages_of(fresh)
    assert prompt == ("human", "Daily digest")
    assert reply[1].endswith("(message 1 in this session)")  # the agent saw no old history
    runs = await workers.runs(schedule.id)
    assert [(r["status"], r["session_id"]) for r in runs] == [
        ("succeeded", None),
        ("succeeded", fresh),
    ]
    data = await schedules_api.ok(SESSIONS, token=owner.token)
    assert [e["node"]["sessionId"] for e in data["sessions"]["edges"]] == [fresh]
