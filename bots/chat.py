"""A linked person's messages: each one is a turn in the chat's current session; /new.

Each message is filed under the session it arrives in (links.file_message), so a
redelivery goes there too, and once answered is not answered again.
"""

from __future__ import annotations

import asyncpg
from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import Message

from graphql_api.core import conversation, sessions
from graphql_api.core.agent import Agent
from graphql_api.core.settings import Settings
from graphql_api.core.tokens import SERVICE_ROLE, Viewer

from . import links, texts
from .channel import TELEGRAM
from .delivery import Draft, send_text, typing
from .incoming import incoming_text


def idempotency_key(message: Message) -> str:
    """Stable across Telegram's redeliveries of the same message."""
    return f"tg:{message.chat.id}:{message.message_id}"


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
    started = await links.start_new_session(
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
    message: Message, bot: Bot, pool: asyncpg.Pool, agent: Agent, settings: Settings
) -> None:
    link = await _link_of(message, pool)
    if link is None:
        return
    filed = await links.file_message(
        pool,
        telegram_chat_id=message.chat.id,
        telegram_user_id=link.telegram_user_id,
        user_id=link.user_id,
        message_id=message.message_id,
    )
    if filed.done:
        return  # a redelivery of a message whose answer was delivered: nothing new
    # The session is written once per message, by the turn; before it only when it must be
    # created (or activated: a first-time message in it). Anything else (another person's id,
    # another channel's) goes to the upsert, which refuses it.
    session = filed.session  # the person's session row, read as the message was filed
    # A session of another channel is one the person resumed here (/resume): used as it is.
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
    draft = Draft(bot, message.chat.id, draft_id=message.message_id)
    async with typing(bot, message.chat.id):
        turn = await conversation.run_turn(
            pool,
            agent,
            session,
            incoming_text(message) or "",
            idempotency_key=idempotency_key(message),
            agent_timeout=settings.agent_timeout,
            on_progress=draft.show,
            via=TELEGRAM,
        )
    if turn.reply is None:
        # The message is stored and the failure recorded on the session by run_turn.
        await message.answer(texts.AGENT_FAILED)
        return
    await send_text(bot, message.chat.id, turn.reply.content)
    await _answered(message, pool)


async def _answered(message: Message, pool: asyncpg.Pool) -> None:
    """Delivered: a redelivery of this update sends nothing again (until then, it re-sends)."""
    await links.mark_answered(pool, telegram_chat_id=message.chat.id, message_id=message.message_id)


async def not_text(message: Message, pool: asyncpg.Pool) -> None:
    if await _link_of(message, pool) is not None:
        await message.answer(texts.TEXT_ONLY)


def build_router() -> Router:
    router = Router(name="telegram-chat")
    router.message.register(new_session, Command("new"))
    router.message.register(chat, F.text | F.caption)  # a caption is read as text
    router.message.register(not_text)
    return router
