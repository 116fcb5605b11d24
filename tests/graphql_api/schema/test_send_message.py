"""sendMessage: a conversation turn from the web, and what happens when the agent fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import pytest

from bots.channel import TELEGRAM
from graphql_api.app import create_app
from graphql_api.core.agent import OpenAICompatibleAgent
from graphql_api.core.embedded import free_port
from graphql_api.core.runtime import Resources
from graphql_api.core.settings import Settings
from tests.conftest import GraphQLClient, Person, make_person, running_server
from tests.graphql_api.seed import make_session
from workers.channel import SCHEDULED

SEND = """
mutation($input: SendMessageInput!) {
  sendMessage(input: $input) {
    session { sessionId channel lastError updatedAt }
    userMessage { id role content }
    reply { id role content }
  }
}
"""


async def _history(pool: asyncpg.Pool, session_id: str) -> list[tuple[str, str]]:
    rows = await pool.fetch(
        "SELECT message FROM chat_message_history WHERE session_id = $1 ORDER BY id", session_id
    )
    return [(r["message"]["type"], r["message"]["data"]["content"]) for r in rows]


async def test_without_a_session_id_a_new_web_session_starts(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    data = (await graphql.ok(SEND, {"input": {"content": "hello"}}, token=person.token))[
        "sendMessage"
    ]
    assert data["session"]["channel"] == "WEB"
    assert data["userMessage"]["role"] == "USER"
    assert data["reply"]["role"] == "ASSISTANT"
    assert "hello" in data["reply"]["content"]
    session_id = data["session"]["sessionId"]
    assert await _history(pool, session_id) == [
        ("human", "hello"),
        ("ai", data["reply"]["content"]),
    ]

    again = await graphql.ok(
        SEND, {"input": {"sessionId": session_id, "content": "more"}}, token=person.token
    )
    assert again["sendMessage"]["session"]["updatedAt"] > data["session"]["updatedAt"]
    assert "message 2 in this session" in again["sendMessage"]["reply"]["content"]
    assert len(await _history(pool, session_id)) == 4


async def test_a_retried_client_message_is_stored_once(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    session = await make_session(pool, person.user_id)
    variables = {
        "input": {"sessionId": session.session_id, "content": "once", "clientMessageId": "c-1"}
    }
    first = await graphql.ok(SEND, variables, token=person.token)
    second = await graphql.ok(SEND, variables, token=person.token)
    assert first == second
    assert len(await _history(pool, session.session_id)) == 2


async def test_a_retried_first_message_lands_in_one_new_session(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    variables = {"input": {"content": "first words", "clientMessageId": "first-1"}}
    first = await graphql.ok(SEND, variables, token=person.token)
    retry = await graphql.ok(SEND, variables, token=person.token)
    for part in ("userMessage", "reply"):
        assert retry["sendMessage"][part] == first["sendMessage"][part]
    assert (
        retry["sendMessage"]["session"]["sessionId"] == first["sendMessage"]["session"]["sessionId"]
    )
    session_id = first["sendMessage"]["session"]["sessionId"]
    assert len(await _history(pool, session_id)) == 2
    count = await pool.fetchval(
        "SELECT count(*) FROM chat_sessions WHERE user_id = $1", person.user_id
    )
    assert count == 1
    # Another person using the same client id gets a session of their own.
    other = make_person()
    theirs = await graphql.ok(SEND, variables, token=other.token)
    assert theirs["sendMessage"]["session"]["sessionId"] != session_id


async def test_copies_of_a_first_message_in_flight_at_once_store_it_once(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    """A client retrying before its first attempt answered: every copy races to create the
    same new session and store the same message; one session, one message, one reply, and
    every copy gets that same answer."""
    variables = {"input": {"content": "all at once", "clientMessageId": "burst-1"}}
    answers = await asyncio.gather(
        *(graphql.ok(SEND, variables, token=person.token) for _ in range(8))
    )
    first = answers[0]["sendMessage"]
    for answer in answers[1:]:
        assert answer["sendMessage"]["session"]["sessionId"] == first["session"]["sessionId"]
        for part in ("userMessage", "reply"):
            assert answer["sendMessage"][part] == first[part]
    assert first["reply"] is not None
    assert len(await _history(pool, first["session"]["sessionId"])) == 2
    count = await pool.fetchval(
        "SELECT count(*) FROM chat_sessions WHERE user_id = $1", person.user_id
    )
    assert count == 1


async def test_a_telegram_or_scheduled_session_is_continued_from_the_web(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    """Continue anywhere: an ordinary turn, each message marked as having come in by the web.
    (Delivery of the reply to Telegram: tests/workers/test_outbox.py.)"""
    for channel in (TELEGRAM, SCHEDULED):
        session = await make_session(pool, person.user_id, channel=channel)
        result = await graphql.ok(
            SEND, {"input": {"sessionId": session.session_id, "content": "hi"}}, token=person.token
        )
        assert result["sendMessage"]["reply"] is not None
        assert [role for role, _ in await _history(pool, session.session_id)] == ["human", "ai"]
        vias = await pool.fetch(
            "SELECT via FROM chat_message_history WHERE session_id = $1", session.session_id
        )
        assert [r["via"] for r in vias] == ["web", "web"]


async def test_sending_into_someone_elses_session_looks_like_a_missing_one(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    theirs = await make_session(pool, make_person().user_id)
    result = await graphql(
        SEND, {"input": {"sessionId": theirs.session_id, "content": "hi"}}, token=person.token
    )
    assert result.codes == ["NOT_FOUND"]
    assert await _history(pool, theirs.session_id) == []


async def test_content_is_validated(graphql: GraphQLClient, person: Person) -> None:
    for content in ("", "   \n ", "x" * 16_001, "nul \x00 inside"):
        result = await graphql(SEND, {"input": {"content": content}}, token=person.token)
        assert result.codes == ["BAD_USER_INPUT"]
        assert result.errors[0]["extensions"]["field"] == "content"


@pytest.fixture
async def failing_agent_url(settings: Settings, resources: Resources) -> AsyncIterator[str]:
    """The app with a real OpenAI-compatible agent pointed at a port where nothing listens."""
    agent = OpenAICompatibleAgent(
        base_url=f"http://127.0.0.1:{free_port()}/v1", model="m", api_key=None, timeout=5
    )
    broken = replace(resources, agent=agent)
    async with running_server(create_app(settings, broken)) as url:
        yield url
    await agent.aclose()


async def test_when_the_agent_fails_nothing_is_lost(
    failing_agent_url: str, graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    broken = GraphQLClient(failing_agent_url)
    result = await broken(SEND, {"input": {"content": "are you there?"}}, token=person.token)

    assert result.codes == ["AGENT_FAILED"]
    assert result.errors[0]["path"] == ["sendMessage", "reply"]
    payload = result.data["sendMessage"]
    assert payload["reply"] is None
    assert payload["userMessage"]["content"] == "are you there?"
    assert "could not be reached" in payload["session"]["lastError"]
    session_id = payload["session"]["sessionId"]
    assert await _history(pool, session_id) == [("human", "are you there?")]

    # The next successful turn (healthy agent) clears the recorded failure.
    recovered = await graphql.ok(
        SEND, {"input": {"sessionId": session_id, "content": "again"}}, token=person.token
    )
    assert recovered["sendMessage"]["session"]["lastError"] is None
