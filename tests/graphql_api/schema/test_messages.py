"""Paging through a session's history with Relay cursors (AC-5)."""

from __future__ import annotations

import base64
import uuid

import asyncpg

from tests.conftest import GraphQLClient, Person, make_person
from tests.graphql_api.seed import add_messages, add_raw_message, make_session

MESSAGES = """
query($sessionId: String!, $last: Int, $before: String) {
  messages(sessionId: $sessionId, last: $last, before: $before) {
    edges { cursor node { id role content createdAt } }
    pageInfo { hasPreviousPage hasNextPage startCursor endCursor }
  }
}
"""


def _contents(data: dict) -> list[str]:
    return [edge["node"]["content"] for edge in data["messages"]["edges"]]


async def test_get_session_messages_returns_messages(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    session = await make_session(pool, person.user_id)
    await add_messages(pool, session.session_id, 4)

    data = await graphql.ok(MESSAGES, {"sessionId": session.session_id}, token=person.token)

    assert _contents(data) == ["message 1", "message 2", "message 3", "message 4"]
    roles = [edge["node"]["role"] for edge in data["messages"]["edges"]]
    assert roles == ["USER", "ASSISTANT", "USER", "ASSISTANT"]
    assert data["messages"]["pageInfo"]["hasPreviousPage"] is False


async def test_get_session_messages_respects_cursor(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    session = await make_session(pool, person.user_id)
    await add_messages(pool, session.session_id, 12)

    newest = await graphql.ok(
        MESSAGES, {"sessionId": session.session_id, "last": 5}, token=person.token
    )
    assert _contents(newest) == [f"message {n}" for n in range(8, 13)]
    assert newest["messages"]["pageInfo"]["hasPreviousPage"] is True

    older = await graphql.ok(
        MESSAGES,
        {
            "sessionId": session.session_id,
            "last": 5,
            "before": newest["messages"]["pageInfo"]["startCursor"],
        },
        token=person.token,
    )
    assert _contents(older) == [f"message {n}" for n in range(3, 8)]
    assert older["messages"]["pageInfo"]["hasPreviousPage"] is True
    assert older["messages"]["pageInfo"]["hasNextPage"] is True

    oldest = await graphql.ok(
        MESSAGES,
        {
            "sessionId": session.session_id,
            "last": 5,
            "before": older["messages"]["pageInfo"]["startCursor"],
        },
        token=person.token,
    )
    assert _contents(oldest) == ["message 1", "message 2"]
    assert oldest["messages"]["pageInfo"]["hasPreviousPage"] is False


async def test_get_session_messages_denies_other_user(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    theirs = await make_session(pool, make_person().user_id)
    await add_messages(pool, theirs.session_id, 3)

    denied = await graphql(MESSAGES, {"sessionId": theirs.session_id}, token=person.token)
    missing = await graphql(MESSAGES, {"sessionId": "no-such-session"}, token=person.token)

    assert denied.data is None
    assert denied.codes == ["NOT_FOUND"]
    assert missing.codes == ["NOT_FOUND"]
    # Indistinguishable: same code, same shape, no hint of the owner.
    assert denied.errors[0]["message"].replace(theirs.session_id, "X") == missing.errors[0][
        "message"
    ].replace("no-such-session", "X")


async def test_get_messages_requires_auth(graphql: GraphQLClient, pool: asyncpg.Pool) -> None:
    session = await make_session(pool, make_person().user_id)
    result = await graphql(MESSAGES, {"sessionId": session.session_id})
    assert result.data is None
    assert result.codes == ["UNAUTHENTICATED"]


async def test_get_messages_returns_list(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    session = await make_session(pool, person.user_id)
    await add_messages(pool, session.session_id, 3)
    data = await graphql.ok(
        """query($id: String!) { session(sessionId: $id) {
              messages(last: 2) { edges { node { content } } pageInfo { hasPreviousPage } } } }""",
        {"id": session.session_id},
        token=person.token,
    )
    page = data["session"]["messages"]
    assert [e["node"]["content"] for e in page["edges"]] == ["message 2", "message 3"]
    assert page["pageInfo"]["hasPreviousPage"] is True


async def test_langchain_contents_as_string_or_parts(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    session = await make_session(pool, person.user_id)
    sid = session.session_id
    await add_raw_message(pool, sid, {"type": "human", "data": {"content": "plain"}})
    await add_raw_message(
        pool,
        sid,
        {
            "type": "ai",
            "data": {
                "content": [
                    {"type": "text", "text": "first part, "},
                    {"type": "image_url", "image_url": "http://example.invalid/x.png"},
                    {"type": "text", "text": "second part"},
                ]
            },
        },
    )
    await add_raw_message(pool, sid, {"type": "system", "data": {"content": "be brief"}})
    await add_raw_message(pool, sid, {"type": "tool", "data": {"content": ["raw string part"]}})

    data = await graphql.ok(MESSAGES, {"sessionId": sid}, token=person.token)
    nodes = [(e["node"]["role"], e["node"]["content"]) for e in data["messages"]["edges"]]
    assert nodes == [
        ("USER", "plain"),
        ("ASSISTANT", "first part, second part"),
        ("SYSTEM", "be brief"),
        ("TOOL", "raw string part"),
    ]


async def test_page_sizes_are_capped_and_cursors_validated(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    session = await make_session(pool, person.user_id)
    await add_messages(pool, session.session_id, 60)
    default = await graphql.ok(MESSAGES, {"sessionId": session.session_id}, token=person.token)
    assert len(default["messages"]["edges"]) == 50

    for last in (0, -1, 101, 10_000):
        result = await graphql(
            MESSAGES, {"sessionId": session.session_id, "last": last}, token=person.token
        )
        assert result.codes == ["BAD_USER_INPUT"], last
    for first in (0, 101):
        result = await graphql(
            "query($f: Int) { sessions(first: $f) { edges { cursor } } }",
            {"f": first},
            token=person.token,
        )
        assert result.codes == ["BAD_USER_INPUT"]

    session_cursor = (await graphql.ok("{ sessions { edges { cursor } } }", token=person.token))[
        "sessions"
    ]["edges"][0]["cursor"]
    message_cursor = default["messages"]["edges"][0]["cursor"]
    for bad in ("garbage", "bTE6MTIzYWJj", session_cursor, "=" * 10, "x" * 500):
        result = await graphql(
            MESSAGES, {"sessionId": session.session_id, "before": bad}, token=person.token
        )
        assert result.codes == ["BAD_USER_INPUT"], bad
    out_of_range = [
        base64.urlsafe_b64encode(f"s1:{stamp}|{uuid.uuid4()}".encode()).decode()
        for stamp in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00")
    ]
    for bad in ("garbage", message_cursor, "czE6bm90LWEtZGF0ZXxub3QtYS11dWlk", *out_of_range):
        result = await graphql(
            "query($a: String) { sessions(after: $a) { edges { cursor } } }",
            {"a": bad},
            token=person.token,
        )
        assert result.codes == ["BAD_USER_INPUT"], bad
