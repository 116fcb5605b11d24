"""The asyncpg pool: created by each entry point's startup hook and passed down."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A connection, bare or acquired from the pool (asyncpg hands out proxies); what a query runs
# on: the pool (one statement) or a connection (a transaction, a lock).
Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy
Executor: TypeAlias = asyncpg.Pool | Connection


# Named advisory locks: any text key, hashed by PostgreSQL itself to the lock's 64-bit number.


async def lock_until_commit(conn: Connection, key: str) -> None:
    """Take the lock named `key` until the current transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", key)


def lock_id(param: str) -> str:
    """SQL for the number of the lock named by the text parameter `param` (e.g. "$1"), for
    statements that take a session lock as one of their steps (pg_try_advisory_lock)."""
    return f"hashtextextended({param}, 0)"


async def take_lock(conn: Connection, key: str) -> None:
    """Take the lock named `key` on this connection until release_lock (across transactions)."""
    await conn.execute(f"SELECT pg_advisory_lock({lock_id('$1')})", key)


async def release_lock(conn: Connection, key: str) -> None:
    await conn.execute(f"SELECT pg_advisory_unlock({lock_id('$1')})", key)


@contextlib.asynccontextmanager
async def holding_lock(conn: Connection, key: str) -> AsyncIterator[None]:
    """Hold the lock named `key` on this connection for the block, across transactions."""
    await take_lock(conn, key)
    try:
        yield
    finally:
        await release_lock(conn, key)


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    init: Callable[[asyncpg.Connection], Awaitable[Any]] | None = None,
) -> asyncpg.Pool:
    async def setup(conn: asyncpg.Connection) -> None:
        await _init_connection(conn)
        if init is not None:
            await init(conn)

    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=setup,
        command_timeout=30,
        server_settings={"application_name": "unified-sessions"},
    )
    assert pool is not None
    return pool
