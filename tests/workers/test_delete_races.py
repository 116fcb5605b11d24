"""An appending schedule's session deleted on the web while a run begins or finishes.

A deletion takes the session row, then (its trigger) the schedule's row, then the runs naming
the session. A run that took them in another order would wait on the deletion while the
deletion waited on it, until PostgreSQL's deadlock detector failed one of the two. A third
connection holds a row so that the two queue in the worst order every time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg

from graphql_api.core.agent import ChatTurn, EchoAgent
from tests.conftest import GraphQLClient, Person, make_person
from tests.locks import row_held, until_waiting
from workers.schedules import ScheduleRow

from .conftest import Workers

DELETE = "mutation ($id: String!) { deleteSession(input: {sessionId: $id}) { deletedSessionId } }"


@dataclass
class HeldAgent:
    """Replies once the test lets it: a run's turn kept in flight."""

    replying: asyncio.Event = field(default_factory=asyncio.Event)
    go: asyncio.Event = field(default_factory=asyncio.Event)

    async def reply(self, history: Sequence[ChatTurn], message: str, *, agent_name: str) -> str:
        self.replying.set()
        await self.go.wait()
        return f"Done: {message}"

    async def aclose(self) -> None:
        return None


async def _appending_schedule(workers: Workers, pool: asyncpg.Pool, owner: Person) -> ScheduleRow:
    schedule = await workers.create(owner.user_id, prompt="Daily digest")
    await pool.execute("UPDATE schedules SET session_mode = 'append' WHERE id = $1", schedule.id)
    await workers.make_due(schedule.id, timedelta(hours=2))
    return schedule


async def test_a_run_beginning_as_its_session_is_deleted_goes_to_the_next_one(
    workers: Workers, pool: asyncpg.Pool, schedules_api: GraphQLClient
) -> None:
    owner = make_person()
    schedule = await _appending_schedule(workers, pool, owner)
    await workers.burst(EchoAgent())
    first, fresh = f"sched:{schedule.id}", f"sched:{schedule.id}.1"
    # Another yearly slot (2 January rather than 1 January): the next run is a new slot.
    await pool.execute("UPDATE schedules SET cron = '0 0 2 1 *' WHERE id = $1", schedule.id)
    await workers.make_due(schedule.id)

    async with row_held(pool, "chat_sessions", "session_id = $1", first):
        deleting = asyncio.ensure_future(schedules_api.ok(DELETE, {"id": first}, token=owner.token))
        await until_waiting(pool, 1)
        running = asyncio.ensure_future(workers.burst(EchoAgent()))
        await until_waiting(pool, 2)
    deleted, _ = await asyncio.gather(deleting, running)

    assert deleted["deleteSession"] == {"deletedSessionId": first}
    [prompt, reply] = await workers.messages_of(fresh)
    assert prompt == ("human", "Daily digest")
    assert reply[1].endswith("(message 1 in this session)")
    runs = await workers.runs(schedule.id)
    assert [(r["status"], r["session_id"]) for r in runs] == [
        ("succeeded", None),
        ("succeeded", fresh),
    ]


async def test_a_run_finishing_as_its_session_is_deleted_is_recorded(
    workers: Workers, pool: asyncpg.Pool, schedules_api: GraphQLClient
) -> None:
    owner = make_person()
    schedule = await _appending_schedule(workers, pool, owner)
    first = f"sched:{schedule.id}"
    agent = HeldAgent()
    running = asyncio.ensure_future(workers.burst(agent))
    await asyncio.wait_for(agent.replying.wait(), 30)

    async with row_held(pool, "schedule_runs", "schedule_id = $1", schedule.id):
        agent.go.set()
        await until_waiting(pool, 1)  # the run, finishing
        deleting = asyncio.ensure_future(schedules_api.ok(DELETE, {"id": first}, token=owner.token))
        await until_waiting(pool, 2)
    deleted, _ = await asyncio.gather(deleting, running)

    assert deleted["deleteSession"] == {"deletedSessionId": first}
    [run] = await workers.runs(schedule.id)
    assert (run["status"], run["session_id"]) == ("succeeded", None)
    recorded = await pool.fetchrow(
        "SELECT last_outcome, append_generation FROM schedules WHERE id = $1", schedule.id
    )
    assert (recorded["last_outcome"], recorded["append_generation"]) == ("succeeded", 1)
