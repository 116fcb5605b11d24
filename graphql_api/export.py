"""Export over HTTP with the bearer token: one session as JSON or Markdown, or everything.

    GET /export/sessions/<sessionId>.json   {"session": {...}, "messages": [LangChain messages]}
    GET /export/sessions/<sessionId>.md     a transcript
    GET /export/all.jsonl                   one line per message of every session of the viewer

Messages are oldest first, in LangChain's message JSON as stored. Without a token: 401; another
person's session: 404, as a missing one. Everything is read in keyset pages of EXPORT_PAGE rows
and streamed, so memory stays constant however much the viewer has.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from .core import sessions
from .core.models import SESSION_COLUMNS, SessionRow, content_of, role_of
from .core.runtime import RESOURCES, Resources
from .core.tokens import Viewer
from .schema.context import authenticate

EXPORT_PAGE = 1000


def export_routes() -> list[BaseRoute]:
    return [
        Route("/export/sessions/{session_id}.json", session_json, methods=["GET"]),
        Route("/export/sessions/{session_id}.md", session_markdown, methods=["GET"]),
        Route("/export/all.jsonl", everything, methods=["GET"]),
    ]


async def _viewer(request: Request) -> tuple[Resources, Viewer | None, Response | None]:
    resources: Resources = getattr(request.state, RESOURCES)
    viewer, problem = await authenticate(resources.verifier, request.headers.get("authorization"))
    if viewer is None:
        message = problem or "sign in: send Authorization: Bearer <token>"
        return resources, None, JSONResponse({"error": message}, status_code=401)
    if viewer.subject is None:
        return resources, None, JSONResponse({"error": "the service key names no person"}, 403)
    return resources, viewer, None


async def _own_session(request: Request) -> tuple[asyncpg.Pool, SessionRow | None, Response | None]:
    resources, viewer, refused = await _viewer(request)
    if viewer is None:
        return resources.pool, None, refused
    row = await sessions.get_session(
        resources.pool, viewer.user_id, request.path_params["session_id"]
    )
    if row is None:
        return resources.pool, None, JSONResponse({"error": "no such session"}, status_code=404)
    return resources.pool, row, None


async def _messages(pool: asyncpg.Pool, session_ids: list[str]) -> AsyncIterator[asyncpg.Record]:
    """The sessions' messages, session by session and oldest first, a page at a time."""
    for session_id in session_ids:
        after = 0
        while True:
            page = await pool.fetch(
                "SELECT id, session_id, message, created_at, via FROM chat_message_history "
                "WHERE session_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                session_id,
                after,
                EXPORT_PAGE,
            )
            for record in page:
                yield record
            if len(page) < EXPORT_PAGE:
                break
            after = page[-1]["id"]


def _session_json(row: SessionRow) -> dict[str, Any]:
    return {
        "sessionId": row.session_id,
        "channel": row.channel,
        "title": row.title,
        "agentName": row.agent_name,
        "createdAt": row.created_at,
        "updatedAt": row.updated_at,
    }


async def session_json(request: Request) -> Response:
    pool, row, refused = await _own_session(request)
    if row is None:
        assert refused is not None
        return refused

    async def body() -> AsyncIterator[bytes]:
        yield b'{"session":' + orjson.dumps(_session_json(row)) + b',"messages":['
        first = True
        async for record in _messages(pool, [row.session_id]):
            yield (b"" if first else b",") + orjson.dumps(record["message"])
            first = False
        yield b"]}"

    return StreamingResponse(body(), media_type="application/json", headers=_download(row, "json"))


async def session_markdown(request: Request) -> Response:
    pool, row, refused = await _own_session(request)
    if row is None:
        assert refused is not None
        return refused

    async def body() -> AsyncIterator[bytes]:
        title = row.title or f"{row.agent_name} ({row.channel})"
        yield f"# {title}\n\n{row.channel} session `{row.session_id}`\n".encode()
        async for record in _messages(pool, [row.session_id]):
            role = role_of(record["message"]).value
            stamp = _when(record["created_at"])
            text = content_of(record["message"])
            yield f"\n**{role}** · {stamp}\n\n{text}\n".encode()

    return StreamingResponse(
        body(), media_type="text/markdown; charset=utf-8", headers=_download(row, "md")
    )


async def everything(request: Request) -> Response:
    resources, viewer, refused = await _viewer(request)
    if viewer is None:
        assert refused is not None
        return refused
    pool, user_id = resources.pool, viewer.user_id

    async def body() -> AsyncIterator[bytes]:
        async for row in _all_sessions(pool, user_id):
            head = _session_json(row)
            async for record in _messages(pool, [row.session_id]):
                line = {**head, "messageId": record["id"], "message": record["message"]}
                yield orjson.dumps(line) + b"\n"

    return StreamingResponse(
        body(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="unified-sessions.jsonl"'},
    )


async def _all_sessions(pool: asyncpg.Pool, user_id: uuid.UUID) -> AsyncIterator[SessionRow]:
    """Every session of the person (archived too), oldest first, a page at a time."""
    after: tuple[datetime, uuid.UUID] | None = None
    while True:
        if after is None:
            page = await pool.fetch(
                f"SELECT {SESSION_COLUMNS} FROM chat_sessions WHERE user_id = $1 "
                "ORDER BY created_at, id LIMIT $2",
                user_id,
                EXPORT_PAGE,
            )
        else:
            page = await pool.fetch(
                f"SELECT {SESSION_COLUMNS} FROM chat_sessions WHERE user_id = $1 "
                "AND (created_at, id) > ($2, $3) ORDER BY created_at, id LIMIT $4",
                user_id,
                *after,
                EXPORT_PAGE,
            )
        for record in page:
            yield SessionRow.from_record(record)
        if len(page) < EXPORT_PAGE:
            return
        after = (page[-1]["created_at"], page[-1]["id"])


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _download(row: SessionRow, extension: str) -> dict[str, str]:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in row.session_id)
    return {"Content-Disposition": f'attachment; filename="{safe}.{extension}"'}
