"""The arq adapter and the order of database and queue: a run row commits before its slot is
enqueued, no transaction or connection waits on Redis, and a Redis that fails or never answers
still leaves runScheduleNow with nothing stored or queued. Attempts are the run row's."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from arq.connections import ArqRedis
from redis.asyncio import Redis
from strawberry.relay import to_base64

from graphql_api.app import create_app
from graphql_api.core.agent import EchoAgent
from graphql_api.core.embedded import free_port
from graphql_api.core.runtime import Resources
from graphql_api.core.settings import Settings
from tests.conftest import GraphQLClient, make_person, running_server
from workers import arq_queue
from workers import runs as schedule_runs
from workers.execution import Policy
from workers.main import build_worker
from workers.schedules import Slot

from .conftest import ProbeAgent, Workers

RUN_NOW = "mutation ($id: ID!) { runScheduleNow(id: $id) { slot sessionId queued } }"


async def _open_run(pool: asyncpg.Pool, slot: Slot) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT attempts, status, lease_until > now() AS held FROM schedule_runs "
        "WHERE schedule_id = $1 AND slot = $2",
        slot.schedule_id,
        slot.at,
    )


async def test_run_now_commits_its_row_before_it_enqueues(
    workers: Workers, pool: asyncpg.Pool, arq_redis: ArqRedis
) -> None:
    owner = make_person()
    schedule = await workers.create(owner.user_id, prompt="Ordered")
    seen: dict[str, object] = {}

    async def enqueue(slot: Slot) -> None:
        # The row is committed (another connection sees it), held for this enqueue, and the
        # claim leaves it alone; the schedule's lock is free: a second request is refused
        # at once instead of waiting for Redis.
        seen["row"] = await _open_run(pool, slot)
        seen["stalled"] = slot in await schedule_runs.stalled_runs(pool, limit=10_000)
        async with asyncio.timeout(10):
            with pytest.raises(schedule_runs.RunInProgress):
                await schedule_runs.queue_run_now(pool, owner.user_id, schedule.id, enqueue)
        await arq_queue.enqueue_run(arq_redis, workers.settings.worker_queue, slot)

    run = await schedule_runs.queue_run_now(pool, owner.user_id, schedule.id, enqueue)
    assert run is not None and run.queued
    row = seen["row"]
    assert isinstance(row, asyncpg.Record)
    assert (row["status"], row["attempts"], row["held"]) == ("running", 0, True)
    assert seen["stalled"] is False

    # The hold is no worker's lease: the queued job begins the run at once, one attempt.
    agent = ProbeAgent(pool)
    await workers.burst(agent, claim=False)
    assert agent.calls == [schedule.agent_name]
    [done] = await workers.runs(schedule.id)
    assert done["status"] == "succeeded" and done["attempts"] == 1
    assert done["session_id"] == run.slot.session_id


async def test_a_run_now_row_whose_enqueue_never_happened_is_requeued_after_its_hold(
    workers: Workers, pool: asyncpg.Pool
) -> None:
    """The API died between the commit and the enqueue: the claim runs the row later."""
    owner = make_person()
    schedule = await workers.create(owner.user_id, prompt="Not lost")

    async def die(slot: Slot) -> None:
        raise asyncio.CancelledError  # the request (or process) ended: no withdrawal

    with pytest.raises(asyncio.CancelledError):
        await schedule_runs.queue_run_now(pool, owner.user_id, schedule.id, die)
    [row] = await workers.runs(schedule.id)
    agent = ProbeAgent(pool)
    await workers.burst(agent, claim=True)  # within the hold: not re-queued yet
    assert agent.calls.count(schedule.agent_name) == 0
    await pool.execute(
        "UPDATE schedule_runs SET lease_until = now() - interval '1 second' WHERE id = $1",
        row["id"],
    )
    await workers.burst(agent, claim=True)
    assert agent.calls.count(schedule.agent_name) == 1
    [done] = await workers.runs(schedule.id)
    assert done["status"] == "succeeded" and done["attempts"] == 1


async def test_a_failed_enqueue_keeps_a_run_a_worker_already_began(
    workers: Workers, pool: asyncpg.Pool
) -> None:
    """Redis took the job but its answer was lost, and a worker began the run: it is queued."""
    owner = make_person()
    schedule = await workers.create(owner.user_id)

    async def taken_then_lost(slot: Slot) -> None:
        start = await schedule_runs.begin_run(pool, schedule, slot.at, lease_seconds=3600)
        assert start.state is schedule_runs.RunState.STARTED
        raise arq_queue.QueueUnavailable("the answer was lost")

    run = await schedule_runs.queue_run_now(pool, owner.user_id, schedule.id, taken_then_lost)
    assert run is not None and run.queued
    [row] = await workers.runs(schedule.id)
    assert row["status"] == "running" and row["attempts"] == 1
    await pool.execute("DELETE FROM schedules WHERE id = $1", schedule.id)  # leave no open run


@contextlib.asynccontextmanager
async def silent_redis() -> AsyncIterator[str]:
    """A port that accepts connections and never answers: an unreachable, not refusing, Redis."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def api_on(
    redis_url: str, settings: Settings, pool: asyncpg.Pool
) -> AsyncIterator[GraphQLClient]:
    redis = Redis.from_url(redis_url)
    resources = Resources(settings=settings, pool=pool, agent=EchoAgent(), redis=redis)
    try:
        async with running_server(create_app(settings, resources)) as url:
            yield GraphQLClient(url)
    finally:
        await redis.aclose(close_connection_pool=True)


async def _never(slot: Slot) -> None:
    raise AssertionError("not enqueued: the run is refused first")


async def test_run_now_on_a_silent_redis_answers_unavailable_and_stores_nothing(
    workers: Workers,
    worker_settings: Settings,
    pool: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(arq_queue, "ENQUEUE_TIMEOUT", 1.0)
    owner = make_person()
    schedule = await workers.create(owner.user_id)
    global_id = to_base64("Schedule", str(schedule.id))
    async with silent_redis() as url, api_on(url, worker_settings, pool) as api:
        request = asyncio.create_task(api(RUN_NOW, {"id": global_id}, token=owner.token))
        async with asyncio.timeout(10):
            while not await workers.runs(schedule.id):  # committed while Redis keeps silent
                await asyncio.sleep(0.02)
        # Meanwhile no transaction holds the schedule's lock: another request is answered at
        # once (the run is open), it does not wait for Redis.
        async with asyncio.timeout(5):
            with pytest.raises(schedule_runs.RunInProgress):
                await schedule_runs.queue_run_now(pool, owner.user_id, schedule.id, _never)
        async with asyncio.timeout(10):  # a guard, not a speed assertion
            refused = await request
    assert refused.codes == ["SERVICE_UNAVAILABLE"], refused.errors
    assert refused.errors and "try again" in refused.errors[0]["message"]
    assert await workers.runs(schedule.id) == []  # withdrawn before the answer


async def test_run_now_on_a_refusing_redis_answers_unavailable_and_stores_nothing(
    workers: Workers, worker_settings: Settings, pool: asyncpg.Pool
) -> None:
    owner = make_person()
    schedule = await workers.create(owner.user_id)
    global_id = to_base64("Schedule", str(schedule.id))
    async with api_on(f"redis://127.0.0.1:{free_port()}/0", worker_settings, pool) as api:
        refused = await api(RUN_NOW, {"id": global_id}, token=owner.token)
    assert refused.codes == ["SERVICE_UNAVAILABLE"], refused.errors
    assert await workers.runs(schedule.id) == []


def test_arq_max_tries_is_a_safety_net_above_the_run_rows_attempts(
    worker_settings: Settings,
) -> None:
    policy = Policy.from_settings(worker_settings)
    worker = build_worker(worker_settings, burst=True, handle_signals=False)
    execute = worker.functions[arq_queue.EXECUTE_JOB]
    assert execute.max_tries == arq_queue.execute_max_tries(policy.max_attempts)
    # The run row gives up at max_attempts + 1 starts (cut-short ones included): arq must allow
    # those, and PostgreSQL-outage re-runs besides.
    assert execute.max_tries > policy.max_attempts + 1
    # runScheduleNow's hold on its run row outlasts its bounded enqueue and the withdrawal.
    assert schedule_runs.QUEUE_HOLD_SECONDS > 2 * arq_queue.ENQUEUE_TIMEOUT
    assert [job.name for job in worker.cron_jobs] == [
        arq_queue.claim_cron_name(worker_settings.worker_queue),
        arq_queue.retention_cron_name(worker_settings.worker_queue),
        arq_queue.sweep_cron_name(worker_settings.worker_queue),
    ]  # a burst worker runs no channel sweeps


async def test_the_run_row_closes_a_run_arq_has_started_many_times(
    workers: Workers, pool: asyncpg.Pool, arq_redis: ArqRedis
) -> None:
    """Attempts are the row's: a job arq already started often (PostgreSQL outages, killed
    workers) is still run by the row's count, and closed as failed by it, not dropped by arq."""
    owner = make_person()
    schedule = await workers.create(owner.user_id, prompt="Tried often")
    slot = Slot(schedule.id, datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1))
    max_attempts = workers.settings.schedule_max_attempts
    # Every attempt the row allows was cut short by a killed worker; the lease has run out.
    for _ in range(max_attempts):
        await schedule_runs.begin_run(pool, schedule, slot.at, lease_seconds=3600)
        await pool.execute(
            "UPDATE schedule_runs SET lease_until = now() - interval '1 second' "
            "WHERE schedule_id = $1",
            schedule.id,
        )
    await arq_redis.enqueue_job(
        arq_queue.EXECUTE_JOB,
        *arq_queue.job_args(slot),
        _job_id=slot.job_id,
        _queue_name=workers.settings.worker_queue,
        _job_try=max_attempts + 3,  # more starts than max_attempts + 2 allowed before
    )
    agent = ProbeAgent(pool)
    worker = await workers.burst(agent, claim=False)

    assert worker.jobs_complete == 1 and worker.jobs_failed == 0
    assert agent.calls.count(schedule.agent_name) == 0
    [run] = await workers.runs(schedule.id)
    assert run["status"] == "failed" and run["attempts"] == max_attempts + 1
    assert f"gave up after {max_attempts} tries" in run["error"]
