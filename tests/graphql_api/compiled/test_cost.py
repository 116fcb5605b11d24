"""What the compiled path costs: one statement per request, whatever the page size, with the
ownership check inside it."""

from __future__ import annotations

import asyncpg
import pytest

from graphql_api.schema.types import message_cursor
from tests.conftest import Person, StatementLog, make_person
from tests.graphql_api.seed import add_messages, make_session

from .conftest import Differ

SESSIONS = """query($first: Int) { sessions(first: $first) { edges { cursor node { id sessionId
channel title updatedAt unreadCount lastMessage { id role content createdAt via deliveries {
status } } messages(last: 3) { edges { node { content } } } } } pageInfo { hasNextPage } } }"""
MESSAGES = """query($s: String!, $b: String) { messages(sessionId: $s, last: 50, before: $b) {
edges { cursor node { id content via deliveries { status } } } pageInfo { hasPreviousPage } } }"""
SESSION = """query($s: String!) { session(sessionId: $s) { title unreadCount messages(last: 20) {
edges { cursor node { content } } pageInfo { startCursor } } } }"""


@pytest.mark.parametrize("size", [5, 50])
async def test_each_hot_operation_is_one_statement(
    differ: Differ,
    pool: asyncpg.Pool,
    person: Person,
    statement_log: StatementLog,
    size: int,
) -> None:
    sessions = [await make_session(pool, person.user_id) for _ in range(size)]
    for session in sessions:
        await add_messages(pool, session.session_id, 4)
    busy = sessions[0].session_id
    ids = await add_messages(pool, busy, 120)
    cases = [
        (SESSIONS, {"first": size}),
        (MESSAGES, {"s": busy}),
        (MESSAGES, {"s": busy, "b": message_cursor(busy, ids[60])}),
        (SESSION, {"s": busy}),
    ]
    for query, variables in cases:
        await differ(query, variables, token=person.token)  # warm: plans, prepared statements
        served = differ.plans.served["compiled"]
        with statement_log.counting() as statements:
            response = await differ.compiled.post(
                "/graphql",
                json={"query": query, "variables": variables},
                headers={"Authorization": f"Bearer {person.token}"},
            )
        assert response.status_code == 200 and "errors" not in response.json()
        assert differ.plans.served["compiled"] == served + 1
        assert len(statements) == 1, statements


async def test_someone_elses_session_is_answered_by_the_reference(
    differ: Differ, pool: asyncpg.Pool, person: Person
) -> None:
    """The folded ownership check finds no row: the reference answers NOT_FOUND."""
    stranger = make_person()
    theirs = await make_session(pool, stranger.user_id)
    await add_messages(pool, theirs.session_id, 3)
    answers = await differ(MESSAGES, {"s": theirs.session_id}, token=person.token)
    assert not answers.compiled_served
    assert answers.compiled["data"] is None
    assert answers.compiled["errors"][0]["extensions"]["code"] == "NOT_FOUND"
