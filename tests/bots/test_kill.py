"""Durable Telegram turns survive killed processes: the worker SIGKILLed mid-turn, the bot
SIGKILLed right after storing a message, and a turn whose enqueue never reached Redis. Each time
the message is answered once, the reply stored once and delivered."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import asyncpg

from bots.dispatcher import build_dispatcher
from graphql_api.core.agent import EchoAgent
from graphql_api.core.runtime import Resources
from graphql_api.core.settings import Settings
from tests.conftest import GraphQLClient, Person

from .conftest import BOT_TOKEN, BotHarness, TelegramUser, answering, harness, history, link

COMMAND = str(Path(sys.executable).parent / "unified-sessions")


def start(tg: BotHarness, command: str, **env: str) -> subprocess.Popen[str]:
    """`unified-sessions <command>` on the harness's database, queue and Bot API stand-in."""
    settings = tg.settings
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    base.update(
        DATABASE_URL=settings.require_database_url(),
        REDIS_URL=settings.require_redis_url(),
        WORKER_QUEUE=settings.worker_queue,
        TELEGRAM_BOT_TOKEN=BOT_TOKEN,
        TELEGRAM_API_BASE=tg.api_url,
        JWT_SECRET="kill-test-secret-0123456789abcdef0123456789",
        **env,
    )
    return subprocess.Popen(
        [COMMAND, command], env=base, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


async def kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    await asyncio.to_thread(process.wait, 30)
    assert process.returncode == -signal.SIGKILL


async def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = await asyncio.to_thread(process.communicate, timeout=30)
    return output


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 60) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def session_of(pool: asyncpg.Pool, user: TelegramUser) -> str:
    found = await pool.fetchval(
        "SELECT session_id FROM telegram_chats WHERE telegram_chat_id = $1", user.chat_id
    )
    assert found is not None
    return found


async def stored(pool: asyncpg.Pool, user: TelegramUser) -> list[tuple[str, str]]:
    session_id = await pool.fetchval(
        "SELECT session_id FROM telegram_chats WHERE telegram_chat_id = $1", user.chat_id
    )
    return await history(pool, session_id) if session_id else []


async def test_a_worker_killed_mid_turn_loses_nothing(
    settings: Settings, resources: Resources, graphql: GraphQLClient, person: Person
) -> None:
    pool = resources.pool
    async with harness(settings, resources, answers=False) as tg:
        user = TelegramUser()
        await link(tg, graphql, user, person)
        # A slow streaming agent, and a short agent timeout: the dead worker's lease on the
        # session's turn (timeout + 10 s) runs out soon.
        slow = {"ECHO_WORD_DELAY": "0.3", "AGENT_TIMEOUT": "5"}
        first = start(tg, "worker", **slow)
        try:
            await tg.send(user, "one two three four five six seven eight", settle=False)
            session_id = await session_of(pool, user)
            await eventually(lambda: _has_lease(pool, session_id))  # the turn is running
            await asyncio.sleep(1.0)  # the agent is mid-answer
        finally:
            await kill(first)
        assert await stored(pool, user) == [("human", "one two three four five six seven eight")]

        second = start(tg, "worker", **slow)
        try:
            await tg.settle(user.chat_id, timeout=90)
        finally:
            output = await stop(second)
        turns = await stored(pool, user)
        assert [kind for kind, _ in turns] == ["human", "ai"], output
        assert turns[1][1] in tg.texts_to(user)  # delivered (at least once)
        assert await _delivery_status(pool, user) == ["sent"]


async def test_a_bot_killed_after_storing_a_message_loses_nothing(
    settings: Settings, resources: Resources, graphql: GraphQLClient, person: Person
) -> None:
    pool = resources.pool
    slow = replace(resources, agent=EchoAgent(word_delay=0.2))
    async with harness(settings, slow) as tg:  # the harness's worker answers in this process
        user = TelegramUser()
        await link(tg, graphql, user, person)
        bot = start(tg, "bot")
        try:
            tg.fake.queue_update(user.update("still there after the bot died?"))
            await eventually(lambda: _stored_humans(pool, user, 1))
        finally:
            await kill(bot)
        await tg.settle(user.chat_id)
        turns = await stored(pool, user)
        assert [kind for kind, _ in turns] == ["human", "ai"]
        assert tg.texts_to(user)[-1] == turns[1][1]

        # A new bot is given the same update again (the dead one never confirmed it): no second
        # answer, no second delivery.
        before = len(tg.fake.calls)
        again = start(tg, "bot")
        try:
            await eventually(lambda: _polled_twice(tg, before))
            await tg.settle(user.chat_id)
        finally:
            await stop(again)
        assert await stored(pool, user) == turns
        assert tg.texts_to(user).count(turns[1][1]) == 1


async def test_a_turn_redis_never_got_is_answered_by_the_sweep(
    settings: Settings, resources: Resources, graphql: GraphQLClient, person: Person
) -> None:
    async with harness(settings, resources, answers=False) as tg:
        user = TelegramUser()
        await link(tg, graphql, user, person)
        # The bot without Redis: it stores the message and queues nothing.
        offline = BotHarness(
            tg.bot,
            build_dispatcher(replace(resources, settings=tg.settings, redis=None)),
            tg.fake,
            tg.pool,
            tg.settings,
            tg.api_url,
        )
        await offline.send(user, "is anyone queueing this?", settle=False)
        assert [kind for kind, _ in await stored(tg.pool, user)] == ["human"]
        async with answering(tg.settings, replace(resources, settings=tg.settings)):
            await tg.settle(user.chat_id)  # the sweep runs every 5 s
        turns = await stored(tg.pool, user)
        assert [kind for kind, _ in turns] == ["human", "ai"]
        assert tg.texts_to(user)[-1] == turns[1][1]


async def _has_lease(pool: asyncpg.Pool, session_id: str) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT EXISTS (SELECT FROM session_turns WHERE session_id = $1)", session_id
        )
    )


async def _stored_humans(pool: asyncpg.Pool, user: TelegramUser, count: int) -> bool:
    return [kind for kind, _ in await stored(pool, user)].count("human") >= count


async def _polled_twice(tg: BotHarness, since: int) -> bool:
    """The restarted bot asked for updates again after the first answer: it handled them."""
    return sum(c.method == "getUpdates" for c in tg.fake.calls[since:]) >= 2


async def _delivery_status(pool: asyncpg.Pool, user: TelegramUser) -> list[str]:
    rows = await pool.fetch(
        "SELECT status FROM message_deliveries WHERE target = $1 ORDER BY id", str(user.chat_id)
    )
    return [r["status"] for r in rows]
