"""One chat's updates are handled one at a time, in the order they arrived; other chats at once.

aiogram runs every polled update as its own task, and a webhook serves requests concurrently, so
without this two messages of one chat race: filed and stored in any order. Here each update
waits for the chat's earlier ones to be handled (filed, stored, queued); the worker then answers
them in that order (bots/turns.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import Chat, TelegramObject

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


@dataclass
class _ChatTurns:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    updates: int = 0  # holding or waiting for the lock


class OneChatInOrder(BaseMiddleware):
    """An outer update middleware: per chat FIFO, and at most `active` updates handled at once.

    Arrival order is kept because nothing here suspends before the update is in its chat's
    queue: asyncio.Lock takes a free lock at once and queues waiters first come, first served,
    and aiogram starts the update tasks in the order Telegram gave them. Waiting updates hold no
    database connection; `active` bounds the ones that are handled (and hold connections).
    """

    def __init__(self, *, active: int) -> None:
        self._chats: dict[int, _ChatTurns] = {}
        self._active = asyncio.Semaphore(active)

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        # Set by aiogram's UserContextMiddleware, an outer middleware that runs before this one.
        chat: Chat | None = data.get("event_chat")
        if chat is None:
            async with self._active:
                return await handler(event, data)
        turns = self._chats.setdefault(chat.id, _ChatTurns())
        turns.updates += 1
        try:
            async with turns.lock, self._active:
                return await handler(event, data)
        finally:
            turns.updates -= 1
            if turns.updates == 0:
                del self._chats[chat.id]
