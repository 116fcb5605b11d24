"""The asyncpg pool: created by each entry point's startup hook and passed down."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
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


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset on release, instead of asyncpg's default reset query (advisory unlock
    all, CLOSE ALL, UNLISTEN *, RESET ALL): one round trip per release, that is per statement
    run on the pool. This project keeps no session state on pooled connections (no session
    advisory locks, LISTEN, SET or cursors outside transactions: the listener and the
    migrator use connections of their own), and asyncpg still rolls back an open transaction
    and drops listeners before calling this (Pool `reset=`, asyncpg >= 0.30)."""


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
        reset=_keep_session,
        command_timeout=30,
        server_settings={"application_name": "unified-sessions"},
    )
    assert pool is not None
    return pool
