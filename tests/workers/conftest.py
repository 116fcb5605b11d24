"""Scheduled-channel fixtures: a queue of this run's own on the real Redis, real arq workers in
burst mode, agents that are real plug-ins, and an API server that enqueues onto that queue."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from arq.connections import ArqRedis
from arq.worker import Worker
from redis.asyncio import Redis

from graphql_api.app import create_app
from graphql_api.core.agent import Agent, ChatTurn, EchoAgent, OpenAICompatibleAgent
from graphql_api.core.embedded import free_port
from graphql_api.core.runtime import Resources
from graphql_api.core.settings import Settings
from tests.conftest import GraphQLClient, running_server
from workers import schedules
from workers.main import build_worker
from workers.schedules import ScheduleRow, ScheduleSpec


class ScheduleIds(set[uuid.UUID]):
    """Every schedule this run creates: its arq keys are deleted at the end of the run."""


@pytest.fixture(scope="session")
def schedule_ids() -> ScheduleIds:
    return ScheduleIds()


@pytest.fixture(scope="session")
async def queue_name(redis_url: str, schedule_ids: ScheduleIds) -> AsyncIterator[str]:
    """This run's own arq queue, so runs sharing one Redis never take each other's jobs."""
    name = "us-test-queue:" + secrets.token_hex(6)
    yield name
    redis = Redis.from_url(redis_url)
    try:
        marks = [name, *(str(i) for i in schedule_ids)]
        doomed = [key async for key in redis.scan_iter(match="arq:*", count=1000)]
        doomed = [key for key in doomed if any(mark in key.decode() for mark in marks)]
        await redis.delete(name, *doomed)
    finally:
        await redis.aclose()


@pytest.fixture(scope="session")
def worker_settings(settings: Settings, queue_name: str) -> Settings:
    """Two tries per run, retried at once: failure paths finish in one burst."""
    return replace(
        settings,
        worker_queue=queue_name,
        schedule_max_attempts=2,
        schedule_retry_delay=0.0,
        agent_timeout=10.0,
    )


@pytest.fixture(scope="session")
async def arq_redis(redis_url: str) -> AsyncIterator[ArqRedis]:
    redis = Redis.from_url(redis_url)
    yield ArqRedis(redis.connection_pool)
    await redis.aclose()


@pytest.fixture(scope="session")
async def schedules_api(
    worker_settings: Settings, pool: asyncpg.Pool, redis_url: str
) -> AsyncIterator[GraphQLClient]:
    """The API on this run's queue, so runScheduleNow lands where the test workers look."""
    redis = Redis.from_url(redis_url)
    resources = Resources(settings=worker_settings, pool=pool, agent=EchoAgent(), redis=redis)
    async with running_server(create_app(worker_settings, resources)) as url:
        yield GraphQLClient(url)
    await redis.aclose()


# --- agents: real implementations of the Agent protocol -------------------------------------


@dataclass
class ProbeAgent:
    """Answers like a model would, and looks at its own session in the database while it runs:
    proof of what the registry shows during the turn."""

    pool: asyncpg.Pool
    calls: list[str] = field(default_factory=list)
    active_during_turn: list[bool] = field(default_factory=list)

    async def reply(self, history: Sequence[ChatTurn], message: str, *, agent_name: str) -> str:
        self.calls.append(agent_name)
        rows = await self.pool.fetch(
            "SELECT is_active FROM chat_sessions WHERE agent_name = $1 AND channel = 'scheduled' "
            "AND NOT EXISTS (SELECT 1 FROM chat_message_history h "
            "WHERE h.session_id = chat_sessions.session_id AND h.message->>'type' = 'ai')",
            agent_name,
        )
        self.active_during_turn.extend(r["is_active"] for r in rows)
        return f"Done: {message}"

    async def aclose(self) -> None:
        return None


def unreachable_agent() -> Agent:
    """The OpenAI-compatible client pointed at a loopback port nobody listens on."""
    return OpenAICompatibleAgent(
        base_url=f"http://127.0.0.1:{free_port()}/v1", model="none", api_key=None, timeout=5
    )


# --- helpers --------------------------------------------------------------------------------


@dataclass
class Workers:
    settings: Settings
    pool: asyncpg.Pool
    ids: ScheduleIds

    def build(self, agent: Agent, *, claim: bool = True) -> Worker:
        resources = Resources(settings=self.settings, pool=self.pool, agent=agent)
        return build_worker(
            self.settings,
            resources,
            burst=True,
            claim_at_startup=claim,
            handle_signals=False,
            poll_delay=0.05,
        )

    async def burst(self, agent: Agent, *, claim: bool = True) -> Worker:
        """Run one worker until its queue is empty: claims due schedules first when `claim`."""
        worker = self.build(agent, claim=claim)
        try:
            await worker.async_run()
        finally:
            await worker.close()
        return worker

    async def create(
        self,
        owner: uuid.UUID,
        *,
        cron: str = "0 0 1 1 *",  # yearly: never due by itself while the tests run
        timezone: str = "UTC",
        prompt: str = "Summarise my day",
        agent_name: str | None = None,
    ) -> ScheduleRow:
        row = await schedules.create_schedule(
            self.pool,
            owner,
            ScheduleSpec(
                name="Daily summary",
                prompt=prompt,
                cron=cron,
                timezone=timezone,
                agent_name=agent_name or "agent-" + secrets.token_hex(4),
            ),
        )
        self.ids.add(row.id)
        return row

    async def make_due(self, schedule_id: uuid.UUID, ago: timedelta = timedelta(minutes=5)) -> None:
        """Set the next run into the past, as if its slot came while no worker ran."""
        await self.pool.execute(
            "UPDATE schedules SET next_run_at = $2 WHERE id = $1",
            schedule_id,
            datetime.now(UTC) - ago,
        )

    async def runs(self, schedule_id: uuid.UUID) -> list[Any]:
        return await self.pool.fetch(
            "SELECT * FROM schedule_runs WHERE schedule_id = $1 ORDER BY slot", schedule_id
        )

    async def sessions_of(self, agent_name: str) -> list[Any]:
        return await self.pool.fetch(
            "SELECT * FROM chat_sessions WHERE agent_name = $1 ORDER BY created_at", agent_name
        )

    async def messages_of(self, session_id: str) -> list[tuple[str, str]]:
        rows = await self.pool.fetch(
            "SELECT message FROM chat_message_history WHERE session_id = $1 ORDER BY id",
            session_id,
        )
        return [(r["message"]["type"], r["message"]["data"]["content"]) for r in rows]


@pytest.fixture
def workers(worker_settings: Settings, pool: asyncpg.Pool, schedule_ids: ScheduleIds) -> Workers:
    return Workers(worker_settings, pool, schedule_ids)
