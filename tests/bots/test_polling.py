"""Long polling, as `unified-sessions dev` and `unified-sessions bot` run it, against a stand-in
Bot API server over HTTP (TELEGRAM_API_BASE)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import pytest

from bots.main import polling_task, run_polling
from graphql_api.core.runtime import Resources
from graphql_api.core.settings import Settings, SettingsError
from tests.conftest import GraphQLClient, Person

from .conftest import (
    BotHarness,
    FakeTelegram,
    TelegramUser,
    answering,
    bot_settings,
    harness,
    history,
    link,
    telegram_sessions,
)


@pytest.fixture
async def tg(settings: Settings, resources: Resources) -> AsyncIterator[BotHarness]:
    """Only to link accounts: this module's tests answer with their own worker (`answering`),
    and a second worker on the same database would take their deliveries to its own Bot API."""
    async with harness(settings, resources, answers=False) as bot:
        yield bot


async def test_polling_answers_updates_and_removes_a_stale_webhook(
    settings: Settings,
    resources: Resources,
    fake_bot_api: tuple[FakeTelegram, str],
    tg: BotHarness,
    graphql: GraphQLClient,
    person: Person,
    pool: asyncpg.Pool,
) -> None:
    fake, api_url = fake_bot_api
    fake.webhook_url = "https://old.example/telegram/webhook"
    user = TelegramUser()
    await link(tg, graphql, user, person)
    fake.queue_update(user.update("polled hello"))

    polled = bot_settings(settings, telegram_api_base=api_url)
    task = asyncio.create_task(polling_task(polled, resources))
    try:
        async with answering(polled, resources):
            await fake.wait_until(lambda: bool(fake.texts_to(user.chat_id)))
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    methods = [c.method for c in fake.calls]
    assert methods.index("deleteWebhook") < methods.index("getUpdates")
    assert "setMyCommands" in methods
    [session] = await telegram_sessions(pool, person.user_id)
    stored = await history(pool, session["session_id"])
    assert stored[0] == ("human", "polled hello")
    assert fake.texts_to(user.chat_id) == [stored[1][1]]


async def test_in_webhook_mode_polling_does_not_start(
    settings: Settings, resources: Resources
) -> None:
    webhook_mode = bot_settings(settings, telegram_webhook=True)
    await asyncio.wait_for(polling_task(webhook_mode, resources), timeout=10)


async def test_the_bot_command_needs_a_token_and_polling_mode(settings: Settings) -> None:
    with pytest.raises(SettingsError, match="TELEGRAM_BOT_TOKEN is not set"):
        await run_polling(replace(settings, telegram_bot_token=None))
    with pytest.raises(SettingsError, match="TELEGRAM_WEBHOOK is on"):
        await run_polling(bot_settings(settings, telegram_webhook=True))


async def test_the_bot_command_polls_with_its_own_resources(
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
    fake.queue_update(user.update("hello, standalone bot"))

    polled = bot_settings(settings, telegram_api_base=api_url)
    task = asyncio.create_task(run_polling(polled, handle_signals=False))
    try:
        async with answering(polled, resources):
            await fake.wait_until(lambda: bool(fake.texts_to(user.chat_id)))
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    [session] = await telegram_sessions(pool, person.user_id)
    assert (await history(pool, session["session_id"]))[0] == ("human", "hello, standalone bot")
