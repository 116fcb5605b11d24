"""Schedule and run cursors are accepted only by the list that issued them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
from arq.connections import ArqRedis
from strawberry.relay import from_base64

from tests.conftest import GraphQLClient, GraphQLResult, make_person
from workers import arq_queue
from workers.schedules import Slot

from .conftest import ProbeAgent, ScheduleIds, Workers

CREATE = "mutation ($input: CreateScheduleInput!) { createSchedule(input: $input) { id } }"
LIST = """
query ($first: Int, $after: String) {
  schedules(first: $first, after: $after) {
    edges { node { id } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
RUNS = """
query ($id: ID!, $first: Int, $after: String) {
  schedule(id: $id) {
    runs(first: $first, after: $after) {
      edges { node { sessionId } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""


def _refused(result: GraphQLResult) -> None:
    assert result.codes == ["BAD_USER_INPUT"], result
    assert result.errors is not None
    assert result.errors[0]["message"] == "after is not a valid cursor"
    assert result.errors[0]["extensions"]["field"] == "after"


async def _create(api: GraphQLClient, token: str, ids: ScheduleIds) -> str:
    spec = {"name": "Brief", "prompt": "What is on?", "cron": "0 0 1 1 *"}
    global_id = (await api.ok(CREATE, {"input": spec}, token=token))["createSchedule"]["id"]
    ids.add(uuid.UUID(from_base64(global_id)[1]))
    return global_id


async def test_a_schedules_cursor_works_only_for_its_own_person(
    schedules_api: GraphQLClient, schedule_ids: ScheduleIds
) -> None:
    owner, other = make_person(), make_person()
    for _ in range(2):
        await _create(schedules_api, owner.token, schedule_ids)
    await _create(schedules_api, other.token, schedule_ids)
    cursor = (await schedules_api.ok(LIST, {"first": 1}, token=owner.token))["schedules"][
        "pageInfo"
    ]["endCursor"]

    _refused(await schedules_api(LIST, {"first": 1, "after": cursor}, token=other.token))
    rest = await schedules_api.ok(LIST, {"first": 1, "after": cursor}, token=owner.token)
    assert len(rest["schedules"]["edges"]) == 1


async def test_a_runs_cursor_works_only_for_its_own_schedule(
    schedules_api: GraphQLClient,
    schedule_ids: ScheduleIds,
    workers: Workers,
    pool: asyncpg.Pool,
    arq_redis: ArqRedis,
) -> None:
    owner = make_person()
    made = [await _create(schedules_api, owner.token, schedule_ids) for _ in range(2)]
    slots = [datetime(2025, 2, day, 9, 0, tzinfo=UTC) for day in (3, 4)]
    for global_id in made:
        for slot in slots:
            await arq_queue.enqueue_run(
                arq_redis,
                workers.settings.worker_queue,
                Slot(uuid.UUID(from_base64(global_id)[1]), slot),
            )
    await workers.burst(ProbeAgent(pool), claim=False)
    first, second = made
    page = (await schedules_api.ok(RUNS, {"id": first, "first": 1}, token=owner.token))["schedule"][
        "runs"
    ]
    cursor = page["pageInfo"]["endCursor"]

    _refused(await schedules_api(RUNS, {"id": second, "after": cursor}, token=owner.token))
    rest = (await schedules_api.ok(RUNS, {"id": first, "after": cursor}, token=owner.token))[
        "schedule"
    ]["runs"]
    assert len(rest["edges"]) == 1
    assert rest["edges"][0]["node"]["sessionId"] != page["edges"][0]["node"]["sessionId"]
