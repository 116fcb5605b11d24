"""The bot's start-up calls to the Bot API, retried until Telegram answers.

Telegram (or a proxy in front of a self-hosted Bot API server) is sometimes down, and may then
answer with a 5xx and an HTML page instead of the Bot API's JSON, which aiogram raises as
`ClientDecodeError`. None of that may stop the bot: every start-up call is retried with a
bounded exponential backoff, with one log line per failure. Only answers that will not change by
retrying (a refused token, a bad request) are raised.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiogram import Bot
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import BotCommand
from aiogram.utils.backoff import Backoff, BackoffConfig

log = logging.getLogger(__name__)

T = TypeVar("T")

COMMANDS = [
    BotCommand(command="new", description="Start a new conversation"),
    BotCommand(command="sessions", description="Your recent conversations, every channel"),
    BotCommand(command="resume", description="Continue conversation N here"),
    BotCommand(command="unlink", description="Disconnect this Telegram account"),
    BotCommand(command="help", description="What I can do"),
]
# 1 s, doubling, up to 30 s, with a little jitter (a standard deviation in seconds). The same
# config is given to aiogram's polling loop, which retries getUpdates on any error.
TELEGRAM_BACKOFF = BackoffConfig(min_delay=1.0, max_delay=30.0, factor=2.0, jitter=0.1)
# Worth retrying: the network, Telegram's own 5xx, flood control, an answer that is not JSON.
TRANSIENT: tuple[type[Exception], ...] = (
    TelegramNetworkError,
    TelegramServerError,
    TelegramRetryAfter,
    ClientDecodeError,
)
_SNIPPET = 160


def redact(text: str, token: str) -> str:
    """The text without the bot's token (a webhook URL or an error may contain it)."""
    return text.replace(token, "<token>")


def describe(exc: Exception, token: str) -> str:
    """One short line about a failed call, never the bot's token nor a whole HTML page."""
    if isinstance(exc, ClientDecodeError):
        text = f"the answer is not the Bot API's JSON ({exc.message}): {exc.data!s}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    text = " ".join(redact(text, token).split())
    return text if len(text) <= _SNIPPET else text[: _SNIPPET - 1] + "…"


async def call_until_answered(
    bot: Bot, method: str, call: Callable[[], Awaitable[T]], backoff: BackoffConfig
) -> T:
    """`call()`, retried after each transient failure with `backoff` between tries."""
    delays = Backoff(backoff)
    while True:
        try:
            result = await call()
        except TRANSIENT as exc:
            delay = max(0.0, next(delays))
            if isinstance(exc, TelegramRetryAfter):
                delay = max(delay, float(exc.retry_after))  # Telegram's flood control says when
            log.warning(
                "Telegram Bot API %s failed (try %d): %s; retrying in %.1f s",
                method,
                delays.counter,
                describe(exc, bot.token),
                delay,
            )
            await asyncio.sleep(delay)
            continue
        if delays.counter:
            log.info("Telegram Bot API %s answered after %d failed tries", method, delays.counter)
        return result


async def prepare_polling(bot: Bot, backoff: BackoffConfig = TELEGRAM_BACKOFF) -> None:
    """Before polling: who the bot is, no webhook left set (it would make polling fail), the
    command menu."""
    # aiogram's polling asks bot.me() once before its retrying getUpdates loop, and does not
    # retry that call. bot.me() caches its answer, so asking here first keeps it off the network.
    me = await call_until_answered(bot, "getMe", bot.me, backoff)
    info = await call_until_answered(bot, "getWebhookInfo", bot.get_webhook_info, backoff)
    if info.url:
        log.warning(
            "removing the bot's webhook (%s) to poll for updates instead",
            redact(info.url, bot.token),
        )
        await call_until_answered(
            bot, "deleteWebhook", lambda: bot.delete_webhook(drop_pending_updates=False), backoff
        )
    await call_until_answered(bot, "setMyCommands", lambda: bot.set_my_commands(COMMANDS), backoff)
    log.info("the Telegram bot @%s is ready to poll", me.username)


async def check_webhook(bot: Bot, backoff: BackoffConfig = TELEGRAM_BACKOFF) -> None:
    """Webhook mode, in the background of the API's start-up: the command menu, and a warning
    when Telegram has no webhook set (then no update arrives). Never raises but on cancel."""
    try:
        me = await call_until_answered(bot, "getMe", bot.me, backoff)
        await call_until_answered(
            bot, "setMyCommands", lambda: bot.set_my_commands(COMMANDS), backoff
        )
        info = await call_until_answered(bot, "getWebhookInfo", bot.get_webhook_info, backoff)
    except Exception as exc:  # the API serves on: say why the check stopped, and stop
        log.error("the Bot API refused the webhook start-up check: %s", describe(exc, bot.token))
        return
    if not info.url:
        log.warning(
            "Telegram has no webhook set for @%s: no update arrives until setWebhook is called "
            "with url=https://<host>/telegram/webhook and the secret_token",
            me.username,
        )
    elif info.last_error_message:
        log.warning(
            "Telegram's last delivery to the webhook %s failed: %s",
            redact(info.url, bot.token),
            redact(info.last_error_message, bot.token),
        )
    else:
        log.info(
            "the Telegram bot @%s gets its updates at %s", me.username, redact(info.url, bot.token)
        )
