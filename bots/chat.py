"""A linked person's messages: each one is a turn in the chat's current session; /new.

Each message is filed under the session it arrives in (chats.file_message), so a
redelivery goes there too, and once answered is not answered again. Its turn is queued: the
worker answers it (bots/turns.py).
"""

from __future__ import annotations

import logging

import asyncpg
from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import Message

from graphql_api.core import conversation, messages, sessions
from graphql_api.core.errors import DomainError
from graphql_api.core.settings import Settings
from graphql_api.core.tokens import SERVICE_ROLE, Viewer

from . import chats, links, texts, turns
from .channel import TELEGRAM
from .incoming import incoming_text

log = logging.getLogger(__name__)


async def _link_of(message: Message, pool: asyncpg.Pool) -> links.TelegramLink | None:
    sender = message.from_user
    assert sender is not None
    link = await links.find_link(pool, sender.id)
    if link is None:
        # The spec's existing behaviour: an unlinked sender is told how to link, nothing is stored.
        await message.answer(texts.HOW_TO_LINK)
    return link


async def new_session(message: Message, pool: asyncpg.Pool) -> None:
    link = await _link_of(message, pool)
    if link is None:
        return
    started = await chats.start_new_session(
        pool,
        telegram_chat_id=message.chat.id,
        telegram_user_id=link.telegram_user_id,
        user_id=link.user_id,
        message_id=message.message_id,
    )
    if started.done:
        return  # a redelivery of a /new that was done and confirmed
    await message.answer(texts.NEW_SESSION)
    await _answered(message, pool)


async def chat(
    message: Message,
    pool: asyncpg.Pool,
    settings: Settings,
    queue_chat: turns.QueueChat | None,
) -> None:
    """File the message, store it in its session and queue the chat's turn (bots/turns.py):
    the worker answers it. Nothing here waits for the agent."""
    link = await _link_of(message, pool)
    if link is None:
        return
    text = messages.validate_content(incoming_text(message) or "")
    filed = await chats.file_message(
        pool,
        telegram_chat_id=message.chat.id,
        telegram_user_id=link.telegram_user_id,
        user_id=link.user_id,
        message_id=message.message_id,
        text=text,
    )
    if filed.done:
        return  # a redelivery of a message that was answered: nothing new
    # The session is written only when it must be created (or activated: a first-time message
    # in it). Anything else (another person's id, another channel's) goes to the upsert, which
    # refuses it. A session of another channel is one the person resumed here (/resume).
    try:
        await _store(message, pool, settings, link, filed, text)
    except (asyncpg.ForeignKeyViolationError, DomainError) as gone:
        # Its session was deleted between filing and storing (the deletion marked it answered).
        log.info("chat %s: message not stored, its session is gone (%s)", message.chat.id, gone)
        return
    if queue_chat is not None:  # without Redis, the worker's sweep finds it
        await queue_chat(message.chat.id)


async def _store(
    message: Message,
    pool: asyncpg.Pool,
    settings: Settings,
    link: links.TelegramLink,
    filed: chats.HandledMessage,
    text: str,
) -> None:
    session = filed.session  # the person's session row, read as the message was filed
    if session is None or (
        session.channel == TELEGRAM and filed.first_time and not session.is_active
    ):
        session = await sessions.upsert_session(
            pool,
            Viewer(user_id=link.user_id, role=SERVICE_ROLE),
            sessions.SessionUpsert(
                session_id=filed.session_id,
                channel=TELEGRAM,
                # A redelivery answered in an earlier session after /new leaves it inactive.
                is_active=True if filed.first_time else None,
                user_id=link.user_id,
            ),
            default_agent_name=settings.default_agent_name,
        )
    await conversation.store_message(
        pool,
        session,
        text,
        idempotency_key=turns.idempotency_key(message.chat.id, message.message_id),
        via=TELEGRAM,
    )


async def _answered(message: Message, pool: asyncpg.Pool) -> None:
    """Delivered: a redelivery of this update sends nothing again (until then, it re-sends)."""
    await chats.mark_answered(pool, telegram_chat_id=message.chat.id, message_id=message.message_id)


async def not_text(message: Message, pool: asyncpg.Pool) -> None:
    if await _link_of(message, pool) is not None:
        await message.answer(texts.TEXT_ONLY)


def build_router() -> Router:
    router = Router(name="telegram-chat")
    router.message.register(new_session, Command("new"))
    router.message.register(chat, F.text | F.caption)  # a caption is read as text
    router.message.register(not_text)
    return router
