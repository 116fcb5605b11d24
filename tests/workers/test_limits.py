"""Cost caps: schedules per person, and one open run per schedule for runScheduleNow."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from graphql_api.core.errors import BadInput
from tests.conftest import GraphQLClient, make_person
from workers import runs as schedule_runs
from workers import schedules
from workers.schedules import MAX_SCHEDULES_PER_PERSON, ScheduleRow, ScheduleSpec, Slot

from .conftest import ProbeAgent, ScheduleIds, Workers
from .test_schedules_api import CREATE, DELETE, RUN_NOW, _create

SPEC = {"name": "Morning brief", "prompt": "What is on today?", "cron": "* * * * *"}


async def _count(pool: asyncpg.Pool, owner: uuid.UUID) -> int:
    return await pool.fetchval("SELECT count(*) FROM schedules WHERE user_id = $1", owner)


async def test_a_person_has_at_most_fifty_schedules(
    schedules_api: GraphQLClient, schedule_ids: ScheduleIds, workers: Workers, pool: asyncpg.Pool
) -> None:
    assert MAX_SCHEDULES_PER_PERSON == 50
    owner, other = make_person(), make_person()
    for _ in range(MAX_SCHEDULES_PER_PERSON - 1):
        await workers.create(owner.user_id)
    fiftieth = await _create(schedules_api, owner.token, schedule_ids)

    result = await schedules_api(CREATE, {"input": SPEC}, token=owner.token)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.errors is not None
    assert result.errors[0]["message"] == (
        "you already have 50 schedules, the most a person can have; delete one to create another"
    )
    assert await _count(pool, owner.user_id) == MAX_SCHEDULES_PER_PERSON
    await _create(schedules_api, other.token, schedule_ids)  # the cap is per person

    await schedules_api.ok(DELETE, {"id": fiftieth["id"]}, token=owner.token)
    await _create(schedules_api, owner.token, schedule_ids)  # room again
    assert await _count(pool, owner.user_id) == MAX_SCHEDULES_PER_PERSON


async def test_concurrent_creates_cannot_pass_the_cap_together(
    pool: asyncpg.Pool, schedule_ids: ScheduleIds
) -> None:
    owner = uuid.uuid4()

    async def create() -> ScheduleRow:
        row = await schedules.create_schedule(
            pool, owner, ScheduleSpec(name="n", prompt="p", cron="0 0 1 1 *"), limit=5
        )
        schedule_ids.add(row.id)
        return row

    for _ in range(3):
        await create()
    results = await asyncio.gather(*(create() for _ in range(6)), return_exceptions=True)

    assert sum(isinstance(r, ScheduleRow) for r in results) == 2
    assert all(isinstance(r, BadInput) for r in results if not isinstance(r, ScheduleRow))
    assert await _count(pool, owner) == 5


async def test_run_schedule_now_is_refused_while_its_run_is_open(
    schedules_api: GraphQLClient, schedule_ids: ScheduleIds, workers: Workers, pool: asyncpg.Pool
) -> None:
    owner = make_person()
    schedule = await _create(schedules_api, owner.token, schedule_ids, agentName="now-once")
    first = (await schedules_api.ok(RUN_NOW, {"id": schedule["id"]}, token=owner.token))[
        "runScheduleNow"
    ]
    assert first["queued"] is True

    again = await schedules_api(RUN_NOW, {"id": schedule["id"]}, token=owner.token)
    assert again.codes == ["BAD_USER_INPUT"] and again.errors is not None
    assert again.errors[0]["extensions"]["field"] == "id"
    assert "already has a run queued or running" in again.errors[0]["message"]

    agent = ProbeAgent(pool)
    await workers.burst(agent, claim=False)
    assert agent.calls.count("now-once") == 1
    [run] = await workers.runs(_uuid(schedule["id"]))
    assert run["status"] == "succeeded"

    # Finished: another run may be queued (unless it is still the same second, which ran).
    third = (await schedules_api.ok(RUN_NOW, {"id": schedule["id"]}, token=owner.token))[
        "runScheduleNow"
    ]
    assert third["queued"] is (third["slot"] != first["slot"])
    await workers.burst(agent, claim=False)
    assert agent.calls.count("now-once") == 1 + third["queued"]


async def test_concurrent_run_schedule_now_queues_one_run(
    schedules_api: GraphQLClient, schedule_ids: ScheduleIds, workers: Workers, pool: asyncpg.Pool
) -> None:
    owner = make_person()
    schedule = await _create(schedules_api, owner.token, schedule_ids, agentName="now-race")

    results = await asyncio.gather(
        *(schedules_api(RUN_NOW, {"id": schedule["id"]}, token=owner.token) for _ in range(6))
    )

    assert sorted(r.codes for r in results) == [[]] + [["BAD_USER_INPUT"]] * 5
    agent = ProbeAgent(pool)
    await workers.burst(agent, claim=False)
    assert agent.calls.count("now-race") == 1
    assert len(await workers.runs(_uuid(schedule["id"]))) == 1


async def test_a_claimed_slot_counts_as_an_open_run(
    schedules_api: GraphQLClient, schedule_ids: ScheduleIds, workers: Workers, pool: asyncpg.Pool
) -> None:
    owner = make_person()
    schedule = await _create(schedules_api, owner.token, schedule_ids, agentName="claimed")
    schedule_id = _uuid(schedule["id"])
    await workers.make_due(schedule_id)
    lost: list[Slot] = []

    async def lose(due: Slot) -> None:  # a claim whose queue then loses the job
        lost.append(due)

    await schedule_runs.claim_due(pool, lose)
    assert schedule_id in {due.schedule_id for due in lost}
    refused = await schedules_api(RUN_NOW, {"id": schedule["id"]}, token=owner.token)
    assert refused.codes == ["BAD_USER_INPUT"]

    # The open run is not stuck: the next claim re-queues it, and then runScheduleNow works.
    agent = ProbeAgent(pool)
    await workers.burst(agent, claim=True)
    assert agent.calls.count("claimed") == 1
    data = await schedules_api.ok(RUN_NOW, {"id": schedule["id"]}, token=owner.token)
    assert data["runScheduleNow"]["queued"] is True
    # Leave no open run behind: a later test's claiming worker would run it (and its agent see
    # it). Deleting the schedule deletes its run rows; the queued job then finds it gone.
    assert await schedules.delete_schedule(pool, owner.user_id, schedule_id)


async def test_a_queue_failure_leaves_no_open_run(
    workers: Workers, pool: asyncpg.Pool, schedule_ids: ScheduleIds
) -> None:
    owner = make_person()
    schedule = await workers.create(owner.user_id)

    async def broken(due: Slot) -> None:
        raise ConnectionError("redis is down")

    with pytest.raises(ConnectionError):
        await schedule_runs.queue_run_now(pool, owner.user_id, schedule.id, broken)
    assert await workers.runs(schedule.id) == []

    queued: list[Slot] = []

    async def collect(due: Slot) -> None:
        queued.append(due)

    run = await schedule_runs.queue_run_now(pool, owner.user_id, schedule.id, collect)
    assert run is not None and run.queued and [d.schedule_id for d in queued] == [schedule.id]
    stranger = await schedule_runs.queue_run_now(pool, uuid.uuid4(), schedule.id, collect)
    assert stranger is None and len(queued) == 1
    # The run "queued" above never reached a queue: leave no open run for a later claim.
    assert await schedules.delete_schedule(pool, owner.user_id, schedule.id)


def _uuid(global_id: str) -> uuid.UUID:
    from strawberry.relay import from_base64

    return uuid.UUID(from_base64(global_id)[1])
