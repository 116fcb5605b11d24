"""Long polling: `unified-sessions bot` on its own, or inside `unified-sessions dev`."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiogram import Dispatcher
from aiogram.utils.backoff import BackoffConfig

from graphql_api.core.devsecrets import with_dev_secret
from graphql_api.core.settings import Settings, SettingsError

from .dispatcher import build_bot, build_dispatcher
from .startup import TELEGRAM_BACKOFF, prepare_polling

if TYPE_CHECKING:
    from graphql_api.core.runtime import Resources

log = logging.getLogger(__name__)

# Update tasks at once. Most may be waiting behind their chat's earlier updates (holding nothing);
# the dispatcher bounds the ones being handled (ACTIVE_UPDATES), so one busy chat's burst does not
# use up the slots other chats need.
CONCURRENT_UPDATES = 256


async def polling_task(
    settings: Settings,
    resources: Resources,
    *,
    handle_signals: bool = False,
    backoff: BackoffConfig = TELEGRAM_BACKOFF,
) -> None:
    """Poll Telegram for updates until cancelled, in the caller's event loop and resources.

    The Bot API being down or answering garbage (at start-up or later) is logged and retried
    with `backoff`; only a refusal that retrying cannot change (a wrong token) stops polling.
    """
    if settings.telegram_webhook:
        print("TELEGRAM_WEBHOOK is on: the bot gets its updates at /telegram/webhook, not polling")
        return
    bot = build_bot(settings)
    dispatcher = build_dispatcher(resources)
    try:
        await prepare_polling(bot, backoff)
    except BaseException:
        await bot.session.close()
        raise
    polling = asyncio.create_task(
        dispatcher.start_polling(
            bot,
            handle_signals=handle_signals,
            close_bot_session=True,
            tasks_concurrency_limit=CONCURRENT_UPDATES,
            backoff_config=backoff,
        )
    )
    try:
        await asyncio.shield(polling)
    except asyncio.CancelledError:
        await _stop(dispatcher, polling)
        raise
    except Exception:
        log.exception("the Telegram bot stopped")
        raise


async def _stop(dispatcher: Dispatcher, polling: asyncio.Task[None]) -> None:
    """Stop polling through `stop_polling`: cancelling `start_polling` itself would leave its
    getUpdates loop running (it waits on that task with asyncio.wait, which cancels nothing)."""
    try:
        await dispatcher.stop_polling()
    except RuntimeError:  # "Polling is not started": nothing runs yet, so a cancel is clean
        polling.cancel()
    try:
        await polling
    except asyncio.CancelledError:
        pass
    except Exception:
        log.exception("the Telegram bot failed while stopping")


async def run_polling(settings: Settings, *, handle_signals: bool = True) -> None:
    """`unified-sessions bot`: its own database pool and agent, then poll until stopped
    (SIGINT/SIGTERM stop it gracefully)."""
    from graphql_api.core.runtime import open_resources

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
