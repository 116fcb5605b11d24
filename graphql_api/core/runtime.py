"""The process's shared resources: opened once at startup, closed once at shutdown, passed down.

Every entry point (the API, the bot, the worker, `dev`) opens them here. Nothing else creates a
pool, a Redis client or an agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
from redis.asyncio import Redis

from .agent import Agent, build_agent
from .db import create_pool
from .settings import Settings
from .tokens import TokenVerifier

RESOURCES = "resources"  # the key of the Resources in the app's lifespan state (request.state)


@dataclass
class Resources:
    settings: Settings
    pool: asyncpg.Pool
    agent: Agent
    redis: Redis | None = None

    @functools.cached_property
    def verifier(self) -> TokenVerifier:
        """How bearer tokens are checked (JWT_SECRET and/or the JWKS), built once."""
        return TokenVerifier.from_settings(self.settings)


@contextlib.asynccontextmanager
async def open_resources(settings: Settings) -> AsyncIterator[Resources]:
    settings.require_token_keys()
    pool = await create_pool(
        settings.require_database_url(),
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
    )
    redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
    agent = build_agent(settings)
    warm_up: asyncio.Task[None] | None = None
    try:
        resources = Resources(settings=settings, pool=pool, agent=agent, redis=redis)
        # The JWKS is fetched in the background: the server starts whether it answers or not.
        warm_up = asyncio.create_task(resources.verifier.warm_up())
        yield resources
    finally:
        if warm_up is not None:
            warm_up.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await warm_up
        await agent.aclose()
        if redis is not None:
            await redis.aclose()
        await pool.close()
