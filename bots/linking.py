"""/start CODE links this Telegram account to a person; /unlink removes the link; /help."""

from __future__ import annotations

import asyncpg
from aiogram import Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import Message

from . import links, texts
from .links import RedeemOutcome


async def start(message: Message, command: CommandObject, pool: asyncpg.Pool) -> None:
    sender = message.from_user
    assert sender is not None
    if not command.args:
        link = await links.find_link(pool, sender.id)
        await message.answer(texts.WELCOME_LINKED if link else texts.HOW_TO_LINK)
        return
    code = command.args.strip()
    result = await links.redeem_link_code(
        pool, code, telegram_user_id=sender.id, telegram_username=sender.username
    )
    if result.outcome is RedeemOutcome.LINKED_ELSEWHERE:
        await message.answer(texts.LINKED_ELSEWHERE.format(code=code))
    else:
        await message.answer(texts.REDEEMED[result.outcome])


async def unlink(message: Message, pool: asyncpg.Pool) -> None:
    sender = message.from_user
    assert sender is not None
    removed = await links.unlink(pool, telegram_user_id=sender.id)
    await message.answer(texts.UNLINKED if removed else texts.NOT_LINKED)


async def help_(message: Message, pool: asyncpg.Pool) -> None:
    sender = message.from_user
    assert sender is not None
    link = await links.find_link(pool, sender.id)
    await message.answer(texts.HELP if link else texts.HOW_TO_LINK)


def build_router() -> Router:
    router = Router(name="telegram-linking")
    router.message.register(start, CommandStart())
    router.message.register(unlink, Command("unlink"))
    router.message.register(help_, Command("help"))
    return router
