"""The bot (a Bot API client) and the dispatcher (routers + injected dependencies)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiogram import Bot, Dispatcher, F
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ChatType
from aiogram.utils.token import TokenValidationError

from graphql_api.core.settings import Settings, SettingsError

from . import chat, errors, linking, resuming, turns
from .delivery import RetryAfter
from .ordering import OneChatInOrder

if TYPE_CHECKING:
    from graphql_api.core.runtime import Resources

# Updates handled at once (each holds a database connection now and then); more may wait,
# each behind the earlier updates of its chat.
ACTIVE_UPDATES = 32


def build_bot(settings: Settings, *, session: BaseSession | None = None) -> Bot:
    """A Bot API client; TELEGRAM_API_BASE points it at another Bot API server."""
    if settings.telegram_bot_token is None:
        raise SettingsError("TELEGRAM_BOT_TOKEN is not set")
    if session is None:
        if settings.telegram_api_base:
            api = TelegramAPIServer.from_base(settings.telegram_api_base)
            session = AiohttpSession(api=api)
        else:
            session = AiohttpSession()
    session.middleware(RetryAfter())
    try:
        return Bot(str(settings.telegram_bot_token), session=session)
    except TokenValidationError:
        raise SettingsError(
            "TELEGRAM_BOT_TOKEN does not look like a bot token (123:ABC...)"
        ) from None


def build_dispatcher(resources: Resources) -> Dispatcher:
    """Routers in order: linking commands, /sessions and /resume, chat, then error handling.

    Handlers get `pool`, `agent`, `settings` and `queue_chat` (how a chat's turn is queued for
    the worker) injected from the dispatcher's workflow data.
    Only private chats are served: a person's assistant is not a group member. One chat's
    updates are handled one at a time, in arrival order (see bots/ordering.py).
    """
    dp = Dispatcher(name="unified-sessions", disable_fsm=True)
    dp["pool"] = resources.pool
    dp["agent"] = resources.agent
    dp["settings"] = resources.settings
    dp["queue_chat"] = turns.chat_queue(resources.redis, resources.settings.worker_queue)
    dp.update.outer_middleware(OneChatInOrder(active=ACTIVE_UPDATES))
    dp.message.filter(F.chat.type == ChatType.PRIVATE)
    dp.include_routers(
        linking.build_router(),
        resuming.build_router(),
        chat.build_router(),
        errors.build_router(),
    )
    return dp
