"""upsertSession: the one session upsert, through GraphQL."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from tests.conftest import GraphQLClient, Person, make_person

UPSERT = """
mutation($input: UpsertSessionInput!) {
  upsertSession(input: $input) { id sessionId channel agentName isActive }
}
"""


async def _owner(pool: asyncpg.Pool, session_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT user_id, channel, agent_name, is_active FROM chat_sessions WHERE session_id = $1",
        session_id,
    )


async def test_a_person_creates_and_updates_a_web_session(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    created = await graphql.ok(UPSERT, {"input": {"agentName": "writer"}}, token=person.token)
    session = created["upsertSession"]
    assert session["channel"] == "WEB"
    assert session["agentName"] == "writer"
    assert session["isActive"] is True
    uuid.UUID(session["sessionId"])  # a generated id

    updated = await graphql.ok(
        UPSERT,
        {"input": {"sessionId": session["sessionId"], "isActive": False}},
        token=person.token,
    )
    assert updated["upsertSession"]["id"] == session["id"]
    assert updated["upsertSession"]["isActive"] is False
    assert updated["upsertSession"]["agentName"] == "writer"
    [row] = await _owner(pool, session["sessionId"])
    assert row["user_id"] == person.user_id


async def test_concurrent_upserts_never_duplicate(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    session_id = str(uuid.uuid4())  # a person may create only under a uuid id
    results = await asyncio.gather(
        *(
            graphql.ok(UPSERT, {"input": {"sessionId": session_id}}, token=person.token)
            for _ in range(20)
        )
    )
    assert len({r["upsertSession"]["id"] for r in results}) == 1
    assert len(await _owner(pool, session_id)) == 1


async def test_another_persons_session_id_is_refused_not_moved(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person, service: Person
) -> None:
    owner = make_person()
    session_id = str(uuid.uuid4())
    await graphql.ok(UPSERT, {"input": {"sessionId": session_id}}, token=owner.token)

    as_person = await graphql(UPSERT, {"input": {"sessionId": session_id}}, token=person.token)
    as_service = await graphql(
        UPSERT,
        {"input": {"sessionId": session_id, "userId": str(person.user_id)}},
        token=service.token,
    )

    # A person is told only what any id they may not create gets (test_upsert_session_ids.py).
    assert as_person.codes == ["BAD_USER_INPUT"]
    assert as_service.codes == ["FORBIDDEN"]
    [row] = await _owner(pool, session_id)
    assert row["user_id"] == owner.user_id


async def test_a_person_may_write_only_own_web_sessions(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    telegram = await graphql(UPSERT, {"input": {"channel": "TELEGRAM"}}, token=person.token)
    assert telegram.codes == ["FORBIDDEN"]
    for_someone_else = await graphql(
        UPSERT, {"input": {"userId": str(make_person().user_id)}}, token=person.token
    )
    assert for_someone_else.codes == ["FORBIDDEN"]
    same_user = await graphql(
        UPSERT, {"input": {"userId": str(person.user_id)}}, token=person.token
    )
    assert same_user.errors is None


async def test_the_service_writes_any_channel_for_any_person(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person, service: Person
) -> None:
    for channel in ("TELEGRAM", "SCHEDULED", "WEB"):
        data = await graphql.ok(
            UPSERT,
            {"input": {"channel": channel, "userId": str(person.user_id), "agentName": "bot"}},
            token=service.token,
        )
        [row] = await _owner(pool, data["upsertSession"]["sessionId"])
        assert row["user_id"] == person.user_id
        assert row["channel"] == channel.lower()
    listed = await graphql.ok("{ sessions { edges { node { channel } } } }", token=person.token)
    assert {e["node"]["channel"] for e in listed["sessions"]["edges"]} == {
        "WEB",
        "TELEGRAM",
        "SCHEDULED",
    }

    without_user = await graphql(UPSERT, {"input": {"channel": "TELEGRAM"}}, token=service.token)
    assert without_user.codes == ["BAD_USER_INPUT"]


async def test_a_session_keeps_its_channel(
    graphql: GraphQLClient, person: Person, service: Person
) -> None:
    session_id = str(uuid.uuid4())
    await graphql.ok(UPSERT, {"input": {"sessionId": session_id}}, token=person.token)
    moved = await graphql(
        UPSERT,
        {"input": {"sessionId": session_id, "channel": "TELEGRAM", "userId": str(person.user_id)}},
        token=service.token,
    )
    assert moved.codes == ["BAD_USER_INPUT"]
    assert moved.errors[0]["extensions"]["field"] == "channel"


async def test_upsert_validates_its_input(graphql: GraphQLClient, person: Person) -> None:
    for bad in ("", " spaced id", "x" * 200, "semi;colon", "../etc", "tg-1-2", "sched:x:1"):
        result = await graphql(UPSERT, {"input": {"sessionId": bad}}, token=person.token)
        assert result.codes == ["BAD_USER_INPUT"], bad
    long_name = await graphql(UPSERT, {"input": {"agentName": "a" * 101}}, token=person.token)
    assert long_name.codes == ["BAD_USER_INPUT"]
    anonymous = await graphql(UPSERT, {"input": {}})
    assert anonymous.codes == ["UNAUTHENTICATED"]
