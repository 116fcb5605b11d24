"""Replies written through another door, sent to the session's Telegram chat by the worker.

A question asked on the web in a Telegram session is answered there and in Telegram: the API
writes a delivery row (graphql_api/core/deliveries.py) and the worker sends it with this. The
API uses only the targets, so aiogram is imported by the sender alone (a worker with a token).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

from graphql_api.core.channels import DeliveryPart, Send
from graphql_api.core.db import Executor
from graphql_api.core.deliveries import RetryLater, Undeliverable
from graphql_api.core.models import SessionRow
from graphql_api.core.settings import Settings, SettingsError

from . import chats, links

NOT_LINKED = "the person's Telegram account is not linked (any more)"


async def chat_for(db: Executor, session: SessionRow) -> str | None:
    """The session's chat, while it is the private chat of the Telegram account linked to the
    session's owner now: after an unlink, or a link to another account, its replies go nowhere
    (a private chat's id is its user's id)."""
    chat = chats.chat_of_session(session.session_id)
    link = await links.find_link_for_user(db, session.user_id)
    if chat is None or link is None or link.telegram_user_id != chat:
        return None
    return str(chat)


async def private_chat_of(db: Executor, user_id: uuid.UUID) -> str | None:
    """The person's private chat with the bot (its id is their Telegram user id), if linked."""
    link = await links.find_link_for_user(db, user_id)
    return str(link.telegram_user_id) if link else None


@contextlib.asynccontextmanager
async def telegram_sender(settings: Settings) -> AsyncIterator[Send]:
    if settings.telegram_bot_token is None:
        raise SettingsError("TELEGRAM_BOT_TOKEN is not set")
    from aiogram.exceptions import (
        TelegramAPIError,
        TelegramBadRequest,
        TelegramForbiddenError,
        TelegramRetryAfter,
    )

    from .delivery import send_text
    from .dispatcher import build_bot

    bot = build_bot(settings)

    async def send(target: str, text: str) -> None:
        try:
            await send_text(bot, int(target), text)
        except TelegramRetryAfter as exc:
            raise RetryLater(exc.retry_after, f"Telegram flood control: {exc.message}") from exc
        except (TelegramForbiddenError, TelegramBadRequest) as exc:
            raise Undeliverable(f"Telegram refused it: {exc.message}") from exc
        except TelegramAPIError as exc:
            raise RuntimeError(f"Telegram failed: {exc.message}") from exc

    try:
        yield send
    finally:
        await bot.session.close()


def telegram_delivery() -> DeliveryPart:
    return DeliveryPart(
        target=chat_for, sender=telegram_sender, no_target=NOT_LINKED, person_target=private_chat_of
    )
