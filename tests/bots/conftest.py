"""A stand-in for the Telegram Bot API, and the real bot and dispatcher wired to it.

`FakeTelegram` records every Bot API call and answers the way Telegram does (or fails on
request). Two ways to reach it: `RecordingSession`, an aiogram session that calls it in process
(what aiogram's own tests do with their MockedSession), and `fake_bot_api`, a real HTTP server
speaking the Bot API's URL scheme, for TELEGRAM_API_BASE.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import secrets
import time
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.session.base import BaseSession
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from starlette.applications import Starlette
from starlette.datastructures import Secret
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bots.dispatcher import build_bot, build_dispatcher
from graphql_api.core.runtime import Resources
from graphql_api.core.settings import Settings
from tests.conftest import GraphQLClient, Person, running_server
from workers.main import build_worker, stop_worker

BOT_ID = 4242
BOT_TOKEN = f"{BOT_ID}:TEST-token-for-the-fake-bot-api"
BOT_USER = {"id": BOT_ID, "is_bot": True, "first_name": "Sessions", "username": "sessions_bot"}

_ids = itertools.count(secrets.randbelow(10**6) * 1000 + 10**9)


def next_id() -> int:
    """Telegram ids unique within the test run (the database lives for the whole run)."""
    return next(_ids)


# --- the Bot API stand-in -------------------------------------------------------------------


@dataclass
class Call:
    method: str
    params: dict[str, str]


@dataclass
class Failure:
    status: int
    description: str
    retry_after: int | None = None


class FakeTelegram:
    """Records Bot API calls; answers like Telegram; fails the next calls of a method on request."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.webhook_url = ""
        self._failures: dict[str, deque[Failure]] = defaultdict(deque)
        self._message_ids = itertools.count(1)
        self._pending_updates: list[dict[str, Any]] = []
        self._changed = asyncio.Condition()
        # (low, high): each sendMessage over HTTP takes a random moment in between before it is
        # recorded and answered, as a network's would (a message sent while another is still
        # on its way may arrive first).
        self.send_delay: tuple[float, float] | None = None

    def fail_next(
        self,
        method: str,
        *,
        status: int,
        description: str,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        for _ in range(times):
            self._failures[method].append(Failure(status, description, retry_after))

    def respond(self, method: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.calls.append(Call(method, params))
        self._notify()
        if self._failures[method]:
            failure = self._failures[method].popleft()
            body: dict[str, Any] = {
                "ok": False,
                "error_code": failure.status,
                "description": failure.description,
            }
            if failure.retry_after is not None:
                body["parameters"] = {"retry_after": failure.retry_after}
            return failure.status, body
        return 200, {"ok": True, "result": self._result(method, params)}

    def _result(self, method: str, params: dict[str, str]) -> Any:
        if method == "sendMessage":
            return {
                "message_id": next(self._message_ids),
                "date": int(time.time()),
                "chat": {"id": int(params["chat_id"]), "type": "private"},
                "from": BOT_USER,
                "text": params["text"],
            }
        if method == "getMe":
            return BOT_USER
        if method == "getWebhookInfo":
            return {
                "url": self.webhook_url,
                "has_custom_certificate": False,
                "pending_update_count": 0,
            }
        if method == "deleteWebhook":
            self.webhook_url = ""
        return True

    # getUpdates, for polling over HTTP

    def queue_update(self, update: dict[str, Any]) -> None:
        self._pending_updates.append(update)
        self._notify()

    async def get_updates(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        offset = int(params.get("offset", "0"))
        self._pending_updates = [u for u in self._pending_updates if u["update_id"] >= offset]
        if not self._pending_updates:
            # Long polling, shortened: nothing now, so wait a little before answering "none".
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.2)
        self.calls.append(Call("getUpdates", params))
        return 200, {"ok": True, "result": list(self._pending_updates)}

    # what tests look at

    def _notify(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        asyncio.get_running_loop().create_task(notify())

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(predicate)

    def to_chat(self, method: str, chat_id: int) -> list[Call]:
        return [
            c for c in self.calls if c.method == method and c.params.get("chat_id") == str(chat_id)
        ]

    def texts_to(self, chat_id: int) -> list[str]:
        return [c.params["text"] for c in self.to_chat("sendMessage", chat_id)]


class RecordingSession(BaseSession):
    """An aiogram session that hands each request to FakeTelegram instead of the network.

    Parameters are prepared exactly as aiogram's HTTP session prepares its form fields, and the
    answer goes through aiogram's own response check, so errors surface as the real exceptions.
    """

    def __init__(self, fake: FakeTelegram) -> None:
        super().__init__()
        self.fake = fake

    async def make_request(
        self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None
    ) -> Any:
        files: dict[str, Any] = {}
        params = {}
        for key, value in method.model_dump(warnings=False).items():
            prepared = self.prepare_value(value, bot=bot, files=files)
            if prepared:
                params[key] = prepared
        status, body = self.fake.respond(method.__api_method__, params)
        response = self.check_response(
            bot=bot, method=method, status_code=status, content=json.dumps(body)
        )
        return response.result

    async def stream_content(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    async def close(self) -> None:
        return None


def fake_bot_api_app(fake: FakeTelegram) -> Starlette:
    """The Bot API's URL scheme (/bot<token>/<method>, form-encoded fields) over real HTTP."""

    async def call(request: Request) -> JSONResponse:
        if request.path_params["token"] != BOT_TOKEN:
            return JSONResponse(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, 401
            )
        params = dict(parse_qsl((await request.body()).decode()))
        method = request.path_params["method"]
        if method == "getUpdates":
            status, body = await fake.get_updates(params)
        else:
            if method == "sendMessage" and fake.send_delay is not None:
                await asyncio.sleep(random.uniform(*fake.send_delay))
            status, body = fake.respond(method, params)
        return JSONResponse(body, status)

    return Starlette(routes=[Route("/bot{token}/{method}", call, methods=["POST"])])


@pytest.fixture
async def fake_bot_api() -> AsyncIterator[tuple[FakeTelegram, str]]:
    fake = FakeTelegram()
    async with running_server(fake_bot_api_app(fake)) as url:
        yield fake, url


# --- updates as Telegram sends them ---------------------------------------------------------


@dataclass
class TelegramUser:
    """A Telegram user in a private chat with the bot (in private chats, chat id == user id)."""

    id: int = field(default_factory=next_id)
    username: str | None = None

    @property
    def chat_id(self) -> int:
        return self.id

    def update(
        self,
        text: str | None = None,
        *,
        message_id: int | None = None,
        update_id: int | None = None,
        chat_type: str = "private",
        chat_id: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        sender = {"id": self.id, "is_bot": False, "first_name": "Test", "language_code": "en"}
        if self.username:
            sender["username"] = self.username
        chat: dict[str, Any] = {"id": chat_id or self.chat_id, "type": chat_type}
        chat.update({"first_name": "Test"} if chat_type == "private" else {"title": "A group"})
        message: dict[str, Any] = {
            "message_id": message_id or next_id(),
            "date": int(time.time()),
            "chat": chat,
            "from": sender,
        }
        if text is not None:
            message["text"] = text
            if text.startswith("/"):
                command = text.split(maxsplit=1)[0]
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        message.update(extra or {})
        return {"update_id": update_id or next_id(), "message": message}


# --- the real bot and dispatcher, on the recording session ----------------------------------


def bot_settings(settings: Settings, **changes: Any) -> Settings:
    """With the stand-in's token, and a worker queue of its own (see `answering`)."""
    changes.setdefault("worker_queue", "us-test-bot:" + secrets.token_hex(6))
    return replace(settings, telegram_bot_token=Secret(BOT_TOKEN), **changes)


class BotHarness:
    """Feeds Update objects through the real Dispatcher, as polling or a webhook would, with a
    real arq worker answering the queued turns and sending the outbox to the same stand-in."""

    def __init__(
        self,
        bot: Bot,
        dispatcher: Dispatcher,
        fake: FakeTelegram,
        pool: asyncpg.Pool,
        settings: Settings,
        api_url: str,
    ) -> None:
        self.bot = bot
        self.dispatcher = dispatcher
        self.fake = fake
        self.pool = pool
        self.settings = settings  # the bot's: its worker queue, TELEGRAM_API_BASE = api_url
        self.api_url = api_url  # the stand-in over HTTP, for other processes

    async def feed(self, raw: dict[str, Any], *, settle: bool = True) -> Any:
        update = Update.model_validate(raw, context={"bot": self.bot})
        handled = await self.dispatcher.feed_update(self.bot, update)
        chat = (raw.get("message") or {}).get("chat", {}).get("id")
        if settle and chat is not None:
            await self.settle(chat)
        return handled

    async def send(
        self, user: TelegramUser, text: str | None, *, settle: bool = True, **kwargs: Any
    ) -> dict[str, Any]:
        raw = user.update(text, **kwargs)
        await self.feed(raw, settle=settle)
        return raw

    async def settle(self, chat_id: int, timeout: float = 30.0) -> None:
        """Wait until the worker has answered the chat's waiting turns and the outbox holds
        nothing more for it."""
        async with asyncio.timeout(timeout):
            while await self.pool.fetchval(_BUSY, chat_id, str(chat_id)):
                await asyncio.sleep(0.02)

    def texts_to(self, user: TelegramUser) -> list[str]:
        return self.fake.texts_to(user.chat_id)

    def last_text_to(self, user: TelegramUser) -> str:
        texts = self.texts_to(user)
        assert texts, f"nothing was sent to chat {user.chat_id}"
        return texts[-1]


_BUSY = """
SELECT EXISTS (SELECT FROM telegram_messages WHERE telegram_chat_id = $1
                  AND queued_at IS NOT NULL AND answered_at IS NULL)
    OR EXISTS (SELECT FROM message_deliveries WHERE channel = 'telegram' AND target = $2
                  AND status = 'pending')
"""


@contextlib.asynccontextmanager
async def answering(settings: Settings, resources: Resources) -> AsyncIterator[None]:
    """A real arq worker on `settings.worker_queue` (make it the test's own: bot_settings does)
    answering the bot's queued turns and sending the outbox, with these resources' agent."""
    worker = build_worker(
        settings,
        replace(resources, settings=settings),
        queue_name=settings.worker_queue,
        handle_signals=False,
        poll_delay=0.02,
    )
    running = asyncio.create_task(worker.async_run())
    try:
        yield
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await stop_worker(worker)
        await _forget_queue(resources, settings.worker_queue)


@contextlib.asynccontextmanager
async def harness(
    settings: Settings, resources: Resources, *, answers: bool = True
) -> AsyncIterator[BotHarness]:
    """The bot on the recording session, and (`answers`) a real arq worker whose Bot API client
    reaches the same stand-in over HTTP."""
    fake = FakeTelegram()
    async with running_server(fake_bot_api_app(fake)) as url:
        tuned = bot_settings(settings, telegram_api_base=url)
        tuned_resources = replace(resources, settings=tuned)
        bot = build_bot(tuned, session=RecordingSession(fake))
        tg = BotHarness(bot, build_dispatcher(tuned_resources), fake, resources.pool, tuned, url)
        try:
            if not answers:  # the test runs its own worker(s) on tg.settings, if any
                yield tg
                return
            async with answering(tuned, tuned_resources):
                yield tg
        finally:
            await _forget_queue(resources, tuned.worker_queue)


async def _forget_queue(resources: Resources, queue: str) -> None:
    redis = resources.redis
    assert redis is not None
    doomed = [key async for key in redis.scan_iter(match=f"*{queue}*", count=1000)]
    if doomed:
        await redis.delete(*doomed)


@pytest.fixture
async def tg(settings: Settings, resources: Resources) -> AsyncIterator[BotHarness]:
    async with harness(settings, resources) as bot:
        yield bot


# --- linking and looking ----------------------------------------------------------------------

CREATE_CODE = "mutation { createTelegramLinkCode { code expiresAt deepLink } }"


async def link(tg: BotHarness, graphql: GraphQLClient, user: TelegramUser, person: Person) -> str:
    """Link the Telegram user to the person the way a person does: code from the API, /start."""
    data = await graphql.ok(CREATE_CODE, token=person.token)
    code = data["createTelegramLinkCode"]["code"]
    await tg.send(user, f"/start {code}")
    return code


async def history(pool: asyncpg.Pool, session_id: str) -> list[tuple[str, str]]:
    rows = await pool.fetch(
        "SELECT message FROM chat_message_history WHERE session_id = $1 ORDER BY id", session_id
    )
    return [(r["message"]["type"], r["message"]["data"]["content"]) for r in rows]


async def telegram_sessions(pool: asyncpg.Pool, user_id: uuid.UUID) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM chat_sessions WHERE user_id = $1 AND channel = 'telegram' "
        "ORDER BY created_at",
        user_id,
    )
