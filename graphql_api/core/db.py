"""The asyncpg pool: created by each entry point's startup hook and passed down."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from types import TracebackType
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


class FairPool(asyncpg.Pool):
    """asyncpg's pool, handing out connections in the order they were asked for.

    asyncpg's own wait is an asyncio.Queue: a released connection wakes the oldest waiter, but
    a request arriving before that waiter runs takes the connection first, and the waiter goes
    back to the end of the line. When PostgreSQL is the bottleneck and every connection is
    busy, that starves a few requests (bench Q1 at 32 clients on 10 connections: p99 61 ms,
    and 34 ms with a pool as large as the clients). A FIFO semaphore (asyncio's is fair since
    Python 3.11.1) in front of the pool gives each request its turn; the queue then never
    waits. Every use in this project is `async with pool.acquire()` (Pool.fetch and the rest
    use it too); awaiting `pool.acquire()` bare is refused, as it would bypass the turns.
    """

    def __init__(self, *args: Any, max_size: int, **kwargs: Any) -> None:
        super().__init__(*args, max_size=max_size, **kwargs)
        self._turns = asyncio.Semaphore(max_size)

    def acquire(self, *, timeout: float | None = None) -> _InTurn:  # type: ignore[override]
        return _InTurn(self._turns, super().acquire(timeout=timeout), timeout)


class _InTurn:
    __slots__ = ("_context", "_timeout", "_turns")

    def __init__(self, turns: asyncio.Semaphore, context: Any, timeout: float | None) -> None:
        self._turns = turns
        self._context = context
        self._timeout = timeout

    async def __aenter__(self) -> PoolConnectionProxy:
        async with asyncio.timeout(self._timeout):
            await self._turns.acquire()
        try:
            return await self._context.__aenter__()  # type: ignore[no-any-return]
        except BaseException:
            self._turns.release()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await self._context.__aexit__(exc_type, exc, traceback)
        finally:
            self._turns.release()


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

    # What asyncpg.create_pool does (asyncpg 0.32.0, pinned in constraints.txt), with the pool
    # class swapped: create_pool takes no class, and its defaults for the other arguments are
    # spelled out here. tests/graphql_api/core/test_db.py proves the pool works and is fair.
    pool = FairPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        init=setup,
        reset=_keep_session,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        command_timeout=30,
        server_settings={"application_name": "unified-sessions"},
    )
    await pool
    return pool
