"""Export over HTTP with the bearer token: a session as JSON and Markdown, everything as JSONL."""

from __future__ import annotations

import json

import asyncpg
import httpx

from graphql_api.core import messages
from graphql_api.core.models import Role
from tests.conftest import Person, make_person
from tests.graphql_api.seed import add_messages, add_raw_message, make_session


def auth(person: Person) -> dict[str, str]:
    return {"Authorization": f"Bearer {person.token}"}


async def test_a_session_exports_as_langchain_json_and_markdown(
    http: httpx.AsyncClient, pool: asyncpg.Pool, person: Person
) -> None:
    session = await make_session(pool, person.user_id)
    await add_messages(pool, session.session_id, 3)
    parts = {"type": "human", "data": {"type": "human", "content": [{"type": "text", "text": "a"}]}}
    await add_raw_message(pool, session.session_id, parts)

    answer = await http.get(f"/export/sessions/{session.session_id}.json", headers=auth(person))
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert "attachment" in answer.headers["content-disposition"]
    body = answer.json()
    assert body["session"]["sessionId"] == session.session_id
    assert [m["data"]["content"] for m in body["messages"][:3]] == [
        "message 1",
        "message 2",
        "message 3",
    ]
    assert [m["type"] for m in body["messages"]] == ["human", "ai", "human", "human"]
    assert body["messages"][3] == parts  # stored JSON, as it is

    markdown = await http.get(f"/export/sessions/{session.session_id}.md", headers=auth(person))
    assert markdown.status_code == 200 and markdown.headers["content-type"].startswith(
        "text/markdown"
    )
    text = markdown.text
    assert text.index("message 1") < text.index("message 2") < text.index("message 3")
    assert "**user**" in text and "**assistant**" in text


async def test_everything_streams_as_jsonl_across_pages(
    http: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    person = make_person()
    first = await make_session(pool, person.user_id)
    second = await make_session(pool, person.user_id)
    for n in range(1005):  # more than one page of EXPORT_PAGE rows
        await messages.append_message(pool, first.session_id, Role.USER, f"m{n}")
    await add_messages(pool, second.session_id, 2)
    other = await make_session(pool, make_person().user_id)
    await add_messages(pool, other.session_id, 1)

    answer = await http.get("/export/all.jsonl", headers=auth(person))
    assert answer.status_code == 200
    lines = [json.loads(line) for line in answer.text.splitlines()]
    assert len(lines) == 1007
    assert {line["sessionId"] for line in lines} == {first.session_id, second.session_id}
    ids = [line["messageId"] for line in lines if line["sessionId"] == first.session_id]
    assert ids == sorted(ids) and len(set(ids)) == 1005  # oldest first, none twice


async def test_without_a_token_401_and_another_persons_session_404(
    http: httpx.AsyncClient, pool: asyncpg.Pool, person: Person
) -> None:
    theirs = await make_session(pool, make_person().user_id)
    await add_messages(pool, theirs.session_id, 1)
    for path in (f"/export/sessions/{theirs.session_id}.json", "/export/all.jsonl"):
        assert (await http.get(path)).status_code == 401
        assert (await http.get(path, headers={"Authorization": "Bearer nope"})).status_code == 401
    for suffix in ("json", "md"):
        foreign = await http.get(
            f"/export/sessions/{theirs.session_id}.{suffix}", headers=auth(person)
        )
        missing = await http.get(f"/export/sessions/no-such.{suffix}", headers=auth(person))
        assert foreign.status_code == missing.status_code == 404
        assert foreign.json() == missing.json()
