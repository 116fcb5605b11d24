"""Issue 9 item 10, PostgreSQL side: a `unified-sessions worker` started while PostgreSQL is
down waits for it, and one that loses it meanwhile fails that job and carries on. A cluster of
this test's own (pgserver) is stopped and started; the shared server is never touched."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pgserver
import pytest
from arq.connections import ArqRedis

from graphql_api.core.db import create_pool
from graphql_api.core.migrate import migrate
from tests.conftest import make_person
from workers import arq_queue, schedules
from workers.schedules import ScheduleSpec, Slot

from .conftest import ScheduleIds
from .test_redis_outage import COMMAND, WAIT, _env


class PostgresCluster:
    """A pgserver cluster that can be stopped and started again at the same socket."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.server: pgserver.PostgresServer | None = None
        self.url = self.start()

    def start(self) -> str:
        self.server = pgserver.get_server(self.data_dir, cleanup_mode="stop")
        return self.server.get_uri()

    def stop(self) -> None:
        if self.server is not None:
            self.server.cleanup()
        self.server = None


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[PostgresCluster]:
    cluster = PostgresCluster(tmp_path / "pg")
    try:
        yield cluster
    finally:
        cluster.stop()


async def _eventually(check: Callable[[], Awaitable[bool] | bool], what: str) -> None:
    async def ready() -> bool:
        result = check()
        return await result if not isinstance(result, bool) else result

    try:
        async with asyncio.timeout(WAIT):
            while not await ready():
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"timed out waiting: {what}") from None


async def test_worker_waits_for_postgres_and_survives_losing_it(
    own_postgres: PostgresCluster,
    redis_url: str,
    queue_name: str,
    arq_redis: ArqRedis,
    schedule_ids: ScheduleIds,
    tmp_path: Path,
) -> None:
    await migrate(own_postgres.url)
    own_postgres.stop()
    queue = queue_name + ":pg-outage"  # the session's clean-up removes it with queue_name's keys
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [COMMAND, "worker"],
            env=_env(DATABASE_URL=own_postgres.url, REDIS_URL=redis_url, WORKER_QUEUE=queue),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        # Started while PostgreSQL is down: it says so and waits.
        await _eventually(lambda: "PostgreSQL is unreachable" in log.read_text(), "a log line")
        assert process.poll() is None, log.read_text()
        own_postgres.start()
        await _eventually(lambda: "Starting worker" in log.read_text(), "the worker started")

        # PostgreSQL goes away while the worker runs: the job fails, the process carries on.
        own_postgres.stop()
        lost = uuid.uuid4()
        await arq_queue.enqueue_run(arq_redis, queue, Slot(lost, datetime.now(UTC)))
        await _eventually(lambda: f"schedule:{lost}" in log.read_text(), "the job was tried")
        await _eventually(lambda: "is tried again" in log.read_text(), "the job's one log line")
        assert process.poll() is None, log.read_text()

        # PostgreSQL is back: the next run succeeds on the same worker.
        own_postgres.start()
        pool = await create_pool(own_postgres.url)
        try:
            owner = make_person()
            spec = ScheduleSpec(name="Back", prompt="Hello again", cron="0 0 1 1 *")
            schedule = await schedules.create_schedule(pool, owner.user_id, spec)
            schedule_ids.add(schedule.id)
            slot = datetime.now(UTC).replace(microsecond=0)
            await arq_queue.enqueue_run(arq_redis, queue, Slot(schedule.id, slot))

            async def succeeded() -> bool:
                status = await pool.fetchval(
                    "SELECT status FROM schedule_runs WHERE schedule_id = $1", schedule.id
                )
                return status == "succeeded"

            await _eventually(succeeded, "the run after the outage succeeded")
        finally:
            await pool.close()
        assert process.poll() is None, log.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, WAIT)
    assert process.returncode == 0, log.read_text()
