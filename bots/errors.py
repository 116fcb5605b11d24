"""Telegram API errors a handler cannot do anything about: logged and dropped, never fatal.

Transient ones (network, Telegram's own 5xx) are not handled here: polling logs them, and a
webhook request answers 500 so that Telegram redelivers the update (which changes nothing
stored, and sends the stored reply again).
"""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNotFound,
    TelegramRetryAfter,
)
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import ErrorEvent

log = logging.getLogger(__name__)


def _chat_of(event: ErrorEvent) -> int | None:
    message = event.update.message
    return message.chat.id if message is not None else None


async def blocked(event: ErrorEvent) -> bool:
    log.info("cannot write to chat %s (%s); reply dropped", _chat_of(event), event.exception)
    return True


async def flooded(event: ErrorEvent) -> bool:
    exception = event.exception
    assert isinstance(exception, TelegramRetryAfter)
    log.warning(
        "Telegram flood control still on after retries (retry after %ss) in chat %s; "
        "reply dropped (it is stored in the session)",
        exception.retry_after,
        _chat_of(event),
    )
    return True


async def refused(event: ErrorEvent) -> bool:
    log.warning("Telegram refused a request for chat %s: %s", _chat_of(event), event.exception)
    return True


def build_router() -> Router:
    router = Router(name="telegram-errors")
    router.error.register(blocked, ExceptionTypeFilter(TelegramForbiddenError))
    router.error.register(flooded, ExceptionTypeFilter(TelegramRetryAfter))
    router.error.register(refused, ExceptionTypeFilter(TelegramBadRequest, TelegramNotFound))
    return router
