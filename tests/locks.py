"""Forcing the order in which concurrent transactions queue for a row: a third connection holds
the row, the contenders are started one after another, each once the one before it waits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

_WAITING = """
SELECT count(*) FROM pg_stat_activity
 WHERE datname = current_database() AND wait_event_type = 'Lock'
"""


async def waiting_backends(pool: asyncpg.Pool) -> int:
    """How many backends of this database wait for a lock."""
    return int(await pool.fetchval(_WAITING))


async def until_waiting(pool: asyncpg.Pool, backends: int) -> None:
    """Until that many backends of this database wait for a lock."""
    async with asyncio.timeout(10):
        while await waiting_backends(pool) < backends:
            await asyncio.sleep(0.01)


@asynccontextmanager
async def row_held(
    pool: asyncpg.Pool, table: str, where: str, *args: object
) -> AsyncIterator[None]:
    """Hold the rows (FOR NO KEY UPDATE: what an UPDATE takes) until the block ends."""
    async with pool.acquire() as holder, holder.transaction():
        await holder.execute(f"SELECT FROM {table} WHERE {where} FOR NO KEY UPDATE", *args)
        yield
