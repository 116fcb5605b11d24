"""Telegram redelivers an update it is not sure was handled; one is stored and answered once,
whatever happened in the chat in between (a /new above all)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

import asyncpg

from bots import texts
from graphql_api.core.agent import AgentError, ChatTurn, EchoAgent
from graphql_api.core.runtime import Resources
from graphql_api.core.settings import Settings
from tests.conftest import GraphQLClient, Person, make_person

from .conftest import BotHarness, TelegramUser, harness, history, link, telegram_sessions


class CountingEcho(EchoAgent):
    """The echo agent, noting each message it is asked about; fails the first `failures` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.calls: list[str] = []
        self.failures = failures

    async def reply(self, history: Sequence[ChatTurn], message: str, *, agent_name: str) -> str:
        self.calls.append(message)
        if len(self.calls) <= self.failures:
            raise AgentError("the agent is down for a moment")
        return await super().reply(history, message, agent_name=agent_name)


def said(settings: Settings, text: str, number: int) -> str:
    return f"[{settings.default_agent_name}] You said: {text} (message {number} in this session)"


async def test_a_message_redelivered_after_new_changes_nothing(
    settings: Settings,
    resources: Resources,
    graphql: GraphQLClient,
    person: Person,
    pool: asyncpg.Pool,
) -> None:
    agent = CountingEcho()
    async with harness(settings, replace(resources, agent=agent)) as tg:
        user = TelegramUser()
        await link(tg, graphql, user, person)
        m = await tg.send(user, "M")
        await tg.send(user, "/new")

        await tg.feed(m)  # Telegram was not sure and sends M again
        await tg.send(user, "after")

        old, new = await telegram_sessions(pool, person.user_id)
        assert await history(pool, old["session_id"]) == [
            ("human", "M"),
            ("ai", said(settings, "M", 1)),
        ]
        assert await history(pool, new["session_id"]) == [
            ("human", "after"),
            ("ai", said(settings, "after", 1)),
        ]
        assert agent.calls == ["M", "after"]  # the agent was not asked about M again
        # No second reply: the answer to M was delivered the first time.
        assert tg.texts_to(user)[1:] == [
            said(settings, "M", 1),
            texts.NEW_SESSION,
            said(settings, "after", 1),
        ]
        assert (old["is_active"], new["is_active"]) == (False, True)


async def test_a_new_redelivered_after_a_later_new_does_not_go_back(
    settings: Settings,
    resources: Resources,
    graphql: GraphQLClient,
    person: Person,
    pool: asyncpg.Pool,
) -> None:
    async with harness(settings, resources) as tg:
        user = TelegramUser()
        await link(tg, graphql, user, person)
        await tg.send(user, "one")
        first_new = await tg.send(user, "/new")
        await tg.send(user, "two")
        await tg.send(user, "/new")
        await tg.send(user, "three")

        await tg.feed(first_new)
        await tg.send(user, "four")

        sessions = await telegram_sessions(pool, person.user_id)
        assert [
            [c for k, c in await history(pool, s["session_id"]) if k == "human"] for s in sessions
        ] == [
            ["one"],
            ["two"],
            ["three", "four"],
        ]
        assert [s["is_active"] for s in sessions] == [False, False, True]
        assert tg.texts_to(user).count(texts.NEW_SESSION) == 2


async def test_an_unanswered_message_redelivered_after_new_is_answered_where_it_was_stored(
    settings: Settings,
    resources: Resources,
    graphql: GraphQLClient,
    person: Person,
    pool: asyncpg.Pool,
) -> None:
    agent = CountingEcho(failures=1)
    async with harness(settings, replace(resources, agent=agent)) as tg:
        user = TelegramUser()
        await link(tg, graphql, user, person)
        m = await tg.send(user, "M")
        assert tg.last_text_to(user) == texts.AGENT_FAILED
        await tg.send(user, "/new")

        await tg.feed(m)
        assert tg.last_text_to(user) == said(settings, "M", 1)
        await tg.send(user, "after")

        old, new = await telegram_sessions(pool, person.user_id)
        assert await history(pool, old["session_id"]) == [
            ("human", "M"),
            ("ai", said(settings, "M", 1)),
        ]
        assert await history(pool, new["session_id"]) == [
            ("human", "after"),
            ("ai", said(settings, "after", 1)),
        ]
        # Answering it late does not bring the old conversation back.
        assert (old["is_active"], new["is_active"]) == (False, True)
        assert agent.calls == ["M", "M", "after"]


async def test_after_unlinking_and_linking_elsewhere_a_redelivery_is_left_alone(
    tg: BotHarness,
    settings: Settings,
    graphql: GraphQLClient,
    person: Person,
    pool: asyncpg.Pool,
) -> None:
    """A message stays the person's it was sent to: the Telegram account, linked to someone else
    now, never writes it into their sessions (nor into the first person's again)."""
    user = TelegramUser()
    await link(tg, graphql, user, person)
    m = await tg.send(user, "M")
    await tg.send(user, "/unlink")
    someone_else = make_person()
    await link(tg, graphql, user, someone_else)
    sent_before = len(tg.texts_to(user))

    await tg.feed(m)
    await tg.send(user, "hello")

    [first] = await telegram_sessions(pool, person.user_id)
    assert await history(pool, first["session_id"]) == [
        ("human", "M"),
        ("ai", said(settings, "M", 1)),
    ]
    [theirs] = await telegram_sessions(pool, someone_else.user_id)
    assert await history(pool, theirs["session_id"]) == [
        ("human", "hello"),
        ("ai", said(settings, "hello", 1)),
    ]
    assert tg.texts_to(user)[sent_before:] == [said(settings, "hello", 1)]


async def test_copies_of_an_update_handled_at_once_are_stored_and_answered_once(
    settings: Settings,
    resources: Resources,
    graphql: GraphQLClient,
    person: Person,
    pool: asyncpg.Pool,
) -> None:
    """A redelivery that arrives while the first copy is still being handled (two webhook
    requests, a restarted poller): one message stored, one turn, one reply."""
    agent = CountingEcho()
    async with harness(settings, replace(resources, agent=agent)) as tg:
        user = TelegramUser()
        await link(tg, graphql, user, person)
        before = len(tg.texts_to(user))
        first = user.update("only once")
        await asyncio.gather(*(tg.feed(first, settle=False) for _ in range(4)))
        await tg.settle(user.chat_id)

        (session,) = await telegram_sessions(pool, person.user_id)
        assert await history(pool, session["session_id"]) == [
            ("human", "only once"),
            ("ai", said(settings, "only once", 1)),
        ]
        assert agent.calls == ["only once"]
        assert tg.texts_to(user)[before:] == [said(settings, "only once", 1)]
