"""The pool: no reset round trip when a connection goes back, and nothing of a statement's or
an abandoned transaction's state carried to the next user."""

from __future__ import annotations

from typing import Any

import asyncpg

from graphql_api.core.db import create_pool
from tests.conftest import DatabaseFactory


async def test_a_released_connection_costs_no_reset_statement_and_keeps_no_transaction(
    databases: DatabaseFactory,
) -> None:
    sent: list[str] = []

    async def log_all(conn: asyncpg.Connection) -> None:
        def record(query: Any) -> None:
            sent.append(query.query)

        conn.add_query_logger(record)

    pool = await create_pool(await databases.create(), min_size=1, max_size=1, init=log_all)
    try:
        for _ in range(3):
            assert await pool.fetchval("SELECT 1") == 1
        assert sent == ["SELECT 1"] * 3  # no "SELECT pg_advisory_unlock_all(); ..." after each

        async with pool.acquire() as conn:
            await conn.execute("BEGIN")  # left open by mistake
            await conn.execute("CREATE TEMP TABLE left_behind (x int)")
        async with pool.acquire() as conn:  # the same (only) connection
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT to_regclass('pg_temp.left_behind')") is None
    finally:
        await pool.close()
