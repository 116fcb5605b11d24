"""upsertSession as a person: new ids are uuids, and a refusal tells a guess nothing."""

from __future__ import annotations

import uuid

import asyncpg

from bots.channel import TELEGRAM
from tests.conftest import GraphQLClient, Person, make_person
from tests.graphql_api.seed import make_session

UPSERT = """
mutation($input: UpsertSessionInput!) {
  upsertSession(input: $input) { sessionId channel agentName }
}
"""
REFUSAL = {
    "message": "a new session's id must be a uuid",
    "locations": [{"line": 2, "column": 3}],
    "path": ["upsertSession"],
    "extensions": {"code": "BAD_USER_INPUT", "field": "sessionId"},
}


async def _owners(pool: asyncpg.Pool, session_id: str) -> list[uuid.UUID]:
    rows = await pool.fetch("SELECT user_id FROM chat_sessions WHERE session_id = $1", session_id)
    return [r["user_id"] for r in rows]


async def test_session_id_refusals_do_not_depend_on_whether_the_id_exists(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    owner = make_person()
    taken_name = (await make_session(pool, owner.user_id)).session_id  # "test-<uuid>"
    taken_uuid = str(uuid.uuid4())
    await graphql.ok(UPSERT, {"input": {"sessionId": taken_uuid}}, token=owner.token)

    attempts = {
        "free name": f"notes-{uuid.uuid4()}",
        "someone else's name": taken_name,
        "someone else's uuid": taken_uuid,
        "a uuid not in its canonical spelling": str(uuid.uuid4()).upper(),
    }
    for what, session_id in attempts.items():
        result = await graphql(
            UPSERT, {"input": {"sessionId": session_id, "agentName": "mine"}}, token=person.token
        )
        assert result.data is None, what
        assert result.errors == [REFUSAL], what
    for session_id in (taken_name, taken_uuid):
        assert await _owners(pool, session_id) == [owner.user_id]
    assert await _owners(pool, attempts["free name"]) == []


async def test_a_person_creates_under_a_new_uuid_and_updates_own_sessions_by_any_id(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    fresh = str(uuid.uuid4())
    created = await graphql.ok(UPSERT, {"input": {"sessionId": fresh}}, token=person.token)
    assert created["upsertSession"]["sessionId"] == fresh
    again = await graphql.ok(
        UPSERT, {"input": {"sessionId": fresh, "agentName": "b"}}, token=person.token
    )
    assert again["upsertSession"]["agentName"] == "b"

    # A session of the person's under a name-like id (made by the service, or before uuids were
    # required) stays theirs to update.
    named = (await make_session(pool, person.user_id)).session_id
    updated = await graphql.ok(
        UPSERT, {"input": {"sessionId": named, "agentName": "renamed"}}, token=person.token
    )
    assert updated["upsertSession"] == {
        "sessionId": named,
        "channel": "WEB",
        "agentName": "renamed",
    }
    # An own session of another channel is the person's own business: they are told why.
    telegram = (await make_session(pool, person.user_id, channel=TELEGRAM)).session_id
    wrong_channel = await graphql(UPSERT, {"input": {"sessionId": telegram}}, token=person.token)
    assert wrong_channel.codes == ["BAD_USER_INPUT"]
    assert wrong_channel.errors is not None
    assert wrong_channel.errors[0]["extensions"]["field"] == "channel"


async def test_the_service_still_names_any_id_for_anyone(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person, service: Person
) -> None:
    named = f"ops-{uuid.uuid4()}"
    data = await graphql.ok(
        UPSERT,
        {"input": {"sessionId": named, "channel": "SCHEDULED", "userId": str(person.user_id)}},
        token=service.token,
    )
    assert data["upsertSession"]["sessionId"] == named
    moved = await graphql(
        UPSERT,
        {"input": {"sessionId": named, "channel": "SCHEDULED", "userId": str(uuid.uuid4())}},
        token=service.token,
    )
    assert moved.codes == ["FORBIDDEN"]
    assert await _owners(pool, named) == [person.user_id]
