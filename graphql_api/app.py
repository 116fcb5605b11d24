"""The Starlette application: GraphQL at /graphql, health at /healthz, each configured channel's
routes, and the web app at /."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from strawberry.asgi import GraphQL

from .channels import installed_channels
from .core.channels import Channel
from .core.runtime import Resources, open_resources
from .core.settings import Settings, shipped_path
from .limits import MAX_REQUEST_BYTES
from .schema import build_schema
from .schema.context import Context, authenticate

log = logging.getLogger(__name__)

WEB_DIR = shipped_path("web")
RESOURCES = "resources"  # the lifespan state's key for the shared Resources


class GraphQLApp(GraphQL[Context, None]):
    def __init__(self, channels: tuple[Channel, ...], *, dev_tools: bool) -> None:
        self.channels = channels
        super().__init__(
            build_schema(channels, dev_tools=dev_tools),
            graphql_ide="graphiql" if dev_tools else None,
            allow_queries_via_get=False,
        )

    async def get_context(self, request: Any, response: Any) -> Context:
        resources: Resources = getattr(request.state, RESOURCES)
        viewer, problem = await authenticate(
            resources.verifier, request.headers.get("authorization")
        )
        return Context(
            resources=resources,
            state=request.state,
            channels=self.channels,
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
    resources: Resources = getattr(request.state, RESOURCES)
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


def create_app(
    settings: Settings,
    resources: Resources | None = None,
    *,
    channels: Iterable[Channel] | None = None,
) -> Starlette:
    """The app, with every installed channel in its schema and the configured ones' routes and
    lifespans. Given `resources` (tests, `dev`), it uses them and leaves closing to the caller."""
    channels = installed_channels() if channels is None else tuple(channels)
    running = [channel for channel in channels if channel.enabled(settings)]
    for channel in running:
        channel.check_settings(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with contextlib.AsyncExitStack() as stack:
            shared = resources
            if shared is None:
                shared = await stack.enter_async_context(open_resources(settings))
            state: dict[str, Any] = {RESOURCES: shared}
            for channel in running:
                given = await stack.enter_async_context(channel.lifespan(settings, shared))
                if taken := state.keys() & given.keys():
                    raise RuntimeError(f"channel {channel.name!r} reuses state keys {taken}")
                state.update(given)
            yield state

    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/graphql", GraphQLApp(channels, dev_tools=settings.graphql_dev_tools)),
    ]
    for channel in running:
        routes.extend(channel.routes(settings))
    if Path(WEB_DIR).is_dir():
        routes.append(Mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web"))
    return Starlette(routes=routes, lifespan=lifespan, max_body_size=MAX_REQUEST_BYTES)
