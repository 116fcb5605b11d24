"""The Starlette application: GraphQL at /graphql, health at /healthz, each configured channel's
routes, and the web app at /."""

from __future__ import annotations

import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from .channels import enabled_channels, installed_channels
from .compiled import CompiledQueries
from .core.channels import Channel
from .core.events import EventHub
from .core.runtime import RESOURCES, Resources, open_resources
from .core.search import check_language as check_search_language
from .core.settings import Settings, shipped_path
from .export import export_routes
from .limits import MAX_REQUEST_BYTES
from .schema import build_schema
from .schema.context import Context, authenticate
from .schema.limits import DocumentLimitsRule, ProductionDocumentLimitsRule

log = logging.getLogger(__name__)

WEB_DIR = shipped_path("web")
EVENTS = "events"  # ... and for the process's EventHub (graphql_api/schema/live.py)
# WebSocket limits: subscriptions one connection may hold, connections one person may hold
# (per API process), and how long a client has to send connection_init with its token.
MAX_SUBSCRIPTIONS_PER_CONNECTION = 20
MAX_CONNECTIONS_PER_PERSON = 16
CONNECTION_INIT_TIMEOUT = timedelta(seconds=10)
_WS_HOLDER = "unified_sessions.ws_holder"  # scope key: whose connection slot this socket holds
_WS_CLOSE = "unified_sessions.ws_close"  # scope key: the close code and reason of a refusal
# A person past MAX_CONNECTIONS_PER_PERSON: not 4403 (which says the token is refused, and a
# client signs out on it) but WebSocket's "Try Again Later", which graphql-ws clients retry.
TRY_AGAIN_LATER = (1013, "Too many connections")


class TextFrames(ASGIWebSocketAdapter):
    """graphql-transport-ws messages travel as text frames; `encode_json` gives HTTP bytes."""

    async def close(self, code: int, reason: str) -> None:
        """Strawberry closes every refused connection with 4403; a refusal that is not about
        the token leaves its own code in the scope (on_ws_connect)."""
        code, reason = self.ws.scope.pop(_WS_CLOSE, (code, reason))
        await self.ws.close(code=code, reason=reason)

    async def send_json(self, message: Mapping[str, object]) -> None:
        try:
            await self.ws.send_text(orjson.dumps(message).decode())
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc


class GraphQLApp(GraphQL[Context, None]):
    websocket_adapter_class = TextFrames

    def __init__(
        self, channels: tuple[Channel, ...], *, dev_tools: bool, compiled: bool = True
    ) -> None:
        self.channels = channels
        self._sockets: Counter[str] = Counter()  # open WebSocket connections per person
        schema = build_schema(channels, dev_tools=dev_tools)
        self.compiled: CompiledQueries | None = None
        if compiled:
            limits = DocumentLimitsRule if dev_tools else ProductionDocumentLimitsRule
            self.compiled = CompiledQueries(schema, tuple(c.name for c in channels), limits)
        super().__init__(
            schema,
            graphql_ide="graphiql" if dev_tools else None,
            allow_queries_via_get=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=CONNECTION_INIT_TIMEOUT,
            max_subscriptions_per_connection=MAX_SUBSCRIPTIONS_PER_CONNECTION,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.compiled is not None and scope["type"] == "http":
            return await self.compiled.handle(scope, receive, send, super().__call__)
        try:
            await super().__call__(scope, receive, send)
        finally:
            if (holder := scope.pop(_WS_HOLDER, None)) is not None:
                self._sockets[holder] -= 1
                if self._sockets[holder] <= 0:
                    del self._sockets[holder]

    async def on_ws_connect(self, context: Context) -> UnsetType:
        """graphql-transport-ws: the token is connection_init's `Authorization` entry. A missing
        or bad one is refused: the socket closes with 4403 and nothing is sent. A person past
        MAX_CONNECTIONS_PER_PERSON is refused with TRY_AGAIN_LATER (1013)."""
        params = context.connection_params or {}
        authorization = params.get("Authorization") or params.get("authorization")
        resources = context.resources
        viewer, _ = await authenticate(
            resources.verifier, authorization if isinstance(authorization, str) else None
        )
        if viewer is None:
            raise ConnectionRejectionError
        holder = str(viewer.subject or "service")
        if self._sockets[holder] >= MAX_CONNECTIONS_PER_PERSON:
            context.request.scope[_WS_CLOSE] = TRY_AGAIN_LATER
            raise ConnectionRejectionError
        self._sockets[holder] += 1
        context.request.scope[_WS_HOLDER] = holder
        context.viewer, context.auth_problem = viewer, None
        return UNSET

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
    running = enabled_channels(settings, channels)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with contextlib.AsyncExitStack() as stack:
            shared = resources
            if shared is None:
                shared = await stack.enter_async_context(open_resources(settings))
            await check_search_language(shared.pool, settings.search_language)
            hub = EventHub(settings.require_database_url(), shared.pool)
            await stack.enter_async_context(hub.running())
            state: dict[str, Any] = {RESOURCES: shared, EVENTS: hub}
            for channel in running:
                given = await stack.enter_async_context(channel.lifespan(settings, shared))
                if taken := state.keys() & given.keys():
                    raise RuntimeError(f"channel {channel.name!r} reuses state keys {taken}")
                state.update(given)
            yield state

    graphql = GraphQLApp(
        channels, dev_tools=settings.graphql_dev_tools, compiled=settings.compiled_execution
    )
    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/graphql", graphql),
        WebSocketRoute("/graphql", graphql),  # subscriptions: graphql-transport-ws
    ]
    routes.extend(export_routes())  # GET /export/...: a person's sessions as files
    for channel in running:
        routes.extend(channel.routes(settings))
    if Path(WEB_DIR).is_dir():
        routes.append(Mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web"))
    app = Starlette(routes=routes, lifespan=lifespan, max_body_size=MAX_REQUEST_BYTES)
    app.state.compiled = graphql.compiled  # its `served` counts: tests and benches
    return app
