"""One chat's messages are stored, answered and delivered in Telegram's order, however many arrive
at once: by long polling (one getUpdates batch) and by the webhook (concurrent requests)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from urllib.parse import urlsplit

import asyncpg
import pytest
from starlette.datastructures import Secret

from bots import texts, turns
from bots.main import polling_task
from bots.webhook import SECRET_HEADER, WEBHOOK_PATH
from graphql_api.app import create_app
from graphql_api.core.agent import ChatTurn, EchoAgent
from graphql_api.core.runtime import Resources
from graphql_api.core.settings import Settings
from tests.conftest import GraphQLClient, Person, make_person, running_server

from .conftest import (
    BotHarness,
    FakeTelegram,
    TelegramUser,
    answering,
    bot_settings,
    harness,
    history,
    link,
)

ROUNDS = 5
BURST = 5
SECRET = "ordering-secret-0123456789abcdef"


@pytest.fixture
async def tg(settings: Settings, resources: Resources) -> AsyncIterator[BotHarness]:
    """Only to link accounts: this module's tests answer with their own worker (`answering`),
    and a second worker on the same database would take their deliveries to its own Bot API."""
    async with harness(settings, resources, answers=False) as bot:
        yield bot


class SlowEcho(EchoAgent):
    """The echo agent, taking a varying moment to answer, as a real model does: a turn that
    started late but answers fast would overtake an earlier one."""

    async def reply(self, history: Sequence[ChatTurn], message: str, *, agent_name: str) -> str:
        await asyncio.sleep(random.uniform(0.002, 0.03))
        return await super().reply(history, message, agent_name=agent_name)


async def session_of(pool: asyncpg.Pool, user: TelegramUser) -> str:
    session_id = await pool.fetchval(
        "SELECT session_id FROM telegram_chats WHERE telegram_chat_id = $1", user.chat_id
    )
    assert session_id is not None
    return session_id


def expected_turns(texts: list[str], agent_name: str) -> list[tuple[str, str]]:
    """Each message followed by its answer; the echo agent counts the messages before it."""
    turns: list[tuple[str, str]] = []
    for number, text in enumerate(texts, start=1):
        turns.append(("human", text))
        turns.append(("ai", f"[{agent_name}] You said: {text} (message {number} in this session)"))
    return turns


async def assert_in_order(
    pool: asyncpg.Pool, user: TelegramUser, sent: list[str], delivered: list[str], agent_name: str
) -> None:
    """Messages stored in Telegram's order, each answered in turn (the echo numbers them) after
    it, and the answers delivered in that order. Messages that came while the agent was busy are
    stored as they came, before the replies to earlier ones (a chat shows them so too)."""
    expected = expected_turns(sent, agent_name)
    stored = await history(pool, await session_of(pool, user))
    replies = [content for kind, content in expected if kind == "ai"]
    assert [c for kind, c in stored if kind == "human"] == sent
    assert [c for kind, c in stored if kind == "ai"] == replies
    for question, answer in zip(sent, replies, strict=True):
        assert stored.index(("human", question)) < stored.index(("ai", answer))
    assert delivered == replies


async def test_a_polled_burst_from_one_chat_is_handled_in_order(
    settings: Settings,
    resources: Resources,
    fake_bot_api: tuple[FakeTelegram, str],
    tg: BotHarness,
    graphql: GraphQLClient,
    person: Person,
    pool: asyncpg.Pool,
) -> None:
    fake, api_url = fake_bot_api
    user = TelegramUser()
    await link(tg, graphql, user, person)
    polled = bot_settings(settings, telegram_api_base=api_url)
    slow = replace(resources, agent=SlowEcho())
    polling = asyncio.create_task(polling_task(polled, slow))
    sent: list[str] = []
    try:
        async with answering(polled, slow):
            for round_ in range(ROUNDS):
                # Queued together, so they come back in one getUpdates answer, in update_id order.
                burst = [f"round {round_}, message {i}" for i in range(BURST)]
                for text in burst:
                    fake.queue_update(user.update(text))
                sent += burst
                await fake.wait_until(lambda n=len(sent): len(fake.texts_to(user.chat_id)) == n)
    finally:
        polling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await polling

    await assert_in_order(
        pool, user, sent, fake.texts_to(user.chat_id), settings.default_agent_name
    )


async def test_another_chat_is_not_held_up_by_a_busy_one(
    settings: Settings,
    resources: Resources,
    fake_bot_api: tuple[FakeTelegram, str],
    tg: BotHarness,
    graphql: GraphQLClient,
    person: Person,
    pool: asyncpg.Pool,
) -> None:
    """Different chats still run concurrently: while one chat's turn waits on its agent, another
    chat's message is answered."""
    fake, api_url = fake_bot_api
    busy, other = TelegramUser(), TelegramUser()
    gate = asyncio.Event()

    class WaitsForBusy(EchoAgent):
        async def reply(self, history: Sequence[ChatTurn], message: str, *, agent_name: str) -> str:
            if message == "busy":
                await gate.wait()
            return await super().reply(history, message, agent_name=agent_name)

    await link(tg, graphql, busy, person)
    await link(tg, graphql, other, make_person())
    polled = bot_settings(settings, telegram_api_base=api_url)
    waiting = replace(resources, agent=WaitsForBusy())
    polling = asyncio.create_task(polling_task(polled, waiting))
    try:
        async with answering(polled, waiting):
            fake.queue_update(busy.update("busy"))
            fake.queue_update(other.update("quick"))
            await fake.wait_until(lambda: len(fake.texts_to(other.chat_id)) == 1)
            assert fake.texts_to(busy.chat_id) == []
            gate.set()
            await fake.wait_until(lambda: len(fake.texts_to(busy.chat_id)) == 1)
    finally:
        gate.set()
        polling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await polling


# --- the webhook ------------------------------------------------------------------------------


@pytest.fixture
async def webhook_url(
    settings: Settings, resources: Resources, fake_bot_api: tuple[FakeTelegram, str]
) -> AsyncIterator[str]:
    _, api_url = fake_bot_api
    webhook_settings = bot_settings(
        settings,
        telegram_webhook=True,
        telegram_webhook_secret=Secret(SECRET),
        telegram_api_base=api_url,
    )
    slow = replace(resources, settings=webhook_settings, agent=SlowEcho())
    async with (
        answering(webhook_settings, slow),
        running_server(create_app(webhook_settings, slow)) as url,
    ):
        yield url


async def post_in_order(url: str, updates: list[dict[str, object]]) -> list[int]:
    """POST each update on its own connection, all in flight at once, as Telegram does with
    max_connections > 1. Every connection is open before the first request is written, and each
    request is written whole before the next, so they reach the server in this order."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    connections = [await asyncio.open_connection(parts.hostname, parts.port) for _ in updates]
    for (_, writer), update in zip(connections, updates, strict=True):
        body = json.dumps(update).encode()
        head = (
            f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"{SECRET_HEADER}: {SECRET}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()

    async def status(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
        try:
            response = await reader.read()  # Connection: close, so up to EOF
        finally:
            writer.close()
            await writer.wait_closed()
        return int(response.split(b" ", 2)[1])

    return list(await asyncio.gather(*(status(r, w) for r, w in connections)))


async def test_concurrent_webhook_requests_from_one_chat_are_handled_in_order(
    webhook_url: str,
    fake_bot_api: tuple[FakeTelegram, str],
    settings: Settings,
    tg: BotHarness,
    graphql: GraphQLClient,
    person: Person,
    pool: asyncpg.Pool,
) -> None:
    fake, _ = fake_bot_api
    user = TelegramUser()
    await link(tg, graphql, user, person)
    sent: list[str] = []
    for round_ in range(ROUNDS):
        burst = [f"round {round_}, message {i}" for i in range(BURST)]
        assert (
            await post_in_order(webhook_url, [user.update(text) for text in burst]) == [200] * BURST
        )
        sent += burst
    await fake.wait_until(lambda: len(fake.texts_to(user.chat_id)) == len(sent))

    await assert_in_order(
        pool, user, sent, fake.texts_to(user.chat_id), settings.default_agent_name
    )


class GatedEcho(EchoAgent):
    """The echo agent, holding its answer to GATED until the test opens the gate."""

    GATED = "a long question"

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.gate = asyncio.Event()

    async def reply(self, history: Sequence[ChatTurn], message: str, *, agent_name: str) -> str:
        if message == self.GATED:
            self.started.set()
            await self.gate.wait()
        return await super().reply(history, message, agent_name=agent_name)


async def test_a_new_session_mid_turn_keeps_the_chat_in_order(
    resources: Resources, tg: BotHarness, graphql: GraphQLClient, person: Person
) -> None:
    """/new while the agent answers: the next message waits in a session no turn holds. The
    worker's sweep must not take it for a lost one and queue the chat again: a second job would
    count a try of the first message it only waits for (one try allowed here: it would be set
    aside, the person told it failed) and answer the later message ahead of it."""
    agent = GatedEcho()
    worker = replace(tg.settings, telegram_turn_tries=1)
    user = TelegramUser()
    await link(tg, graphql, user, person)
    before = len(tg.texts_to(user))
    async with answering(worker, replace(resources, settings=worker, agent=agent)):
        await tg.send(user, GatedEcho.GATED, settle=False)
        await asyncio.wait_for(agent.started.wait(), 10)
        await tg.send(user, "/new", settle=False)
        await tg.send(user, "a quick one", settle=False)
        await asyncio.sleep(turns.WAITED + turns.SWEEP_EVERY + 1)  # a sweep has looked
        agent.gate.set()
        await tg.settle(user.chat_id)

    sent = tg.texts_to(user)[before:]
    assert texts.AGENT_FAILED not in sent
    replies = [text for text in sent if "You said" in text]
    assert len(replies) == 2, sent
    assert GatedEcho.GATED in replies[0] and "a quick one" in replies[1]
    tries = await tg.pool.fetch(
        "SELECT tries FROM telegram_messages WHERE telegram_chat_id = $1 AND answered_at IS NOT "
        "NULL AND tries > 0",
        user.chat_id,
    )
    assert [r["tries"] for r in tries] == [1, 1]
