"""/sessions lists the person's recent sessions from every channel; /resume N continues one here.

The list is numbered newest activity first and read again by /resume, so N is the number the
latest /sessions showed unless the person's sessions moved meanwhile (the reply names the
session it resumed, so a moved list is noticed).
"""

from __future__ import annotations

import asyncpg
from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from graphql_api.core import messages, sessions
from graphql_api.core.models import SessionRow

from . import chats, links, texts

LISTED = 10
FIRST_WORDS = 60  # characters of a session's first message shown as its name


async def _recent(pool: asyncpg.Pool, link: links.TelegramLink) -> list[tuple[SessionRow, str]]:
    rows = await sessions.list_sessions(pool, link.user_id, limit=LISTED)
    firsts = await messages.first_messages(pool, [r.session_id for r in rows])
    return [(row, _name(row, firsts.get(row.session_id))) for row in rows]


def _name(row: SessionRow, first: str | None) -> str:
    words = " ".join((row.title or first or "").split())
    if not words:
        return f"({row.agent_name}, no messages yet)"
    return words if len(words) <= FIRST_WORDS else words[: FIRST_WORDS - 1].rstrip() + "…"


async def list_sessions(message: Message, pool: asyncpg.Pool) -> None:
    link = await _linked(message, pool)
    if link is None:
        return
    recent = await _recent(pool, link)
    if not recent:
        await message.answer(texts.NO_SESSIONS)
        return
    current = await _current(message, pool, link)
    lines = [
        f"{n}. {'▶ ' if row.session_id == current else ''}[{row.channel}] {name}"
        for n, (row, name) in enumerate(recent, start=1)
    ]
    await message.answer(texts.SESSIONS.format(list="\n".join(lines)))


async def resume(message: Message, command: CommandObject, pool: asyncpg.Pool) -> None:
    link = await _linked(message, pool)
    if link is None:
        return
    recent = await _recent(pool, link)
    arg = (command.args or "").strip()
    if not (arg.isascii() and arg.isdigit()) or not 1 <= int(arg) <= len(recent):
        await message.answer(texts.RESUME_HOW.format(count=len(recent)))
        return
    row, name = recent[int(arg) - 1]
    resumed = await chats.resume_session(
        pool,
        telegram_chat_id=message.chat.id,
        telegram_user_id=link.telegram_user_id,
        user_id=link.user_id,
        session_id=row.session_id,
    )
    if not resumed:
        await message.answer(texts.RESUME_GONE)
        return
    await message.answer(texts.RESUMED.format(channel=row.channel, name=name))


async def _linked(message: Message, pool: asyncpg.Pool) -> links.TelegramLink | None:
    sender = message.from_user
    assert sender is not None
    link = await links.find_link(pool, sender.id)
    if link is None:
        await message.answer(texts.HOW_TO_LINK)
    return link


async def _current(message: Message, pool: asyncpg.Pool, link: links.TelegramLink) -> str | None:
    current: str | None = await pool.fetchval(
        "SELECT session_id FROM telegram_chats WHERE telegram_chat_id = $1 AND user_id = $2",
        message.chat.id,
        link.user_id,
    )
    return current


def build_router() -> Router:
    router = Router(name="telegram-resuming")
    router.message.register(list_sessions, Command("sessions"))
    router.message.register(resume, Command("resume"))
    return router
