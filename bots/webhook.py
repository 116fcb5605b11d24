"""POST /telegram/webhook on the API: Telegram's updates, checked with its secret-token header.

On only with TELEGRAM_WEBHOOK=true, which refuses to start without TELEGRAM_BOT_TOKEN and a
TELEGRAM_WEBHOOK_SECRET. The bot and dispatcher are created at startup and kept in the app's
lifespan state (`request.state.telegram`), never in module globals.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiogram import Bot, Dispatcher
from aiogram.types import Update
from aiogram.utils.backoff import BackoffConfig
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from graphql_api.core.settings import Settings, SettingsError

from .dispatcher import build_bot, build_dispatcher
from .startup import TELEGRAM_BACKOFF, check_webhook

if TYPE_CHECKING:
    from graphql_api.core.runtime import Resources

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
STATE_KEY = "telegram"  # the lifespan state's WebhookRuntime
MAX_UPDATE_BYTES = 1_000_000
# Telegram accepts 1-256 of these characters; fewer than 16 would be guessable.
_SECRET = re.compile(r"^[A-Za-z0-9_-]{16,256}$")


@dataclass(frozen=True)
class WebhookRuntime:
    bot: Bot
    dispatcher: Dispatcher


def webhook_secret(settings: Settings) -> str | None:
    """The secret when the webhook is on, None when it is off; SettingsError when misconfigured."""
    if not settings.telegram_webhook:
        return None
    if settings.telegram_bot_token is None:
        raise SettingsError("TELEGRAM_WEBHOOK is on but TELEGRAM_BOT_TOKEN is not set")
    if settings.telegram_webhook_secret is None:
        raise SettingsError(
            "TELEGRAM_WEBHOOK is on but TELEGRAM_WEBHOOK_SECRET is not set: the webhook refuses "
            "to run without a secret. Set it to 16-256 characters (A-Z a-z 0-9 _ -) and pass "
            "the same value as secret_token to setWebhook."
        )
    secret = str(settings.telegram_webhook_secret)
    if not _SECRET.match(secret):
        raise SettingsError("TELEGRAM_WEBHOOK_SECRET must be 16-256 characters of A-Z a-z 0-9 _ -")
    return secret


def telegram_routes(settings: Settings) -> list[BaseRoute]:
    """The webhook route when TELEGRAM_WEBHOOK is on, else nothing."""
    secret = webhook_secret(settings)
    if secret is None:
        return []
    expected = secret.encode()

    async def webhook(request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, expected):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        body = await request.body()
        if len(body) > MAX_UPDATE_BYTES:
            return JSONResponse({"error": "update too large"}, status_code=413)
        runtime: WebhookRuntime = getattr(request.state, STATE_KEY)
        try:
            update = Update.model_validate_json(body, context={"bot": runtime.bot})
        except ValidationError:
            return JSONResponse({"error": "not a Telegram update"}, status_code=400)
        # Answers once handled (or after 55 s, leaving the rest to run in the background).
        # An unexpected failure answers 500, so Telegram redelivers: redelivery stores nothing
        # twice.
        await runtime.dispatcher.feed_webhook_update(runtime.bot, update)
        return Response(status_code=200)

    return [Route(WEBHOOK_PATH, webhook, methods=["POST"], name="telegram-webhook")]


@contextlib.asynccontextmanager
async def telegram_lifespan(
    settings: Settings, resources: Resources, *, backoff: BackoffConfig = TELEGRAM_BACKOFF
) -> AsyncIterator[Mapping[str, Any]]:
    """Create the webhook's bot and dispatcher at startup; close the bot's session at shutdown.

    The Bot API start-up check (command menu, webhook set?) runs in the background, retried with
    `backoff`: the API starts and serves whatever the Bot API answers meanwhile.
    """
    if webhook_secret(settings) is None:
        yield {}
        return
    bot = build_bot(settings)
    runtime = WebhookRuntime(bot, build_dispatcher(resources))
    check = asyncio.create_task(check_webhook(bot, backoff), name="telegram-webhook-check")
    try:
        yield {STATE_KEY: runtime}
    finally:
        check.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await check
        await bot.session.close()
