"""Talking back to Telegram: long texts in pieces, "typing" while the agent works, flood control."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.enums import ChatAction
from aiogram.exceptions import TelegramAPIError, TelegramRetryAfter
from aiogram.methods import SendChatAction, TelegramMethod

log = logging.getLogger(__name__)

TEXT_LIMIT = 4096  # Telegram's limit for one message, in UTF-16 code units
TYPING_INTERVAL = 4.5  # Telegram shows "typing" for 5 seconds
DRAFT_INTERVAL = 0.5  # seconds between updates of a reply's draft


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Pieces of at most `limit` UTF-16 units, cut at a paragraph, line or space when one is
    near the end of a piece. Joined, they give back the text (blank pieces are left out)."""
    pieces: list[str] = []
    rest = text
    while _utf16_len(rest) > limit:
        cut = _fitting_prefix(rest, limit)
        for separator in ("\n\n", "\n", " "):
            at = rest.rfind(separator, cut // 2, cut)
            if at > 0:
                cut = at + len(separator)
                break
        pieces.append(rest[:cut])
        rest = rest[cut:]
    pieces.append(rest)
    return [piece for piece in pieces if piece.strip()]


def _utf16_len(text: str) -> int:
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _fitting_prefix(text: str, limit: int) -> int:
    units = 0
    for index, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)


async def send_text(bot: Bot, chat_id: int, text: str) -> None:
    """Send a reply of any length as plain text (no markup to break), in order."""
    for piece in split_text(text) or ["…"]:
        await bot.send_message(chat_id=chat_id, text=piece)


class Draft:
    """A reply growing in the chat while the agent writes it (Bot API sendMessageDraft, private
    chats): at most one update per DRAFT_INTERVAL, the text cut to Telegram's limit. It is a
    preview only: the reply is then sent as a normal message. A refused draft (an older Bot API,
    a rate limit) stops the drafts of this reply; "typing" stays shown meanwhile."""

    def __init__(self, bot: Bot, chat_id: int, draft_id: int) -> None:
        self.bot, self.chat_id, self.draft_id = bot, chat_id, draft_id
        self._last = -DRAFT_INTERVAL
        self._working = True

    async def show(self, text: str) -> None:
        now = asyncio.get_running_loop().time()
        if not self._working or now - self._last < DRAFT_INTERVAL:
            return
        self._last = now
        try:
            await self.bot.send_message_draft(
                chat_id=self.chat_id, draft_id=self.draft_id, text=(split_text(text) or [""])[0]
            )
        except TelegramAPIError as exc:
            self._working = False
            log.debug("no drafts in chat %s: %s", self.chat_id, exc)


@contextlib.asynccontextmanager
async def typing(bot: Bot, chat_id: int) -> AsyncIterator[None]:
    """Show "typing" in the chat until the block ends. A failure to show it is only logged."""

    async def show() -> bool:
        try:
            await bot.send_chat_action(chat_id=chat_id, action=ChatAction.TYPING)
        except TelegramAPIError as exc:
            log.debug("could not show typing in chat %s: %s", chat_id, exc)
            return False
        return True

    async def keep_showing() -> None:
        while True:
            await asyncio.sleep(TYPING_INTERVAL)
            if not await show():
                return

    task = asyncio.create_task(keep_showing()) if await show() else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class RetryAfter(BaseRequestMiddleware):
    """Flood control: on `retry_after`, wait as told and send again, a bounded number of times.

    A wait longer than `max_wait` is not waited for (the error goes to the error handlers), and
    chat actions are never retried (they are only decoration).
    """

    def __init__(self, *, attempts: int = 3, max_wait: float = 30.0) -> None:
        self.attempts = attempts
        self.max_wait = max_wait

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[Any],
        bot: Bot,
        method: TelegramMethod[Any],
    ) -> Any:
        attempt = 1
        while True:
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if (
                    attempt >= self.attempts
                    or exc.retry_after > self.max_wait
                    or isinstance(method, SendChatAction)
                ):
                    raise
                log.warning(
                    "Telegram flood control on %s: retrying in %ss (attempt %d of %d)",
                    method.__api_method__,
                    exc.retry_after,
                    attempt + 1,
                    self.attempts,
                )
                await asyncio.sleep(exc.retry_after)
                attempt += 1
