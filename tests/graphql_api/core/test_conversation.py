"""The one conversation turn: ordering within a session, redelivery, what reaches the store."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg

from graphql_api.core import conversation
from graphql_api.core.agent import ChatTurn
from graphql_api.core.models import Role
from tests.conftest import make_person
from tests.graphql_api.seed import make_session


class GatedAgent:
    """An agent that answers when the test opens its gate, and records what it was shown."""

    def __init__(self, reply_prefix: str = "re: ") -> None:
        self.calls: list[tuple[list[tuple[Role, str]], str]] = []
        self.called = asyncio.Event()
        self.gate = asyncio.Event()
        self.reply_prefix = reply_prefix

    async def reply(self, history: Sequence[ChatTurn], message: str, *, agent_name: str) -> str:
        self.calls.append(([(t.role, t.content) for t in history], message))
        self.called.set()
        await self.gate.wait()
        return self.reply_prefix + message

    async def aclose(self) -> None:
        return None


async def _stored(pool: asyncpg.Pool, session_id: str) -> list[tuple[str, str]]:
    rows = await pool.fetch(
        "SELECT message FROM chat_message_history WHERE session_id = $1 ORDER BY id", session_id
    )
    return [(r["message"]["type"], r["message"]["data"]["content"]) for r in rows]


async def test_a_turn_sees_the_reply_to_the_message_before_it(pool: asyncpg.Pool) -> None:
    session = await make_session(pool, make_person().user_id)
    agent = GatedAgent()
    first = asyncio.create_task(conversation.run_turn(pool, agent, session, "B"))
    await agent.called.wait()
    second = asyncio.create_task(conversation.run_turn(pool, agent, session, "C"))
    await asyncio.sleep(0.2)  # C's message is stored meanwhile; its turn must wait for B's
    assert len(agent.calls) == 1
    assert ("human", "C") in await _stored(pool, session.session_id)

    agent.gate.set()
    await asyncio.gather(first, second)

    [(_, b), (c_history, c)] = agent.calls
    assert (b, c) == ("B", "C")
    assert c_history == [(Role.USER, "B"), (Role.ASSISTANT, "re: B")]
    assert await _stored(pool, session.session_id) == [
        ("human", "B"),
        ("human", "C"),
        ("ai", "re: B"),
        ("ai", "re: C"),
    ]


async def test_a_redelivery_in_flight_does_not_run_the_agent_twice(pool: asyncpg.Pool) -> None:
    session = await make_session(pool, make_person().user_id)
    agent = GatedAgent()
    first = asyncio.create_task(
        conversation.run_turn(pool, agent, session, "once", idempotency_key="tg:1:1")
    )
    await agent.called.wait()
    again = asyncio.create_task(
        conversation.run_turn(pool, agent, session, "once", idempotency_key="tg:1:1")
    )
    await asyncio.sleep(0.2)
    agent.gate.set()
    results = await asyncio.gather(first, again)

    assert len(agent.calls) == 1
    assert results[0].reply.id == results[1].reply.id
    assert await _stored(pool, session.session_id) == [("human", "once"), ("ai", "re: once")]


async def test_a_reply_with_nul_characters_is_stored_without_them(pool: asyncpg.Pool) -> None:
    session = await make_session(pool, make_person().user_id)
    agent = GatedAgent(reply_prefix="a\x00b ")
    agent.gate.set()
    turn = await conversation.run_turn(pool, agent, session, "hi")
    assert turn.reply.content == "ab hi"
