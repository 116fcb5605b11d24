"""The pool: no reset round trip when a connection goes back, and nothing of a statement's or
an abandoned transaction's state carried to the next user."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

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


async def test_connections_are_handed_out_in_the_order_they_were_asked_for(
    databases: DatabaseFactory,
) -> None:
    """A request that arrives while the only connection goes back waits behind the ones
    already waiting (asyncpg's own queue hands it the connection first, so the oldest waiter
    can wait without bound). The newcomer's task is started from a callback queued just
    before the release, so that its first step runs the moment the connection is back."""
    pool = await create_pool(await databases.create(), min_size=1, max_size=1)
    order: list[str] = []
    newcomers: list[asyncio.Task[None]] = []

    async def wait_then_use(name: str) -> None:
        async with pool.acquire() as conn:
            order.append(name)
            await conn.fetchval("SELECT 1")

    def newcomer() -> None:
        newcomers.append(asyncio.create_task(wait_then_use("newcomer")))

    try:
        async with pool.acquire():
            waiters = [asyncio.create_task(wait_then_use(f"waiter {k}")) for k in range(3)]
            await asyncio.sleep(0.05)  # all three are waiting now
            asyncio.get_running_loop().call_soon(newcomer)
        await asyncio.gather(*waiters, *newcomers)
        assert newcomers
        assert order == ["waiter 0", "waiter 1", "waiter 2", "newcomer"]
    finally:
        await pool.close()


async def test_a_wait_for_a_connection_honours_its_timeout_and_gives_up_its_turn(
    databases: DatabaseFactory,
) -> None:
    pool = await create_pool(await databases.create(), min_size=1, max_size=1)
    try:
        async with pool.acquire():
            with pytest.raises(TimeoutError):
                async with pool.acquire(timeout=0.05):
                    pass
        assert await pool.fetchval("SELECT 2") == 2  # the timed-out wait left no turn taken
    finally:
        await pool.close()
