"""The webhook route over real HTTP, with the bot talking to a Bot API stand-in (TELEGRAM_API_BASE)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import httpx
import pytest
from starlette.datastructures import Secret

from bots.webhook import SECRET_HEADER, STATE_KEY, WEBHOOK_PATH, telegram_lifespan
from graphql_api.app import create_app
from graphql_api.core.agent import EchoAgent
from graphql_api.core.runtime import Resources
from graphql_api.core.settings import Settings, SettingsError
from tests.conftest import GraphQLClient, Person, running_server

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

SECRET = "webhook-secret-0123456789abcdef"


@pytest.fixture
async def tg(settings: Settings, resources: Resources) -> AsyncIterator[BotHarness]:
    """Only to link accounts: this module's tests answer with their own worker (`answering`),
    and a second worker on the same database would take their deliveries to its own Bot API."""
    async with harness(settings, resources, answers=False) as bot:
        yield bot


@pytest.fixture
async def webhook(
    settings: Settings, resources: Resources, fake_bot_api: tuple[FakeTelegram, str]
) -> AsyncIterator[tuple[httpx.AsyncClient, FakeTelegram]]:
    fake, api_url = fake_bot_api
    webhook_settings = bot_settings(
        settings,
        telegram_webhook=True,
        telegram_webhook_secret=Secret(SECRET),
        telegram_api_base=api_url,
    )
    resources = replace(resources, settings=webhook_settings)
    async with (
        answering(webhook_settings, resources),
        running_server(create_app(webhook_settings, resources)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield client, fake


async def test_the_webhook_bot_is_closed_at_shutdown(
    settings: Settings, pool: asyncpg.Pool, fake_bot_api: tuple[FakeTelegram, str]
) -> None:
    webhook_settings = bot_settings(
        settings,
        telegram_webhook=True,
        telegram_webhook_secret=Secret(SECRET),
        telegram_api_base=fake_bot_api[1],
    )
    resources = Resources(settings=webhook_settings, pool=pool, agent=EchoAgent())
    async with telegram_lifespan(webhook_settings, resources) as state:
        http = await state[STATE_KEY].bot.session.create_session()
        assert not http.closed
    assert http.closed


async def test_the_right_secret_gets_the_update_processed(
    webhook: tuple[httpx.AsyncClient, FakeTelegram],
    tg: BotHarness,
    graphql: GraphQLClient,
    person: Person,
    pool: asyncpg.Pool,
) -> None:
    client, fake = webhook
    user = TelegramUser()
    await link(tg, graphql, user, person)

    response = await client.post(
        WEBHOOK_PATH, json=user.update("via the webhook"), headers={SECRET_HEADER: SECRET}
    )

    assert response.status_code == 200
    await fake.wait_until(lambda: bool(fake.texts_to(user.chat_id)))
    [session] = await telegram_sessions(pool, person.user_id)
    stored = await history(pool, session["session_id"])
    assert stored[0] == ("human", "via the webhook")
    # The reply went to the Bot API server named by TELEGRAM_API_BASE, over HTTP.
    assert fake.texts_to(user.chat_id) == [stored[1][1]]


@pytest.mark.parametrize("headers", [{}, {SECRET_HEADER: "wrong"}, {SECRET_HEADER: SECRET + "x"}])
async def test_a_wrong_or_missing_secret_is_refused_and_nothing_stored(
    webhook: tuple[httpx.AsyncClient, FakeTelegram],
    tg: BotHarness,
    graphql: GraphQLClient,
    person: Person,
    pool: asyncpg.Pool,
    headers: dict[str, str],
) -> None:
    client, fake = webhook
    user = TelegramUser()
    await link(tg, graphql, user, person)
    messages_before = await pool.fetchval("SELECT count(*) FROM chat_message_history")

    response = await client.post(WEBHOOK_PATH, json=user.update("forged"), headers=headers)

    assert response.status_code == 401
    assert await telegram_sessions(pool, person.user_id) == []
    assert await pool.fetchval("SELECT count(*) FROM chat_message_history") == messages_before
    # Nothing was sent for it (the API's own start-up check may call the Bot API meanwhile).
    start_up_check = {"getMe", "setMyCommands", "getWebhookInfo"}
    assert [c for c in fake.calls if c.method not in start_up_check] == []


async def test_a_body_that_is_not_an_update_is_a_bad_request(
    webhook: tuple[httpx.AsyncClient, FakeTelegram],
) -> None:
    client, _ = webhook
    response = await client.post(WEBHOOK_PATH, content=b"{nope", headers={SECRET_HEADER: SECRET})
    assert response.status_code == 400


def test_the_webhook_refuses_to_be_enabled_without_a_secret(settings: Settings) -> None:
    on = bot_settings(settings, telegram_webhook=True)
    with pytest.raises(SettingsError, match="TELEGRAM_WEBHOOK_SECRET is not set"):
        create_app(on)
    with pytest.raises(SettingsError, match="16-256 characters"):
        create_app(replace(on, telegram_webhook_secret=Secret("short")))
    with pytest.raises(SettingsError, match="TELEGRAM_BOT_TOKEN is not set"):
        create_app(replace(settings, telegram_webhook=True, telegram_webhook_secret=Secret(SECRET)))


def test_the_switch_is_read_from_the_environment(settings: Settings) -> None:
    env = {"TELEGRAM_WEBHOOK": "true", "TELEGRAM_BOT_TOKEN": "1:x"}
    assert Settings.from_env(env).telegram_webhook is True
    assert Settings.from_env({}).telegram_webhook is False


async def test_without_the_switch_there_is_no_webhook_route(http: httpx.AsyncClient) -> None:
    response = await http.post(WEBHOOK_PATH, json={"update_id": 1}, headers={SECRET_HEADER: SECRET})
    assert response.status_code in {404, 405}
