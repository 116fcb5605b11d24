"""Costs that must not grow with the data: statement counts and index-only plans."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest

from graphql_api.schema.types import message_cursor
from tests.conftest import GraphQLClient, Person, StatementLog, make_person
from tests.graphql_api.seed import add_messages, make_session

PAGE = """
query($first: Int) {
  sessions(first: $first) {
    edges { node { sessionId lastMessage { content }
                   messages(last: 3) { edges { node { content } } pageInfo { hasPreviousPage } } } }
  }
}
"""


async def test_a_page_of_sessions_costs_a_constant_number_of_statements(
    graphql: GraphQLClient, pool: asyncpg.Pool, statement_log: StatementLog
) -> None:
    person = make_person()
    for _ in range(50):
        session = await make_session(pool, person.user_id)
        await add_messages(pool, session.session_id, 5)

    # asyncpg introspects array types once per connection: warm every pooled connection first.
    for _ in range(pool.get_max_size()):
        await graphql.ok(PAGE, {"first": 1}, token=person.token)
    counts = {}
    for first in (5, 50):
        with statement_log.counting() as statements:
            data = await graphql.ok(PAGE, {"first": first}, token=person.token)
        edges = data["sessions"]["edges"]
        assert len(edges) == first
        assert all(len(e["node"]["messages"]["edges"]) == 3 for e in edges)
        assert all(e["node"]["lastMessage"]["content"] == "message 5" for e in edges)
        counts[first] = len(statements)
        assert not any("OFFSET" in sql.upper() for sql, _ in statements)

    assert counts[50] == counts[5] <= 3, counts


def _plan_nodes(plan: dict[str, Any]) -> list[str]:
    nodes = [plan["Node Type"]]
    for child in plan.get("Plans", []):
        nodes += _plan_nodes(child)
    return nodes


async def _explain(pool: asyncpg.Pool, sql: str, args: tuple[Any, ...]) -> list[str]:
    async with pool.acquire() as conn:
        raw = await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args)
    plan = json.loads(raw) if isinstance(raw, str) else raw
    return _plan_nodes(plan[0]["Plan"])


# Seeding runs the per-row search trigger (a tsvector and a GIN entry for each of 200k messages):
# far longer than any request's 30 s command timeout on a slow or cold machine.
SEED_TIMEOUT = 600


@pytest.fixture(scope="module")
async def big_history(pool: asyncpg.Pool) -> tuple[Person, str]:
    """One person with 6k sessions, one of them 200k messages long, among 20k sessions of 2k
    other people."""
    person = make_person()
    session = await make_session(pool, person.user_id)
    await pool.execute(
        """
        INSERT INTO chat_message_history (session_id, message)
        SELECT $1, jsonb_build_object('type', CASE WHEN n % 2 = 0 THEN 'human' ELSE 'ai' END,
                                      'data', jsonb_build_object('content', 'm' || n))
          FROM generate_series(1, 200000) AS n
        """,
        session.session_id,
        timeout=SEED_TIMEOUT,
    )
    owners = [uuid.uuid4() for _ in range(2000)]
    await pool.execute(
        """
        INSERT INTO chat_sessions (user_id, chat_id, session_id, channel, updated_at)
        SELECT ($1::uuid[])[1 + n % 2000], gen_random_uuid(), 'bulk-' || gen_random_uuid(),
               (ARRAY['web', 'telegram', 'scheduled'])[1 + n % 3], now() - n * interval '1 s'
          FROM generate_series(1, 20000) AS n
        """,
        owners,
        timeout=SEED_TIMEOUT,
    )
    await pool.execute(
        """
        INSERT INTO chat_sessions (user_id, chat_id, session_id, channel, updated_at)
        SELECT $1, gen_random_uuid(), 'mine-' || gen_random_uuid(),
               (ARRAY['web', 'telegram', 'scheduled'])[1 + n % 3], now() - n * interval '1 s'
          FROM generate_series(1, 6000) AS n
        """,
        person.user_id,
    )
    await pool.execute("ANALYZE chat_message_history; ANALYZE chat_sessions")
    return person, session.session_id


@pytest.mark.parametrize(
    "query",
    [
        "query($s: String!) { messages(sessionId: $s, last: 50) { edges { cursor } } }",
        """query($s: String!, $b: String) { messages(sessionId: $s, last: 50, before: $b)
                               { edges { cursor } } }""",
        "{ sessions(first: 50) { edges { node { lastMessage { id } } } } }",
        "{ sessions(channel: WEB, first: 50) { edges { node { messages(last: 3) { edges { cursor } } } } } }",
    ],
)
async def test_history_and_session_pages_use_index_scans_only(
    graphql: GraphQLClient,
    pool: asyncpg.Pool,
    statement_log: StatementLog,
    big_history: tuple[Person, str],
    query: str,
) -> None:
    person, session_id = big_history
    variables: dict[str, Any] | None = {"s": session_id} if "$s" in query else None
    if "$b" in query:  # a position deep in the history: before message id 100000
        variables = {"s": session_id, "b": message_cursor(session_id, 100_000)}
    with statement_log.counting() as statements:
        await graphql.ok(query, variables, token=person.token)
    assert statements
    for sql, args in statements:
        nodes = await _explain(pool, sql, args)
        assert "Seq Scan" not in nodes, (sql, nodes)
        assert "Sort" not in nodes, (sql, nodes)  # the index yields the order
        assert any("Index" in node for node in nodes), (sql, nodes)
        assert "OFFSET" not in sql.upper()


async def test_paging_after_a_cursor_deep_in_the_list_uses_the_index(
    graphql: GraphQLClient,
    pool: asyncpg.Pool,
    statement_log: StatementLog,
    big_history: tuple[Person, str],
) -> None:
    person, _ = big_history
    first = await graphql.ok(
        "{ sessions(first: 100) { pageInfo { endCursor } } }", token=person.token
    )
    with statement_log.counting() as statements:
        await graphql.ok(
            "query($a: String) { sessions(first: 50, after: $a) { edges { cursor } } }",
            {"a": first["sessions"]["pageInfo"]["endCursor"]},
            token=person.token,
        )
    [(sql, args)] = statements
    nodes = await _explain(pool, sql, args)
    assert "Seq Scan" not in nodes and "Sort" not in nodes, nodes
