"""Long polling: `unified-sessions bot` on its own, or inside `unified-sessions dev`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiogram import Bot
from aiogram.exceptions import TelegramNetworkError, TelegramServerError
from aiogram.types import BotCommand

from graphql_api.core.devsecrets import with_dev_secret
from graphql_api.core.settings import Settings, SettingsError

from .dispatcher import build_bot, build_dispatcher

if TYPE_CHECKING:
    from graphql_api.app import Resources

log = logging.getLogger(__name__)

COMMANDS = [
    BotCommand(command="new", description="Start a new conversation"),
    BotCommand(command="unlink", description="Disconnect this Telegram account"),
    BotCommand(command="help", description="What I can do"),
]
# Updates handled at once; each holds a database connection now and then, so keep it bounded.
CONCURRENT_UPDATES = 32


async def polling_task(
    settings: Settings, resources: Resources, *, handle_signals: bool = False
) -> None:
    """Poll Telegram for updates until cancelled, in the caller's event loop and resources."""
    if settings.telegram_webhook:
        print("TELEGRAM_WEBHOOK is on: the bot gets its updates at /telegram/webhook, not polling")
        return
    bot = build_bot(settings)
    dispatcher = build_dispatcher(resources)
    try:
        await _prepare(bot)
    except BaseException:
        await bot.session.close()
        raise
    try:
        await dispatcher.start_polling(
            bot,
            handle_signals=handle_signals,
            close_bot_session=True,
            tasks_concurrency_limit=CONCURRENT_UPDATES,
        )
    except Exception:
        log.exception("the Telegram bot stopped")
        raise


async def _prepare(bot: Bot) -> None:
    """Polling and a webhook exclude each other: a webhook left set would make polling fail.

    Also sets the command menu. Telegram being unreachable is not fatal here: polling retries.
    """
    try:
        info = await bot.get_webhook_info()
        if info.url:
            log.warning("removing the bot's webhook (%s) to poll for updates instead", info.url)
            await bot.delete_webhook(drop_pending_updates=False)
        await bot.set_my_commands(COMMANDS)
    except (TelegramNetworkError, TelegramServerError) as exc:
        log.warning("Telegram is not reachable yet (%s); polling will keep trying", exc)


async def run_polling(settings: Settings, *, handle_signals: bool = True) -> None:
    """`unified-sessions bot`: its own database pool and agent, then poll until stopped
    (SIGINT/SIGTERM stop it gracefully)."""
    from graphql_api.app import open_resources

    if settings.telegram_webhook:
        raise SettingsError(
            "TELEGRAM_WEBHOOK is on: updates go to the API's /telegram/webhook. "
            "Unset it to run the bot by polling."
        )
    if settings.telegram_bot_token is None:
        raise SettingsError("TELEGRAM_BOT_TOKEN is not set (get one from @BotFather)")
    settings = with_dev_secret(settings, create=False)
    async with open_resources(settings) as resources:
        await polling_task(settings, resources, handle_signals=handle_signals)
