"""Listing and reading sessions through GraphQL over HTTP (AC-4)."""

from __future__ import annotations

import asyncpg

from bots.channel import TELEGRAM
from graphql_api.core.channels import WEB
from tests.conftest import GraphQLClient, Person, make_person
from tests.graphql_api.seed import add_messages, make_session
from workers.channel import SCHEDULED

SESSIONS = """
query($channel: Channel, $first: Int, $after: String) {
  sessions(channel: $channel, first: $first, after: $after) {
    edges { cursor node { id sessionId channel agentName isActive createdAt updatedAt
                          lastMessage { role content } } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


def _ids(data: dict) -> list[str]:
    return [edge["node"]["sessionId"] for edge in data["sessions"]["edges"]]


async def test_get_sessions_returns_user_sessions(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    mine = [await make_session(pool, person.user_id) for _ in range(3)]
    other = make_person()
    await make_session(pool, other.user_id)

    data = await graphql.ok(SESSIONS, token=person.token)

    assert _ids(data) == [s.session_id for s in reversed(mine)]  # newest activity first


async def test_get_sessions_filters_by_channel(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    web = await make_session(pool, person.user_id, channel=WEB)
    telegram = await make_session(pool, person.user_id, channel=TELEGRAM)
    scheduled = await make_session(pool, person.user_id, channel=SCHEDULED)

    for channel, expected in (("WEB", web), ("TELEGRAM", telegram), ("SCHEDULED", scheduled)):
        data = await graphql.ok(SESSIONS, {"channel": channel}, token=person.token)
        assert _ids(data) == [expected.session_id]
        assert data["sessions"]["edges"][0]["node"]["channel"] == channel
    everything = await graphql.ok(SESSIONS, token=person.token)
    assert len(_ids(everything)) == 3


async def test_get_sessions_requires_auth(graphql: GraphQLClient) -> None:
    result = await graphql(SESSIONS)
    assert result.data is None
    assert result.codes == ["UNAUTHENTICATED"]


async def test_get_sessions_returns_list(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    session = await make_session(pool, person.user_id, agent_name="helper")
    await add_messages(pool, session.session_id, 2)

    [edge] = (await graphql.ok(SESSIONS, token=person.token))["sessions"]["edges"]

    node = edge["node"]
    assert node["sessionId"] == session.session_id
    assert node["channel"] == "WEB"
    assert node["agentName"] == "helper"
    assert node["isActive"] is True
    assert node["lastMessage"] == {"role": "ASSISTANT", "content": "message 2"}
    assert edge["cursor"]


async def test_sessions_page_through_with_keyset_cursors(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    created = [await make_session(pool, person.user_id) for _ in range(7)]
    expected = [s.session_id for s in reversed(created)]

    seen: list[str] = []
    after = None
    pages = 0
    while True:
        data = await graphql.ok(SESSIONS, {"first": 3, "after": after}, token=person.token)
        page = data["sessions"]
        seen += _ids(data)
        pages += 1
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == expected
    assert pages == 3


async def test_a_session_without_messages_is_listed_with_an_empty_panel(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    empty = await make_session(pool, person.user_id)
    data = await graphql.ok(
        """query($id: String!) { session(sessionId: $id) {
             lastMessage { id } messages { edges { cursor } pageInfo { hasPreviousPage } } } }""",
        {"id": empty.session_id},
        token=person.token,
    )
    assert data["session"] == {
        "lastMessage": None,
        "messages": {"edges": [], "pageInfo": {"hasPreviousPage": False}},
    }
    listed = await graphql.ok(SESSIONS, token=person.token)
    assert _ids(listed) == [empty.session_id]


async def test_another_persons_session_looks_missing(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    theirs = await make_session(pool, make_person().user_id)
    data = await graphql.ok(
        "query($id: String!) { session(sessionId: $id) { sessionId } }",
        {"id": theirs.session_id},
        token=person.token,
    )
    assert data == {"session": None}
    missing = await graphql.ok(
        "query($id: String!) { session(sessionId: $id) { sessionId } }",
        {"id": "no-such-session"},
        token=person.token,
    )
    assert missing == data


async def test_node_resolves_own_sessions_and_messages_only(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    session = await make_session(pool, person.user_id)
    await add_messages(pool, session.session_id, 1)
    listed = await graphql.ok(
        "{ sessions { edges { node { id lastMessage { id content } } } } }", token=person.token
    )
    node = listed["sessions"]["edges"][0]["node"]
    query = """query($id: ID!) { node(id: $id) { id
                 ... on ChatSession { sessionId } ... on ChatMessage { content } } }"""

    own = await graphql.ok(query, {"id": node["id"]}, token=person.token)
    assert own["node"] == {"id": node["id"], "sessionId": session.session_id}
    message = await graphql.ok(query, {"id": node["lastMessage"]["id"]}, token=person.token)
    assert message["node"]["content"] == "message 1"

    stranger = make_person()
    for global_id in (node["id"], node["lastMessage"]["id"]):
        assert await graphql.ok(query, {"id": global_id}, token=stranger.token) == {"node": None}
    tampered = await graphql(query, {"id": "not-a-global-id"}, token=person.token)
    assert tampered.codes == ["BAD_USER_INPUT"]
