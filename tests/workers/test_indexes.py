"""Schedule lists, run pages and the periodic claim stay index scans among many rows."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest

from tests.conftest import GraphQLClient, Person, StatementLog, make_person
from workers import runs as schedule_runs
from workers.schedules import Slot

BIG_TABLES = {"schedules", "schedule_runs", "chat_sessions"}


def _plan(plan: dict[str, Any]) -> list[tuple[str, str | None]]:
    nodes = [(plan["Node Type"], plan.get("Relation Name"))]
    for child in plan.get("Plans", []):
        nodes += _plan(child)
    return nodes


async def _explain(pool: asyncpg.Pool, sql: str, args: tuple[Any, ...]) -> list[tuple[str, Any]]:
    async with pool.acquire() as conn:
        raw = await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args)
    plan = json.loads(raw) if isinstance(raw, str) else raw
    return _plan(plan[0]["Plan"])


def _seq_scans(nodes: list[tuple[str, Any]]) -> list[str]:
    return [rel for node, rel in nodes if node == "Seq Scan" and rel in BIG_TABLES]


@pytest.fixture(scope="module")
async def many_schedules(pool: asyncpg.Pool) -> tuple[Person, uuid.UUID]:
    """20k schedules of 2k other people (none due while the tests run), 300 of one person, and
    one of them with 5k runs among 20k runs."""
    person = make_person()
    owners = [uuid.uuid4() for _ in range(2000)]
    insert = """
        INSERT INTO schedules (user_id, name, prompt, cron, agent_name, enabled, next_run_at,
                               created_at)
        SELECT {owner}, 'bulk ' || n, 'p', '0 0 1 1 *', 'bulk', n % 10 <> 0,
               CASE WHEN n % 10 <> 0 THEN timestamptz '2999-01-01' END, now() - n * interval '1 s'
          FROM generate_series(1, {count}) AS n
    """
    await pool.execute(insert.format(owner="($1::uuid[])[1 + n % 2000]", count=20000), owners)
    await pool.execute(insert.format(owner="$1::uuid", count=300), person.user_id)
    busy = await pool.fetchval(
        "SELECT id FROM schedules WHERE user_id = $1 ORDER BY created_at DESC LIMIT 1",
        person.user_id,
    )
    others = [
        r["id"]
        for r in await pool.fetch(
            "SELECT id FROM schedules WHERE user_id = ANY($1::uuid[]) LIMIT 5000", owners
        )
    ]
    await pool.execute(
        """
        WITH runs AS (
            INSERT INTO schedule_runs (schedule_id, slot, session_id, status, finished_at)
            SELECT CASE WHEN n <= 5000 THEN $1 ELSE ($2::uuid[])[1 + n % 5000] END,
                   timestamptz '2024-01-01' + n * interval '1 hour',
                   'bulk-run-' || gen_random_uuid(), 'succeeded', now()
              FROM generate_series(1, 20000) AS n
            RETURNING schedule_id, session_id
        )
        INSERT INTO chat_sessions (user_id, chat_id, session_id, channel, agent_name, is_active)
        SELECT s.user_id, gen_random_uuid(), r.session_id, 'scheduled', 'bulk', false
          FROM runs r JOIN schedules s ON s.id = r.schedule_id
        """,
        busy,
        others,
    )
    await pool.execute("ANALYZE schedules; ANALYZE schedule_runs; ANALYZE chat_sessions")
    return person, busy


async def _statements_of(
    statement_log: StatementLog, graphql: GraphQLClient, query: str, variables: Any, token: str
) -> tuple[dict[str, Any], list[tuple[str, tuple[Any, ...]]]]:
    with statement_log.counting() as seen:
        data = await graphql.ok(query, variables, token=token)
    return data, [(sql, args) for sql, args in seen if "schedule" in sql]


async def test_schedule_pages_are_index_scans_without_sorting(
    schedules_api: GraphQLClient,
    pool: asyncpg.Pool,
    statement_log: StatementLog,
    many_schedules: tuple[Person, uuid.UUID],
) -> None:
    person, _ = many_schedules
    query = """query ($after: String) { schedules(first: 50, after: $after) {
                 edges { node { name } } pageInfo { endCursor } } }"""
    first, statements = await _statements_of(statement_log, schedules_api, query, {}, person.token)
    assert len(first["schedules"]["edges"]) == 50
    cursor = first["schedules"]["pageInfo"]["endCursor"]
    _, more = await _statements_of(
        statement_log, schedules_api, query, {"after": cursor}, person.token
    )
    assert len(statements) == len(more) == 1
    for sql, args in statements + more:
        nodes = await _explain(pool, sql, args)
        assert not _seq_scans(nodes) and "Sort" not in [n for n, _ in nodes], (sql, nodes)


async def test_run_pages_are_index_scans(
    schedules_api: GraphQLClient,
    pool: asyncpg.Pool,
    statement_log: StatementLog,
    many_schedules: tuple[Person, uuid.UUID],
) -> None:
    person, busy = many_schedules
    global_id = _global_id(busy)
    query = """query ($id: ID!, $after: String) { schedule(id: $id) {
                 runs(first: 50, after: $after) { edges { node { sessionId } }
                 pageInfo { endCursor hasNextPage } } } }"""
    first, _ = await _statements_of(
        statement_log, schedules_api, query, {"id": global_id}, person.token
    )
    runs = first["schedule"]["runs"]
    assert len(runs["edges"]) == 50 and runs["pageInfo"]["hasNextPage"] is True
    _, statements = await _statements_of(
        statement_log,
        schedules_api,
        query,
        {"id": global_id, "after": runs["pageInfo"]["endCursor"]},
        person.token,
    )
    [(sql, args)] = [s for s in statements if "schedule_runs" in s[0]]
    nodes = await _explain(pool, sql, args)
    assert not _seq_scans(nodes), (sql, nodes)


async def test_the_periodic_claim_is_an_index_scan(
    pool: asyncpg.Pool, statement_log: StatementLog, many_schedules: tuple[Person, uuid.UUID]
) -> None:
    claimed: list[Slot] = []

    async def collect(due: Slot) -> None:
        claimed.append(due)

    with statement_log.counting() as seen:
        await schedule_runs.claim_due(pool, collect)
        await schedule_runs.stalled_runs(pool)
    selects = [(sql, args) for sql, args in seen if sql.lstrip().startswith("SELECT")]
    assert len(selects) == 2
    for sql, args in selects:
        nodes = await _explain(pool, sql, args)
        assert not _seq_scans(nodes), (sql, nodes)
        assert "Sort" not in [n for n, _ in nodes], (sql, nodes)


def _global_id(schedule_id: uuid.UUID) -> str:
    from strawberry.relay import to_base64

    return to_base64("Schedule", str(schedule_id))
