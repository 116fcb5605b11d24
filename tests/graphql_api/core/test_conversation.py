"""The one conversation turn: ordering within a session, redelivery, what reaches the store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import asyncpg
import pytest

from graphql_api.core import conversation, messages
from graphql_api.core.agent import AgentError, ChatTurn, EchoAgent
from graphql_api.core.db import create_pool
from graphql_api.core.models import Role
from graphql_api.core.settings import Settings
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


# --- what a turn costs -----------------------------------------------------------------------

# A new message's turn when no other turn of its session runs:
#   1. store the person's message and take the session's turn lease (one statement)
#   2. read the history the agent sees (after the lease, so it sees the turns ahead of it)
#   3. store the reply, touch the session and end the lease (one statement), or record the
#      failure and end the lease (one statement)
STATEMENTS_PER_TURN = 3
# 1 and 2 on one connection; none held while the agent answers; 3 on another.
ACQUIRES_PER_TURN = 2
# A redelivery whose reply is stored: the first statement finds both and ends the turn.
STATEMENTS_PER_ANSWERED_REDELIVERY = 1


@dataclass
class Counted:
    """A pool whose statements (asyncpg's query logger) and acquires are counted."""

    pool: asyncpg.Pool
    statements: list[str] = field(default_factory=list)
    acquires: int = 0

    @contextlib.contextmanager
    def counting(self) -> Any:
        self.statements.clear()
        self.acquires = 0
        yield self


@pytest.fixture
async def counted(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Counted]:
    log: list[str] = []

    def record(entry: Any) -> None:
        if not entry.query.startswith("SELECT pg_advisory_unlock_all()"):  # the pool's reset
            log.append(entry.query)

    async def init(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(record)

    pool = await create_pool(settings.require_database_url(), min_size=1, max_size=2, init=init)
    counted = Counted(pool, log)
    acquire = asyncpg.pool.Pool.acquire

    def counting_acquire(self: asyncpg.Pool, *args: Any, **kwargs: Any) -> Any:
        if self is pool:
            counted.acquires += 1
        return acquire(self, *args, **kwargs)

    monkeypatch.setattr(asyncpg.pool.Pool, "acquire", counting_acquire)
    try:
        # Warm both connections: nothing asyncpg does once per connection is counted below.
        async with pool.acquire() as a, pool.acquire() as b:
            for conn in (a, b):
                await conn.fetchval("SELECT 1")
        yield counted
    finally:
        monkeypatch.undo()
        await pool.close()


class FailingAgent:
    async def reply(self, history: Sequence[ChatTurn], message: str, *, agent_name: str) -> str:
        raise AgentError("the agent could not be reached")

    async def aclose(self) -> None:
        return None


@pytest.mark.parametrize("key", [None, "tg:7:7"])
async def test_a_turn_is_three_statements_on_two_short_connection_uses(
    counted: Counted, key: str | None
) -> None:
    session = await make_session(counted.pool, make_person().user_id)
    await conversation.run_turn(counted.pool, EchoAgent(), session, "warm up")

    with counted.counting():
        turn = await conversation.run_turn(
            counted.pool, EchoAgent(), session, "hello", idempotency_key=key
        )

    assert len(counted.statements) == STATEMENTS_PER_TURN, counted.statements
    assert counted.acquires == ACQUIRES_PER_TURN
    assert turn.failure is None
    assert turn.reply is not None and "hello" in turn.reply.content
    assert turn.user_message.content == "hello" and turn.user_message.id < turn.reply.id
    # The session as the turn's own write left it: nothing is read back afterwards.
    assert turn.session.updated_at > session.updated_at and turn.session.last_error is None
    stored = await _stored(counted.pool, session.session_id)
    assert [kind for kind, _ in stored] == ["human", "ai", "human", "ai"]
    assert stored[2:] == [("human", "hello"), ("ai", turn.reply.content)]


async def test_a_failed_turn_is_an_outcome_of_three_statements(counted: Counted) -> None:
    session = await make_session(counted.pool, make_person().user_id)
    await conversation.run_turn(counted.pool, EchoAgent(), session, "warm up")

    with counted.counting():
        turn = await conversation.run_turn(
            counted.pool, FailingAgent(), session, "are you there?", is_active_after=False
        )

    assert len(counted.statements) == STATEMENTS_PER_TURN, counted.statements
    assert counted.acquires == ACQUIRES_PER_TURN
    assert turn.reply is None
    assert turn.failure == "the agent could not be reached"
    assert turn.session.last_error == turn.failure and turn.session.last_error_at is not None
    assert turn.session.is_active is False
    assert turn.user_message.content == "are you there?"
    assert (await _stored(counted.pool, session.session_id))[-1] == ("human", "are you there?")


async def test_an_answered_redelivery_is_one_statement(counted: Counted) -> None:
    session = await make_session(counted.pool, make_person().user_id)
    first = await conversation.run_turn(
        counted.pool, EchoAgent(), session, "once", idempotency_key="web:m-1"
    )
    agent = GatedAgent()

    with counted.counting():
        again = await conversation.run_turn(
            counted.pool, agent, session, "once", idempotency_key="web:m-1"
        )

    assert len(counted.statements) == STATEMENTS_PER_ANSWERED_REDELIVERY, counted.statements
    assert counted.acquires == 1
    assert agent.calls == []
    assert (again.user_message, again.reply, again.failure) == (
        first.user_message,
        first.reply,
        None,
    )
    assert len(await _stored(counted.pool, session.session_id)) == 2


async def test_a_redelivery_after_a_failure_runs_the_agent_and_stores_one_reply(
    pool: asyncpg.Pool,
) -> None:
    session = await make_session(pool, make_person().user_id)
    failed = await conversation.run_turn(
        pool, FailingAgent(), session, "retry me", idempotency_key="web:m-2"
    )
    assert failed.reply is None and failed.failure is not None

    again = await conversation.run_turn(
        pool, EchoAgent(), session, "retry me", idempotency_key="web:m-2"
    )

    assert again.failure is None and again.reply is not None
    assert again.user_message == failed.user_message
    assert again.session.last_error is None
    assert [kind for kind, _ in await _stored(pool, session.session_id)] == ["human", "ai"]


async def _until_waiting_on_locks(pool: asyncpg.Pool, count: int) -> None:
    async with asyncio.timeout(10):
        while (
            await pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            < count
        ):
            await asyncio.sleep(0.02)


async def test_a_reader_resuming_after_what_it_saw_misses_no_message(pool: asyncpg.Pool) -> None:
    """Two writers to one session, the first held up mid-statement (its session row is locked:
    it names the session); the second not needing that lock. Whatever a reader sees meanwhile,
    everything after the last id it saw is the rest: a later id never commits first."""
    session = await make_session(pool, make_person().user_id)
    await pool.execute(
        "UPDATE chat_sessions SET title = NULL WHERE session_id = $1", session.session_id
    )
    untitled, titled = replace(session, title=None), replace(session, title="named")
    async with pool.acquire() as blocker:
        held = blocker.transaction()
        await held.start()
        await blocker.execute(
            "SELECT FROM chat_sessions WHERE session_id = $1 FOR NO KEY UPDATE", session.session_id
        )
        first = asyncio.create_task(
            conversation.store_message(pool, untitled, "first", idempotency_key="1", via="web")
        )
        await _until_waiting_on_locks(pool, 1)
        second = asyncio.create_task(
            conversation.store_message(pool, titled, "second", idempotency_key="2", via="web")
        )
        await asyncio.wait([second], timeout=0.5)  # it commits now, or waits its turn
        seen = await messages.page_after(pool, session.session_id, 0, 10)
        await held.rollback()
    await first, await second
    last_seen = max((m.id for m in seen), default=0)
    rest = await messages.page_after(pool, session.session_id, last_seen, 10)

    assert sorted(m.content for m in seen + rest) == ["first", "second"]


async def test_messages_written_with_their_own_ids_keep_them(pool: asyncpg.Pool) -> None:
    """Only the service's own writes take turns per session: a restore that gives the ids
    (below the session's newest) stores them as given, and a duplicate id is still refused."""
    session = await make_session(pool, make_person().user_id)
    for n in range(4):
        await conversation.store_message(pool, session, f"m{n}", idempotency_key=f"{n}", via="web")
    ids = [m.id for m in await messages.page_after(pool, session.session_id, 0, 10)]
    restored = ids[:2]
    await pool.execute("DELETE FROM chat_message_history WHERE id = ANY($1::bigint[])", restored)
    for message_id in restored:
        await pool.execute(
            "INSERT INTO chat_message_history (id, session_id, message) VALUES "
            '($1, $2, \'{"type": "human", "data": {"content": "restored"}}\')',
            message_id,
            session.session_id,
        )
    assert [m.id for m in await messages.page_after(pool, session.session_id, 0, 10)] == ids
    with pytest.raises(asyncpg.UniqueViolationError):
        await pool.execute(
            "INSERT INTO chat_message_history (id, session_id, message) VALUES ($1, $2, '{}')",
            restored[0],
            session.session_id,
        )
