"""A Bot API server that is down (500 and an HTML page, as a proxy in front of it answers) neither
kills the bot nor keeps the API from serving: calls are retried, each failure logged, and once the
Bot API is back the bot answers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace

import asyncpg
import httpx
import pytest
from aiogram.exceptions import TelegramUnauthorizedError
from aiogram.utils.backoff import BackoffConfig
from starlette.datastructures import Secret
from starlette.types import ASGIApp, Receive, Scope, Send

from bots.main import polling_task
from bots.webhook import SECRET_HEADER, WEBHOOK_PATH
from graphql_api.app import create_app
from graphql_api.core.agent import EchoAgent
from graphql_api.core.runtime import Resources
from graphql_api.core.settings import Settings
from tests.conftest import GraphQLClient, Person, running_server

from .conftest import (
    BOT_TOKEN,
    BotHarness,
    FakeTelegram,
    TelegramUser,
    answering,
    bot_settings,
    fake_bot_api_app,
    harness,
    history,
    link,
    telegram_sessions,
)

FAST = BackoffConfig(min_delay=0.01, max_delay=0.05, factor=2.0, jitter=0.0)
BAD_GATEWAY_PAGE = (
    b"<html><head><title>500 Internal Server Error</title></head><body>oops</body></html>"
)
WEBHOOK_SECRET = "webhook-secret-0123456789abcdef"
TELEGRAM_SESSIONS = "query { sessions(channel: TELEGRAM) { edges { node { sessionId } } } }"


@dataclass
class Outage:
    """In front of the Bot API stand-in: while `on`, every call gets 500 and an HTML page."""

    app: ASGIApp
    on: bool = False
    refused: list[str] = field(default_factory=list)  # the Bot API methods refused, in order

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.on:
            await self.app(scope, receive, send)
            return
        self.refused.append(scope["path"].rsplit("/", 1)[-1])
        headers = [
            (b"content-type", b"text/html"),
            (b"content-length", b"%d" % len(BAD_GATEWAY_PAGE)),
        ]
        await send({"type": "http.response.start", "status": 500, "headers": headers})
        await send({"type": "http.response.body", "body": BAD_GATEWAY_PAGE})


@pytest.fixture
async def tg(settings: Settings, resources: Resources) -> AsyncIterator[BotHarness]:
    """Only to link accounts: this module's tests answer with their own worker (`answering`),
    and a second worker on the same database would take their deliveries to its own Bot API."""
    async with harness(settings, resources, answers=False) as bot:
        yield bot


@pytest.fixture
async def failing_bot_api() -> AsyncIterator[tuple[FakeTelegram, Outage, str]]:
    fake = FakeTelegram()
    outage = Outage(fake_bot_api_app(fake))
    async with running_server(outage) as url:
        yield fake, outage, url


async def eventually(predicate: Callable[[], bool], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # conditions on several objects: checked often
            await asyncio.sleep(0.01)


def retry_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "bots.startup" and r.levelno == logging.WARNING and "failed (try" in r.msg
    ]


def assert_no_token(caplog: pytest.LogCaptureFixture) -> None:
    secret_part = BOT_TOKEN.split(":", 1)[1]
    assert all(secret_part not in r.getMessage() for r in caplog.records)


async def test_polling_rides_out_a_bot_api_answering_html(
    settings: Settings,
    resources: Resources,
    failing_bot_api: tuple[FakeTelegram, Outage, str],
    tg: BotHarness,
    graphql: GraphQLClient,
    person: Person,
    pool: asyncpg.Pool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    fake, outage, api_url = failing_bot_api
    user = TelegramUser()
    await link(tg, graphql, user, person)
    outage.on = True
    fake.queue_update(user.update("hello after the outage"))

    polled = bot_settings(settings, telegram_api_base=api_url)
    task = asyncio.create_task(polling_task(polled, resources, backoff=FAST))
    try:
        async with answering(polled, resources):
            # Start-up: refused again and again, and still trying.
            await eventually(lambda: len(outage.refused) >= 5 or task.done())
            assert not task.done(), task.exception()
            outage.on = False
            await eventually(lambda: bool(fake.texts_to(user.chat_id)) or task.done())
            assert not task.done(), task.exception()
            start_up_failures = len(outage.refused)

            # Polling: getUpdates refused for a while, then a new message is answered.
            outage.on = True
            await eventually(lambda: outage.refused[start_up_failures:].count("getUpdates") >= 3)
            outage.on = False
            fake.queue_update(user.update("hello after the second outage"))
            await eventually(lambda: len(fake.texts_to(user.chat_id)) == 2 or task.done())
            assert not task.done(), task.exception()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    # One log line per failed start-up call, saying what came back (and no token).
    lines = retry_lines(caplog)
    assert len(lines) == start_up_failures
    assert "getMe failed (try 1): the answer is not the Bot API's JSON" in lines[0]
    assert "<html>" in lines[0]
    assert_no_token(caplog)
    # The start-up calls all went through in the end, then the messages were answered.
    methods = [c.method for c in fake.calls]
    assert {"getMe", "getWebhookInfo", "setMyCommands"} <= set(methods)
    [session] = await telegram_sessions(pool, person.user_id)
    stored = await history(pool, session["session_id"])
    assert [content for role, content in stored if role == "human"] == [
        "hello after the outage",
        "hello after the second outage",
    ]
    assert fake.texts_to(user.chat_id) == [content for role, content in stored if role == "ai"]


async def test_polling_stops_on_a_refused_token_instead_of_retrying(
    settings: Settings,
    resources: Resources,
    failing_bot_api: tuple[FakeTelegram, Outage, str],
) -> None:
    _, _, api_url = failing_bot_api
    wrong = bot_settings(settings, telegram_api_base=api_url)
    wrong = replace(wrong, telegram_bot_token=Secret("4242:not-the-token"))
    with pytest.raises(TelegramUnauthorizedError):
        await asyncio.wait_for(polling_task(wrong, resources, backoff=FAST), timeout=10)


async def test_the_api_serves_while_the_bot_api_fails_and_the_webhook_works_after(
    settings: Settings,
    resources: Resources,
    pool: asyncpg.Pool,
    failing_bot_api: tuple[FakeTelegram, Outage, str],
    tg: BotHarness,
    graphql: GraphQLClient,
    person: Person,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    fake, outage, api_url = failing_bot_api
    user = TelegramUser()
    await link(tg, graphql, user, person)
    outage.on = True
    webhook_settings = bot_settings(
        settings,
        telegram_webhook=True,
        telegram_webhook_secret=Secret(WEBHOOK_SECRET),
        telegram_api_base=api_url,
    )
    resources = Resources(
        settings=webhook_settings, pool=pool, agent=EchoAgent(), redis=resources.redis
    )

    async with (
        answering(webhook_settings, resources),
        running_server(create_app(webhook_settings, resources)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        # Started, and GraphQL answers, while the Bot API keeps failing (default backoff: 1 s, 2 s).
        await GraphQLClient(url).ok(TELEGRAM_SESSIONS, token=person.token)
        await eventually(lambda: len(outage.refused) >= 2)
        await GraphQLClient(url).ok(TELEGRAM_SESSIONS, token=person.token)
        assert len(retry_lines(caplog)) >= 1

        # Back: the background check finishes (the command menu set, no webhook set: a warning).
        outage.on = False
        await eventually(lambda: "getWebhookInfo" in [c.method for c in fake.calls])
        assert "setMyCommands" in [c.method for c in fake.calls]
        # Logged once getWebhookInfo's answer is read, a moment after the call is recorded.
        await eventually(
            lambda: any("has no webhook set" in r.getMessage() for r in caplog.records)
        )

        response = await client.post(
            WEBHOOK_PATH,
            json=user.update("via the webhook, after the outage"),
            headers={SECRET_HEADER: WEBHOOK_SECRET},
        )
        assert response.status_code == 200
        await eventually(lambda: bool(fake.texts_to(user.chat_id)))

    [session] = await telegram_sessions(pool, person.user_id)
    stored = await history(pool, session["session_id"])
    assert stored[0] == ("human", "via the webhook, after the outage")
    assert fake.texts_to(user.chat_id) == [stored[1][1]]
    assert len(retry_lines(caplog)) == len(outage.refused)
    assert_no_token(caplog)


async def test_cancelled_polling_stops_asking_for_updates(
    settings: Settings,
    resources: Resources,
    failing_bot_api: tuple[FakeTelegram, Outage, str],
) -> None:
    fake, _, api_url = failing_bot_api

    def get_updates() -> int:
        return sum(c.method == "getUpdates" for c in fake.calls)

    task = asyncio.create_task(
        polling_task(bot_settings(settings, telegram_api_base=api_url), resources, backoff=FAST)
    )
    await eventually(lambda: get_updates() >= 2 or task.done())
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    after_cancel = get_updates()

    # The stand-in answers an idle getUpdates after 0.2 s: a loop left running would ask again.
    await asyncio.sleep(1)
    assert get_updates() <= after_cancel + 1  # at most the one that was in flight
