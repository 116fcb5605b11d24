"""A cursor is accepted only by the list that issued it: the same session, person and filter."""

from __future__ import annotations

import asyncpg

from bots.channel import TELEGRAM
from graphql_api.core.channels import WEB
from graphql_api.core.tokens import mint_token
from graphql_api.schema.sessions import SESSIONS as SESSIONS_KEYSET
from graphql_api.schema.types import MESSAGES as MESSAGES_KEYSET
from tests.conftest import TEST_JWT_SECRET, GraphQLClient, GraphQLResult, Person, make_person
from tests.graphql_api.seed import add_messages, make_session

MESSAGES = """
query($s: String!, $last: Int, $before: String) {
  messages(sessionId: $s, last: $last, before: $before) {
    edges { cursor node { content } }
    pageInfo { hasPreviousPage startCursor }
  }
}
"""
SESSION_MESSAGES = """
query($s: String!, $last: Int, $before: String) {
  session(sessionId: $s) { messages(last: $last, before: $before) { edges { node { content } } } }
}
"""
SESSIONS = """
query($channel: Channel, $first: Int, $after: String) {
  sessions(channel: $channel, first: $first, after: $after) {
    edges { node { sessionId } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


def _refused(result: GraphQLResult, argument: str) -> None:
    assert result.codes == ["BAD_USER_INPUT"], result
    assert result.errors is not None
    assert result.errors[0]["message"] == f"{argument} is not a valid cursor"
    assert result.errors[0]["extensions"]["field"] == argument


async def test_a_message_cursor_works_only_in_its_own_session(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    a = await make_session(pool, person.user_id)
    b = await make_session(pool, person.user_id)
    await add_messages(pool, b.session_id, 4)
    await add_messages(pool, a.session_id, 4)  # A's ids are newer than all of B's
    page = (await graphql.ok(MESSAGES, {"s": a.session_id, "last": 2}, token=person.token))[
        "messages"
    ]
    cursor = page["pageInfo"]["startCursor"]

    for document in (MESSAGES, SESSION_MESSAGES):
        _refused(
            await graphql(document, {"s": b.session_id, "before": cursor}, token=person.token),
            "before",
        )
    own = await graphql.ok(MESSAGES, {"s": a.session_id, "before": cursor}, token=person.token)
    assert [e["node"]["content"] for e in own["messages"]["edges"]] == ["message 1", "message 2"]
    # The cursor of one view of a session is good for the other view of it.
    nested = await graphql.ok(
        SESSION_MESSAGES, {"s": a.session_id, "before": cursor}, token=person.token
    )
    assert [e["node"]["content"] for e in nested["session"]["messages"]["edges"]] == [
        "message 1",
        "message 2",
    ]


async def test_a_sessions_cursor_works_only_under_its_own_filter(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    for channel in (TELEGRAM, TELEGRAM, TELEGRAM, WEB):
        await make_session(pool, person.user_id, channel=channel)
    first = (await graphql.ok(SESSIONS, {"channel": "TELEGRAM", "first": 2}, token=person.token))[
        "sessions"
    ]
    cursor = first["pageInfo"]["endCursor"]

    for channel in ("WEB", "SCHEDULED", None):
        _refused(
            await graphql(
                SESSIONS, {"channel": channel, "first": 2, "after": cursor}, token=person.token
            ),
            "after",
        )
    rest = await graphql.ok(
        SESSIONS, {"channel": "TELEGRAM", "first": 2, "after": cursor}, token=person.token
    )
    assert len(rest["sessions"]["edges"]) == 1
    assert rest["sessions"]["pageInfo"]["hasNextPage"] is False


async def test_a_sessions_cursor_works_only_for_the_person_it_was_issued_to(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    for _ in range(3):
        await make_session(pool, person.user_id)
    page = (await graphql.ok(SESSIONS, {"first": 1}, token=person.token))["sessions"]
    cursor = page["pageInfo"]["endCursor"]
    other = make_person()
    await make_session(pool, other.user_id)

    _refused(await graphql(SESSIONS, {"first": 1, "after": cursor}, token=other.token), "after")
    # A service token that acts as the person lists the person's sessions: the cursor fits.
    service_as_person = mint_token(TEST_JWT_SECRET, person.user_id, service=True)
    rest = await graphql.ok(SESSIONS, {"first": 5, "after": cursor}, token=service_as_person)
    assert len(rest["sessions"]["edges"]) == 2
    mine = await graphql.ok(SESSIONS, {"first": 5, "after": cursor}, token=person.token)
    assert mine == rest


async def test_a_well_bound_cursor_is_still_checked_for_its_position(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    """The binding does not replace the position checks: a cursor with the right binding but
    an impossible position is refused, never a 500."""
    session = await make_session(pool, person.user_id)
    await add_messages(pool, session.session_id, 2)
    scope = (str(person.user_id), "*")
    for position in ("0001-01-01T00:00:00+14:00|" + str(session.id), "not-a-date|x", ""):
        cursor = SESSIONS_KEYSET.raw_cursor(scope, position)
        _refused(await graphql(SESSIONS, {"after": cursor}, token=person.token), "after")
    for position in ("²", "9" * 20, "-1", ""):
        cursor = MESSAGES_KEYSET.raw_cursor((session.session_id,), position)
        result = await graphql(
            MESSAGES, {"s": session.session_id, "before": cursor}, token=person.token
        )
        _refused(result, "before")
