"""Test infrastructure: real PostgreSQL and Redis, a fresh database per run, a real HTTP server.

PostgreSQL: the server named by TEST_DATABASE_URL, else an embedded one (pgserver) in a
temporary folder. Each run creates its own database `us_test_<random>` on it and drops it at the
end; no other database is touched. Redis: TEST_REDIS_URL, else an embedded redis-server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from asyncpg import introspection
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport
from redis.asyncio import Redis

from graphql_api.app import create_app
from graphql_api.core.agent import EchoAgent
from graphql_api.core.db import create_pool
from graphql_api.core.embedded import embedded_postgres, embedded_redis, free_port, with_database
from graphql_api.core.migrate import migrate
from graphql_api.core.runtime import Resources
from graphql_api.core.settings import Settings
from graphql_api.core.tokens import mint_token

TEST_JWT_SECRET = "test-secret-" + secrets.token_hex(16)


# --- servers and databases ------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    if url := os.environ.get("TEST_DATABASE_URL"):
        yield url
        return
    with (
        tempfile.TemporaryDirectory(prefix="us-test-pg-") as tmp,
        embedded_postgres(Path(tmp) / "pg", delete=True) as url,
    ):
        yield url


class DatabaseFactory:
    """Creates databases named us_test_<random> and drops exactly those."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.created: list[str] = []

    async def create(self) -> str:
        name = "us_test_" + secrets.token_hex(6)
        conn = await asyncpg.connect(self.server_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.created.append(name)
        return with_database(self.server_url, name)

    async def drop_all(self) -> None:
        conn = await asyncpg.connect(self.server_url)
        try:
            for name in self.created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
        self.created.clear()


@pytest.fixture(scope="session")
async def databases(pg_server_url: str) -> AsyncIterator[DatabaseFactory]:
    factory = DatabaseFactory(pg_server_url)
    yield factory
    await factory.drop_all()


@pytest.fixture(scope="session")
async def database_url(databases: DatabaseFactory) -> str:
    """The run's own database, fully migrated."""
    url = await databases.create()
    await migrate(url)
    return url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if url := os.environ.get("TEST_REDIS_URL"):
        yield url
        return
    with (
        tempfile.TemporaryDirectory(prefix="us-test-redis-") as tmp,
        embedded_redis(Path(tmp)) as url,
    ):
        yield url


# --- the application ------------------------------------------------------------------------


def _asyncpg_own(query: str) -> bool:
    """asyncpg's own statements: the reset when a connection goes back to the pool, and the
    type lookup (with JIT switched off around it) a fresh connection runs on first sight of a
    type. They run once per connection, not per request, so query counts leave them out."""
    return (
        query.startswith("SELECT pg_advisory_unlock_all()")
        or "set_config('jit'" in query
        # asyncpg's internal module, pinned by constraints.txt; a rename fails the count tests.
        or query in (introspection.INTRO_LOOKUP_TYPES, introspection.INTRO_LOOKUP_TYPES_13)
    )


@dataclass(eq=False)
class StatementLog:
    """Every SQL statement the app's pool runs, for tests that count queries."""

    statements: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def __call__(self, record: Any) -> None:
        if not _asyncpg_own(record.query):
            self.statements.append((record.query, tuple(record.args or ())))

    @contextlib.contextmanager
    def counting(self) -> Iterator[list[tuple[str, tuple[Any, ...]]]]:
        """Collects the (sql, args) of the statements run inside the block."""
        start = len(self.statements)
        seen: list[tuple[str, tuple[Any, ...]]] = []
        yield seen
        seen.extend(self.statements[start:])


@pytest.fixture(scope="session")
def statement_log() -> StatementLog:
    return StatementLog()


@pytest.fixture(scope="session")
def settings(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return Settings.from_env(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "JWT_SECRET": TEST_JWT_SECRET,
            "DATA_DIR": str(tmp_path_factory.mktemp("data")),
            "TELEGRAM_BOT_USERNAME": "unified_sessions_test_bot",
            # This run's own queue: the API's jobs (a delivery's wake-up) never land on the
            # default queue of a Redis that real workers may share.
            "WORKER_QUEUE": "us-test-api:" + secrets.token_hex(6),
        }
    )


@pytest.fixture(scope="session")
async def pool(settings: Settings, statement_log: StatementLog) -> AsyncIterator[asyncpg.Pool]:
    async def log_statements(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(statement_log)

    pool = await create_pool(settings.require_database_url(), max_size=10, init=log_statements)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def resources(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Resources]:
    redis = Redis.from_url(settings.require_redis_url())
    yield Resources(settings=settings, pool=pool, agent=EchoAgent(), redis=redis)
    try:
        doomed = [k async for k in redis.scan_iter(match=f"*{settings.worker_queue}*", count=1000)]
        if doomed:
            await redis.delete(*doomed)
    finally:
        await redis.aclose()


@contextlib.asynccontextmanager
async def running_server(app: Any) -> AsyncIterator[str]:
    """A real uvicorn server for `app` on a free loopback port, in this event loop."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="session")
async def server_url(settings: Settings, resources: Resources) -> AsyncIterator[str]:
    async with running_server(create_app(settings, resources)) as url:
        yield url


# --- people and GraphQL ---------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    user_id: uuid.UUID
    token: str


def make_person(*, service: bool = False, ttl: int = 3600) -> Person:
    user_id = uuid.uuid4()
    return Person(user_id, mint_token(TEST_JWT_SECRET, user_id, service=service, ttl=ttl))


@pytest.fixture
def person() -> Person:
    return make_person()


@pytest.fixture
def service() -> Person:
    return make_person(service=True)


@dataclass
class GraphQLResult:
    data: dict[str, Any] | None
    errors: list[dict[str, Any]] | None

    @property
    def codes(self) -> list[str]:
        return [e.get("extensions", {}).get("code") for e in self.errors or []]


class GraphQLClient:
    """Talks to the running server over HTTP with the gql client."""

    def __init__(self, url: str) -> None:
        self.url = url + "/graphql"

    async def __call__(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> GraphQLResult:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        transport = HTTPXAsyncTransport(url=self.url, headers=headers, timeout=30)
        async with Client(transport=transport) as session:
            try:
                result = await session.execute(
                    GraphQLRequest(query, variable_values=variables), get_execution_result=True
                )
            except TransportQueryError as exc:
                return GraphQLResult(data=exc.data, errors=exc.errors)
        return GraphQLResult(data=result.data, errors=result.errors)

    async def ok(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> dict[str, Any]:
        result = await self(query, variables, token=token)
        assert not result.errors, result.errors
        assert result.data is not None
        return result.data


@pytest.fixture(scope="session")
def graphql(server_url: str) -> GraphQLClient:
    return GraphQLClient(server_url)


@pytest.fixture
async def http(server_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server_url, timeout=30) as client:
        yield client
