"""Placeholder until the Telegram channel lands (issue 4)."""

from __future__ import annotations

import asyncio


async def polling_task(settings: object, resources: object) -> None:
    await asyncio.Event().wait()


async def run_polling(settings: object) -> None:
    raise SystemExit("the bot is not built yet")
