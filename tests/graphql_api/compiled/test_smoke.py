from __future__ import annotations

import asyncpg

from graphql_api.schema.types import message_cursor
from tests.conftest import Person
from tests.graphql_api.seed import add_messages, make_session

from .conftest import Differ

Q2 = """query Q2($first: Int) { sessions(first: $first) { edges { cursor node { id sessionId channel
agentName title isActive updatedAt unreadCount lastMessage { id role content createdAt via } } }
pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }"""
Q1 = """query Q1($s: String!, $b: String) { messages(sessionId: $s, last: 5, before: $b) {
edges { cursor node { id role content createdAt via deliveries { channel status } } }
pageInfo { hasPreviousPage hasNextPage startCursor endCursor } } }"""


async def test_smoke(differ: Differ, pool: asyncpg.Pool, person: Person) -> None:
    session = await make_session(pool, person.user_id)
    ids = await add_messages(pool, session.session_id, 12)
    await make_session(pool, person.user_id)
    a = await differ(Q2, {"first": 1}, token=person.token)
    assert a.compiled_served, a
    a = await differ(Q1, {"s": session.session_id}, token=person.token)
    assert a.compiled_served
    b = message_cursor(session.session_id, ids[6])
    a = await differ(Q1, {"s": session.session_id, "b": b}, token=person.token)
    assert a.compiled_served
    a = await differ(Q1, {"s": "nope"}, token=person.token)
    assert not a.compiled_served
