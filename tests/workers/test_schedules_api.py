"""Schedules through GraphQL: create, list, update, delete, runScheduleNow, and runs."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from strawberry.relay import to_base64

from tests.conftest import GraphQLClient, StatementLog, make_person

from .conftest import ProbeAgent, ScheduleIds, Workers

FIELDS = """id name prompt cron timezone agentName enabled nextRunAt lastRunAt lastOutcome
            lastError createdAt updatedAt"""
CREATE = f"""
mutation ($input: CreateScheduleInput!) {{ createSchedule(input: $input) {{ {FIELDS} }} }}
"""
UPDATE = f"""
mutation ($input: UpdateScheduleInput!) {{ updateSchedule(input: $input) {{ {FIELDS} }} }}
"""
RUN_NOW = """
mutation ($id: ID!) { runScheduleNow(id: $id) { slot sessionId queued schedule { id } } }
"""
DELETE = "mutation ($id: ID!) { deleteSchedule(id: $id) { deletedId } }"
ONE = f"query ($id: ID!) {{ schedule(id: $id) {{ {FIELDS} }} }}"
NODE = "query ($id: ID!) { node(id: $id) { id ... on Schedule { name } } }"
LIST = """
query ($first: Int, $after: String) {
  schedules(first: $first, after: $after) {
    edges { cursor node { id name } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}
"""
RUNS = """
query ($id: ID!, $first: Int, $after: String) {
  schedule(id: $id) {
    runs(first: $first, after: $after) {
      edges { cursor node { sessionId channel isActive agentName
        messages { edges { node { role content } } } } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""


async def _create(
    api: GraphQLClient, token: str, ids: ScheduleIds, **fields: object
) -> dict[str, object]:
    spec = {"name": "Morning brief", "prompt": "What is on today?", "cron": "0 0 1 1 *"}
    spec.update(fields)
    data = await api.ok(CREATE, {"input": spec}, token=token)
    schedule = data["createSchedule"]
    ids.add(_uuid(schedule["id"]))
    return schedule


def _uuid(global_id: str) -> uuid.UUID:
    from strawberry.relay import from_base64

    return uuid.UUID(from_base64(global_id)[1])


async def test_create_reads_cron_in_the_schedules_time_zone(
    schedules_api: GraphQLClient, schedule_ids: ScheduleIds
) -> None:
    owner = make_person()
    schedule = await _create(
        schedules_api,
        owner.token,
        schedule_ids,
        cron="30 9 * * *",
        timezone="Asia/Tokyo",
        agentName="briefing",
    )
    assert schedule["enabled"] is True and schedule["agentName"] == "briefing"
    assert schedule["lastRunAt"] is None and schedule["lastOutcome"] is None
    next_run = datetime.fromisoformat(schedule["nextRunAt"]).astimezone(UTC)
    assert (next_run.hour, next_run.minute) == (0, 30)  # 09:30 in Tokyo (UTC+9)
    assert next_run > datetime.now(UTC)

    default = await _create(schedules_api, owner.token, schedule_ids)
    assert default["timezone"] == "UTC" and default["agentName"] == "assistant"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * * * * *"}, "cron"),  # seconds are not a cron field here
        ({"cron": "0 0 30 2 *"}, "cron"),  # never matches a date
        ({"cron": "R * * * *"}, "cron"),
        ({"cron": ""}, "cron"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"timezone": ""}, "timezone"),  # absent means UTC; empty is a mistake
        ({"timezone": "localtime"}, "timezone"),  # the server's clock, not an IANA zone
        ({"timezone": "Factory"}, "timezone"),
        ({"agentName": ""}, "agentName"),  # absent or null means the default; empty is not
        ({"agentName": "   "}, "agentName"),
        ({"cron": "0 0 L * *"}, "cron"),
        ({"cron": "0 0 1W * *"}, "cron"),
        ({"cron": "0 0 * * 5#3"}, "cron"),
        ({"cron": "* * ? * *"}, "cron"),
        ({"cron": "1-0 * * * *"}, "cron"),
        ({"name": "  "}, "name"),
        ({"prompt": ""}, "prompt"),
    ],
)
async def test_invalid_input_is_rejected_naming_the_field(
    schedules_api: GraphQLClient, fields: dict[str, str], field: str, pool: asyncpg.Pool
) -> None:
    owner = make_person()
    spec = {"name": "x", "prompt": "y", "cron": "0 9 * * *", **fields}
    result = await schedules_api(CREATE, {"input": spec}, token=owner.token)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.errors is not None and result.errors[0]["extensions"]["field"] == field
    assert (
        await pool.fetchval("SELECT count(*) FROM schedules WHERE user_id = $1", owner.user_id) == 0
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "a\u0000"),
        ("prompt", "say \u0000 hi"),
        ("agentName", "\u0000agent"),
        ("cron", "0 9 * * *\u0000"),
        ("timezone", "UTC\u0000"),
        ("timezone", ""),
        ("timezone", "localtime"),
        ("agentName", ""),
        ("cron", "0 0 L * *"),
        ("cron", "60 * * * *"),
        ("cron", "5/15 * * * *"),
    ],
)
async def test_create_and_update_refuse_the_same_values(
    schedules_api: GraphQLClient, schedule_ids: ScheduleIds, field: str, value: str
) -> None:
    owner = make_person()
    spec = {"name": "x", "prompt": "y", "cron": "0 9 * * *", field: value}
    created = await schedules_api(CREATE, {"input": spec}, token=owner.token)
    schedule = await _create(schedules_api, owner.token, schedule_ids)
    updated = await schedules_api(
        UPDATE, {"input": {"id": schedule["id"], field: value}}, token=owner.token
    )
    for result in (created, updated):
        assert result.codes == ["BAD_USER_INPUT"]
        assert result.errors is not None and result.errors[0]["extensions"]["field"] == field
    assert created.errors[0]["message"] == updated.errors[0]["message"]
    if "\x00" in value:  # PostgreSQL text cannot hold NUL: said plainly, not a masked error
        assert created.errors[0]["message"] == f"{field} must not contain NUL characters"


async def test_null_agent_name_means_the_default(
    schedules_api: GraphQLClient, schedule_ids: ScheduleIds
) -> None:
    owner = make_person()
    schedule = await _create(schedules_api, owner.token, schedule_ids, agentName=None)
    assert schedule["agentName"] == "assistant" and schedule["timezone"] == "UTC"


async def test_update_rejects_invalid_cron_and_time_zone(
    schedules_api: GraphQLClient, schedule_ids: ScheduleIds
) -> None:
    owner = make_person()
    schedule = await _create(schedules_api, owner.token, schedule_ids)
    for change, field in [({"cron": "every day"}, "cron"), ({"timezone": "Nowhere"}, "timezone")]:
        result = await schedules_api(
            UPDATE, {"input": {"id": schedule["id"], **change}}, token=owner.token
        )
        assert result.codes == ["BAD_USER_INPUT"]
        assert result.errors is not None and result.errors[0]["extensions"]["field"] == field
    data = await schedules_api.ok(ONE, {"id": schedule["id"]}, token=owner.token)
    assert data["schedule"]["cron"] == schedule["cron"]


async def test_update_disable_and_enable(
    schedules_api: GraphQLClient, schedule_ids: ScheduleIds
) -> None:
    owner = make_person()
    schedule = await _create(schedules_api, owner.token, schedule_ids)

    data = await schedules_api.ok(
        UPDATE, {"input": {"id": schedule["id"], "enabled": False}}, token=owner.token
    )
    assert data["updateSchedule"]["enabled"] is False
    assert data["updateSchedule"]["nextRunAt"] is None

    data = await schedules_api.ok(
        UPDATE,
        {
            "input": {
                "id": schedule["id"],
                "enabled": True,
                "cron": "0 18 * * FRI",
                "timezone": "America/New_York",
                "name": "Weekly wrap-up",
                "prompt": "Summarise the week",
            }
        },
        token=owner.token,
    )
    updated = data["updateSchedule"]
    assert updated["enabled"] is True and updated["name"] == "Weekly wrap-up"
    assert updated["prompt"] == "Summarise the week"
    next_run = datetime.fromisoformat(updated["nextRunAt"])
    local = next_run.astimezone(__import__("zoneinfo").ZoneInfo("America/New_York"))
    assert (local.weekday(), local.hour, local.minute) == (4, 18, 0)


async def test_schedules_are_listed_newest_first_with_cursors(
    schedules_api: GraphQLClient, schedule_ids: ScheduleIds
) -> None:
    owner = make_person()
    made = [await _create(schedules_api, owner.token, schedule_ids, name=f"s{i}") for i in range(3)]

    page = (await schedules_api.ok(LIST, {"first": 2}, token=owner.token))["schedules"]
    assert [e["node"]["name"] for e in page["edges"]] == ["s2", "s1"]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = await schedules_api.ok(
        LIST, {"first": 2, "after": page["pageInfo"]["endCursor"]}, token=owner.token
    )
    rest = rest["schedules"]
    assert [e["node"]["id"] for e in rest["edges"]] == [made[0]["id"]]
    assert rest["pageInfo"] == {
        "hasNextPage": False,
        "hasPreviousPage": True,
        "endCursor": rest["edges"][0]["cursor"],
    }
    out_of_range = base64.urlsafe_b64encode(
        f"c1:0001-01-01T00:00:00+14:00|{uuid.uuid4()}".encode()
    ).decode()
    for bad in [
        {"first": 0},
        {"first": 101},
        {"after": "not-a-cursor"},
        {"after": "czE6eHx5"},
        {"after": out_of_range},
    ]:
        result = await schedules_api(LIST, bad, token=owner.token)
        assert result.codes == ["BAD_USER_INPUT"], bad
    assert (await schedules_api(LIST, {})).codes == ["UNAUTHENTICATED"]


async def test_another_persons_schedule_is_indistinguishable_from_a_missing_one(
    schedules_api: GraphQLClient, schedule_ids: ScheduleIds
) -> None:
    owner, other = make_person(), make_person()
    schedule = await _create(schedules_api, owner.token, schedule_ids)
    missing = to_base64("Schedule", str(uuid.uuid4()))

    assert (await schedules_api.ok(LIST, {}, token=other.token))["schedules"]["edges"] == []
    for query in (ONE, NODE):
        for target in (schedule["id"], missing):
            data = await schedules_api.ok(query, {"id": target}, token=other.token)
            assert next(iter(data.values())) is None
    for document, variables in [
        (UPDATE, {"input": {"id": "{id}", "name": "mine now"}}),
        (DELETE, {"id": "{id}"}),
        (RUN_NOW, {"id": "{id}"}),
    ]:
        answers = []
        for target in (schedule["id"], missing):
            filled = _fill(variables, target)
            result = await schedules_api(document, filled, token=other.token)
            answers.append((result.codes, [e["message"] for e in result.errors or []]))
        assert answers[0] == answers[1] == (["NOT_FOUND"], ["no such schedule"])

    data = await schedules_api.ok(ONE, {"id": schedule["id"]}, token=owner.token)
    assert data["schedule"]["name"] == schedule["name"]  # untouched
    data = await schedules_api.ok(NODE, {"id": schedule["id"]}, token=owner.token)
    assert data["node"] == {"id": schedule["id"], "name": schedule["name"]}


def _fill(variables: dict[str, object], target: str) -> dict[str, object]:
    return {
        k: (_fill(v, target) if isinstance(v, dict) else target if v == "{id}" else v)  # type: ignore[arg-type]
        for k, v in variables.items()
    }


async def test_delete_schedule_keeps_the_sessions_it_created(
    schedules_api: GraphQLClient, schedule_ids: ScheduleIds, workers: Workers, pool: asyncpg.Pool
) -> None:
    owner = make_person()
    schedule = await _create(schedules_api, owner.token, schedule_ids, agentName="to-delete")
    run = (await schedules_api.ok(RUN_NOW, {"id": schedule["id"]}, token=owner.token))[
        "runScheduleNow"
    ]
    await workers.burst(ProbeAgent(pool), claim=False)

    data = await schedules_api.ok(DELETE, {"id": schedule["id"]}, token=owner.token)
    assert data["deleteSchedule"]["deletedId"] == schedule["id"]
    assert (await schedules_api.ok(ONE, {"id": schedule["id"]}, token=owner.token))[
        "schedule"
    ] is None
    session = await schedules_api.ok(
        "query ($s: String!) { session(sessionId: $s) { channel } }",
        {"s": run["sessionId"]},
        token=owner.token,
    )
    assert session["session"] == {"channel": "SCHEDULED"}
    assert (await schedules_api(DELETE, {"id": schedule["id"]}, token=owner.token)).codes == [
        "NOT_FOUND"
    ]


async def test_run_schedule_now_names_an_appending_schedules_one_session(
    schedules_api: GraphQLClient, schedule_ids: ScheduleIds, workers: Workers, pool: asyncpg.Pool
) -> None:
    owner = make_person()
    schedule = await _create(schedules_api, owner.token, schedule_ids, sessionMode="APPEND")
    queued = (await schedules_api.ok(RUN_NOW, {"id": schedule["id"]}, token=owner.token))[
        "runScheduleNow"
    ]
    await workers.burst(ProbeAgent(pool), claim=False)

    session = await schedules_api.ok(
        "query ($s: String!) { session(sessionId: $s) { channel } }",
        {"s": queued["sessionId"]},
        token=owner.token,
    )
    assert session["session"] == {"channel": "SCHEDULED"}


async def test_run_schedule_now_makes_a_run_appear(
    schedules_api: GraphQLClient, schedule_ids: ScheduleIds, workers: Workers, pool: asyncpg.Pool
) -> None:
    owner = make_person()
    schedule = await _create(
        schedules_api, owner.token, schedule_ids, prompt="Ping", agentName="run-now"
    )
    empty = await schedules_api.ok(RUNS, {"id": schedule["id"]}, token=owner.token)
    assert empty["schedule"]["runs"]["edges"] == []

    data = await schedules_api.ok(RUN_NOW, {"id": schedule["id"]}, token=owner.token)
    queued = data["runScheduleNow"]
    assert queued["queued"] is True and queued["schedule"]["id"] == schedule["id"]
    await workers.burst(ProbeAgent(pool), claim=False)

    data = await schedules_api.ok(RUNS, {"id": schedule["id"]}, token=owner.token)
    [edge] = data["schedule"]["runs"]["edges"]
    assert edge["node"]["sessionId"] == queued["sessionId"]
    assert edge["node"]["channel"] == "SCHEDULED" and edge["node"]["isActive"] is False
    assert edge["node"]["agentName"] == "run-now"
    assert [m["node"]["content"] for m in edge["node"]["messages"]["edges"]] == [
        "Ping",
        "Done: Ping",
    ]
    one = (await schedules_api.ok(ONE, {"id": schedule["id"]}, token=owner.token))["schedule"]
    assert one["lastOutcome"] == "SUCCEEDED"
    assert datetime.fromisoformat(one["lastRunAt"]) == datetime.fromisoformat(queued["slot"])


async def test_runs_are_paged_newest_first_with_one_query_for_all_schedules(
    schedules_api: GraphQLClient,
    schedule_ids: ScheduleIds,
    workers: Workers,
    pool: asyncpg.Pool,
    arq_redis,
    statement_log: StatementLog,
) -> None:
    from workers import arq_queue
    from workers.schedules import Slot, slot_token

    owner = make_person()
    made = [await _create(schedules_api, owner.token, schedule_ids) for _ in range(3)]
    slots = [datetime(2025, 1, day, 9, 0, tzinfo=UTC) for day in (6, 7, 8)]
    for schedule in made:
        for slot in slots:
            await arq_queue.enqueue_run(
                arq_redis, workers.settings.worker_queue, Slot(_uuid(schedule["id"]), slot)
            )
    await workers.burst(ProbeAgent(pool), claim=False)

    target = made[0]["id"]
    page = (await schedules_api.ok(RUNS, {"id": target, "first": 2}, token=owner.token))[
        "schedule"
    ]["runs"]
    tokens = [slot_token(s) for s in slots]
    assert [e["node"]["sessionId"].rsplit(":", 1)[1] for e in page["edges"]] == [
        tokens[2],
        tokens[1],
    ]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = (
        await schedules_api.ok(
            RUNS,
            {"id": target, "first": 2, "after": page["pageInfo"]["endCursor"]},
            token=owner.token,
        )
    )["schedule"]["runs"]
    assert [e["node"]["sessionId"].rsplit(":", 1)[1] for e in rest["edges"]] == [tokens[0]]
    assert rest["pageInfo"]["hasNextPage"] is False
    bad = await schedules_api(RUNS, {"id": target, "after": "garbage"}, token=owner.token)
    assert bad.codes == ["BAD_USER_INPUT"]

    with statement_log.counting() as seen:
        data = await schedules_api.ok(
            "query { schedules { edges { node { runs(first: 5) { edges { node { sessionId } } } }"
            " } } }",
            token=owner.token,
        )
    assert [len(e["node"]["runs"]["edges"]) for e in data["schedules"]["edges"]] == [3, 3, 3]
    assert len([sql for sql, _ in seen if "schedule_runs" in sql]) == 1  # a DataLoader, not N+1
