"""Placeholder until the scheduled channel lands (issue 5)."""

from __future__ import annotations

import asyncio


async def worker_task(settings: object, resources: object) -> None:
    await asyncio.Event().wait()


def run_worker(settings: object) -> None:
    raise SystemExit("the worker is not built yet")
