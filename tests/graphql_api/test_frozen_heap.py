"""`serve` freezes each worker's start-up heap once the app has started (graphql_api.server)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.types import Message

from graphql_api.server import FrozenStartupHeap


async def test_objects_alive_at_startup_are_frozen_only_once_startup_completes() -> None:
    made_at_startup: list[object] = []
    frozen_during_startup: list[int] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        made_at_startup.extend({"n": n} for n in range(10_000))
        frozen_during_startup.append(gc.get_freeze_count())
        yield

    app = FrozenStartupHeap(Starlette(lifespan=lifespan))
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    gc.unfreeze()
    try:
        running = asyncio.create_task(
            app(
                {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put
            )
        )
        await inbox.put({"type": "lifespan.startup"})
        assert (await outbox.get())["type"] == "lifespan.startup.complete"
        assert frozen_during_startup == [0]
        assert gc.get_freeze_count() >= len(made_at_startup)
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
        await running
    finally:
        gc.unfreeze()
