"""The Starlette application: GraphQL at /graphql, health at /healthz, the web app at /."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from strawberry.asgi import GraphQL

from .core.agent import Agent, build_agent
from .core.db import create_pool
from .core.settings import Settings, shipped_path
from .core.tokens import TokenVerifier
from .limits import LimitRequestBody
from .schema import build_schema
from .schema.context import Context, Loaders, authenticate

log = logging.getLogger(__name__)

WEB_DIR = shipped_path("web")


@dataclass
class Resources:
    """What a request needs, created once at startup and closed at shutdown."""

    settings: Settings
    pool: asyncpg.Pool
    agent: Agent
    redis: Redis | None = None
    extras: dict[str, Any] = field(default_factory=dict)

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


class GraphQLApp(GraphQL[Context, None]):
    def __init__(self, resources: Callable[[], Resources], *, dev_tools: bool) -> None:
        super().__init__(
            build_schema(dev_tools=dev_tools),
            graphql_ide="graphiql" if dev_tools else None,
            allow_queries_via_get=False,
        )
        self._resources = resources

    async def get_context(self, request: Any, response: Any) -> Context:
        resources = self._resources()
        viewer, problem = await authenticate(
            resources.verifier, request.headers.get("authorization")
        )
        return Context(
            resources=resources,
            loaders=Loaders.for_request(resources.pool),
            viewer=viewer,
            auth_problem=problem,
            request=request,
            response=response,
        )

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        """orjson refuses invalid UTF-8, lone surrogates and nesting past 1024 levels; a body
        that is JSON but not an object (null, 5, "x") is refused here. All answer 400."""
        parsed = orjson.loads(data)
        if not isinstance(parsed, dict | list):
            raise json.JSONDecodeError("a GraphQL request is a JSON object", "", 0)
        return parsed


async def healthz(request: Request) -> Response:
    resources: Resources = request.app.state.resources
    checks = {"database": "ok", "redis": "ok" if resources.redis else "not configured"}
    try:
        await resources.pool.fetchval("SELECT 1", timeout=2)
    except Exception:
        checks["database"] = "unreachable"
    if resources.redis is not None:
        try:
            await resources.redis.ping()
        except Exception:
            checks["redis"] = "unreachable"
    healthy = "unreachable" not in checks.values()
    return JSONResponse(
        {"status": "ok" if healthy else "degraded", **checks}, 200 if healthy else 503
    )


def create_app(settings: Settings, resources: Resources | None = None) -> Starlette:
    """The app. Given `resources` (tests, `dev`), it uses them and leaves closing to the caller."""
    state: dict[str, Resources] = {}

    def current() -> Resources:
        return state["resources"]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if resources is None:
                state["resources"] = await stack.enter_async_context(open_resources(settings))
            else:
                state["resources"] = resources
            app.state.resources = state["resources"]
            if settings.telegram_webhook:
                await stack.enter_async_context(telegram_lifespan(settings, state["resources"]))
            yield

    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/graphql", GraphQLApp(current, dev_tools=settings.graphql_dev_tools)),
    ]
    if settings.telegram_webhook:
        # Imported only when the webhook is on: aiogram takes seconds to import, and an API
        # without Telegram should not pay that in every worker process.
        from bots.webhook import telegram_lifespan, telegram_routes

        routes.extend(telegram_routes(settings, current))  # POST /telegram/webhook
    if Path(WEB_DIR).is_dir():
        routes.append(Mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web"))
    return Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(LimitRequestBody)])
