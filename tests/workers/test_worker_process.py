"""The worker as people run it: `unified-sessions worker`, and inside `unified-sessions dev`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from arq.connections import ArqRedis
from redis.asyncio import Redis

from graphql_api.core.agent import EchoAgent
from graphql_api.core.runtime import Resources
from graphql_api.core.settings import Settings
from tests.conftest import make_person
from workers import arq_queue
from workers.main import worker_task
from workers.schedules import Slot

from .conftest import Workers

COMMAND = str(Path(sys.executable).parent / "unified-sessions")
WAIT = 60.0  # how long to wait for a run to finish: a guard, not a speed assertion


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    async with asyncio.timeout(WAIT):
        while not await check():
            await asyncio.sleep(0.05)
    assert await check(), what


async def _run_finished(pool: asyncpg.Pool, schedule_id: uuid.UUID) -> bool:
    status = await pool.fetchval(
        "SELECT status FROM schedule_runs WHERE schedule_id = $1", schedule_id
    )
    return status in {"succeeded", "failed"}


async def test_worker_task_runs_in_the_dev_event_loop_and_stops_cleanly(
    workers: Workers,
    worker_settings: Settings,
    pool: asyncpg.Pool,
    redis_url: str,
    arq_redis: ArqRedis,
) -> None:
    owner = make_person()
    schedule = await workers.create(owner.user_id, prompt="Hello from dev")
    redis = Redis.from_url(redis_url)
    resources = Resources(settings=worker_settings, pool=pool, agent=EchoAgent(), redis=redis)
    task = asyncio.create_task(worker_task(worker_settings, resources))
    try:
        slot = datetime.now(UTC).replace(microsecond=0)
        await arq_queue.enqueue_run(
            arq_redis, worker_settings.worker_queue, Slot(schedule.id, slot)
        )
        await _eventually(lambda: _run_finished(pool, schedule.id), "the run finished")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    [session] = await workers.sessions_of(schedule.agent_name)
    assert session["is_active"] is False
    assert [m[0] for m in await workers.messages_of(session["session_id"])] == ["human", "ai"]
    # Stopped cleanly: arq removes its health-check key on close; the shared pool still works.
    assert not await redis.exists(worker_settings.worker_queue + ":health-check")
    assert await pool.fetchval("SELECT 1") == 1
    await redis.aclose()


def _env(**values: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "JWT_SECRET"}
    }
    env.update(values)
    return env


async def test_unified_sessions_worker_command_runs_scheduled_runs(
    workers: Workers, database_url: str, redis_url: str, queue_name: str, arq_redis: ArqRedis
) -> None:
    owner = make_person()
    schedule = await workers.create(owner.user_id, prompt="From the worker process")
    process = subprocess.Popen(
        [COMMAND, "worker"],
        env=_env(DATABASE_URL=database_url, REDIS_URL=redis_url, WORKER_QUEUE=queue_name),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        slot = datetime.now(UTC).replace(microsecond=0)
        await arq_queue.enqueue_run(arq_redis, queue_name, Slot(schedule.id, slot))
        await _eventually(lambda: _run_finished(workers.pool, schedule.id), "the run finished")
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(process.communicate, timeout=WAIT)
    assert process.returncode == 0, output
    assert "execute_schedule_run" in output  # arq's own log of the job
    [run] = await workers.runs(schedule.id)
    assert run["status"] == "succeeded"
    [session] = await workers.sessions_of(schedule.agent_name)
    assert session["channel"] == "scheduled" and session["is_active"] is False


def test_worker_command_without_redis_says_what_is_missing(database_url: str) -> None:
    result = subprocess.run(
        [COMMAND, "worker"],
        env=_env(DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert result.returncode == 2
    assert "REDIS_URL is not set" in result.stderr
