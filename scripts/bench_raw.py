"""The yardstick `scripts/bench.py` measures the API against: the bench's three hot operations
(Q1, Q2, Q2T) hand-written on Starlette + asyncpg, with exactly the GraphQL API's answers.

    BENCH_RAW_DATABASE_URL=... JWT_SECRET=... python -m uvicorn bench_raw:app --app-dir scripts

One POST route, /graphql. The body is the GraphQL request the bench sends (`operationName`
picks the document: Q1, Q2 or Q2T; the documents themselves are not parsed), the bearer token
is verified with the project's own TokenVerifier, and each operation is one SQL statement:
Q1 the ownership check and the page together, Q2/Q2T the sessions with their newest message
through a LATERAL join. The JSON is built by hand (orjson) in the shape, key order and formats
the API's answer has for these documents (graphql_api/schema/types.py, sessions.py).
"""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from graphql_api.core.models import content_of
from graphql_api.core.pagination import MAX_PAGE_SIZE
from graphql_api.core.tokens import InvalidToken, TokenVerifier
from graphql_api.schema.sessions import SESSIONS
from graphql_api.schema.types import MESSAGES

ROLES = {"human": "USER", "ai": "ASSISTANT", "system": "SYSTEM", "tool": "TOOL"}
PAGE = 50
# PostgreSQL connections per process when BENCH_RAW_POOL_SIZE is not set (scripts/bench.py
# sets it, and gives the API as many)
POOL_SIZE = 4

# The content when it is a string (else NULL, and the message itself for content_of).
_MESSAGE_FIELDS = """
    {m}.id, {m}.message ->> 'type' AS type,
    CASE WHEN jsonb_typeof({m}.message -> 'data' -> 'content') = 'string'
         THEN {m}.message -> 'data' ->> 'content' END AS text,
    CASE WHEN jsonb_typeof({m}.message -> 'data' -> 'content') IS DISTINCT FROM 'string'
         THEN {m}.message END AS message,
    {m}.created_at"""

Q1_SQL = f"""
SELECT s.channel, p.*
  FROM chat_sessions s
  LEFT JOIN LATERAL (
        SELECT {_MESSAGE_FIELDS.format(m="h")}, h.via
          FROM chat_message_history h
         WHERE h.session_id = s.session_id AND h.id < $3
         ORDER BY h.id DESC
         LIMIT $4
  ) p ON true
 WHERE s.session_id = $1 AND s.user_id = $2
"""

_Q2_SQL = f"""
SELECT s.id AS sid, s.session_id, s.channel, s.agent_name, s.is_active, s.updated_at, s.title,
       {_MESSAGE_FIELDS.format(m="l")}
  FROM (SELECT id, session_id, channel, agent_name, is_active, updated_at, title
          FROM chat_sessions
         WHERE user_id = $1 AND archived_at IS NULL {{channel}}
         ORDER BY updated_at DESC, id DESC
         LIMIT $2) s
  LEFT JOIN LATERAL (
        SELECT id, message, created_at FROM chat_message_history h
         WHERE h.session_id = s.session_id ORDER BY h.id DESC LIMIT 1
  ) l ON true
 ORDER BY s.updated_at DESC, s.id DESC
"""
Q2_SQL = _Q2_SQL.format(channel="")
Q2T_SQL = _Q2_SQL.format(channel="AND channel = 'telegram'")
_MAX_ID = 2**63 - 1


def _global_id(type_name: str, value: object) -> str:
    return base64.b64encode(f"{type_name}:{value}".encode()).decode()


def _cursor_maker(tag_cursor: str) -> tuple[str, Any]:
    """The text before the position in a cursor like `tag_cursor` (one made at position 0)."""
    text = base64.urlsafe_b64decode(tag_cursor + "=" * (-len(tag_cursor) % 4)).decode()
    prefix = text[: text.rindex(":") + 1]
    return (
        prefix,
        lambda body: base64.urlsafe_b64encode((prefix + body).encode()).decode().rstrip("="),
    )


def _content(record: asyncpg.Record) -> str:
    text = record["text"]
    if text is not None:
        return str(text)
    return content_of(orjson.loads(record["message"]))


def _error(message: str, status: int = 200) -> Response:
    body = {"data": None, "errors": [{"message": message}]}
    return Response(orjson.dumps(body), status, media_type="application/json")


async def q1(pool: asyncpg.Pool, user_id: Any, variables: dict[str, Any]) -> Any:
    session_id = variables["s"]
    before = variables.get("b")
    before_id = MESSAGES.read(before, (session_id,), "before")[0] if before is not None else None
    rows = await pool.fetch(
        Q1_SQL, session_id, user_id, before_id if before_id is not None else _MAX_ID, PAGE + 1
    )
    if not rows:
        return None  # not the viewer's session
    has_older = len(rows) > PAGE
    page = rows[:PAGE] if rows[0]["id"] is not None else []
    _, cursor = _cursor_maker(MESSAGES.cursor((session_id,), 0))
    edges = []
    for r in reversed(page):
        via = r["via"] or r["channel"]
        edges.append(
            {
                "cursor": cursor(str(r["id"])),
                "node": {
                    "id": _global_id("ChatMessage", r["id"]),
                    "role": ROLES.get(r["type"], "SYSTEM"),
                    "content": _content(r),
                    "createdAt": r["created_at"].isoformat(),
                    "via": via.upper(),
                },
            }
        )
    return {
        "messages": {
            "edges": edges,
            "pageInfo": {
                "hasPreviousPage": has_older,
                "startCursor": edges[0]["cursor"] if edges else None,
            },
        }
    }


async def q2(pool: asyncpg.Pool, user_id: Any, variables: dict[str, Any], telegram: bool) -> Any:
    first = variables.get("first") or PAGE
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise ValueError("first must be between 1 and 100")
    rows = await pool.fetch(Q2T_SQL if telegram else Q2_SQL, user_id, first + 1)
    has_more = len(rows) > first
    scope = (str(user_id), "telegram" if telegram else "*")
    _, cursor = _cursor_maker(SESSIONS.raw_cursor(scope, "0"))
    edges = []
    for r in rows[:first]:
        last = None
        if r["id"] is not None:
            last = {
                "id": _global_id("ChatMessage", r["id"]),
                "role": ROLES.get(r["type"], "SYSTEM"),
                "content": _content(r),
                "createdAt": r["created_at"].isoformat(),
            }
        updated_at = r["updated_at"].isoformat()
        edges.append(
            {
                "cursor": cursor(f"{updated_at}|{r['sid']}"),
                "node": {
                    "id": _global_id("ChatSession", r["sid"]),
                    "sessionId": r["session_id"],
                    "channel": r["channel"].upper(),
                    "agentName": r["agent_name"],
                    "title": r["title"],
                    "isActive": r["is_active"],
                    "updatedAt": updated_at,
                    "lastMessage": last,
                },
            }
        )
    return {
        "sessions": {
            "edges": edges,
            "pageInfo": {
                "hasNextPage": has_more,
                "endCursor": edges[-1]["cursor"] if edges else None,
            },
        }
    }


async def graphql(request: Request) -> Response:
    state = request.app.state
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return _error("sign in: send Authorization: Bearer <token>")
    try:
        viewer = await state.verifier.verify(token.strip())
    except InvalidToken:
        return _error("the token is invalid or expired")
    if viewer is None:
        return _error("the anon key signs no one in")
    body = orjson.loads(await request.body())
    operation = body.get("operationName")
    variables = body.get("variables") or {}
    if operation == "Q1":
        data = await q1(state.pool, viewer.user_id, variables)
        if data is None:
            return _error("no such session")
    elif operation in ("Q2", "Q2T"):
        data = await q2(state.pool, viewer.user_id, variables, operation == "Q2T")
    else:
        return _error(f"unknown operation {operation!r}", 400)
    return Response(orjson.dumps({"data": data}), media_type="application/json")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(
        os.environ["BENCH_RAW_DATABASE_URL"],
        min_size=1,
        max_size=int(os.environ.get("BENCH_RAW_POOL_SIZE", POOL_SIZE)),
    )
    app.state.verifier = TokenVerifier(os.environ["JWT_SECRET"])
    try:
        yield
    finally:
        await app.state.pool.close()


async def healthz(request: Request) -> Response:
    await request.app.state.pool.fetchval("SELECT 1")
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(
    routes=[Route("/graphql", graphql, methods=["POST"]), Route("/healthz", healthz)],
    lifespan=lifespan,
)
