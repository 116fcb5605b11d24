"""Events cross processes: subscribed on one `serve` process, written through another."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from graphql_api.core.embedded import free_port
from tests.conftest import TEST_JWT_SECRET, GraphQLClient, make_person
from tests.graphql_api.schema.test_live import MESSAGE_EVENTS, SEND, SESSION_EVENTS, Subscription

COMMAND = str(Path(sys.executable).parent / "unified-sessions")


@contextlib.asynccontextmanager
async def serve(database_url: str) -> AsyncIterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update(DATABASE_URL=database_url, JWT_SECRET=TEST_JWT_SECRET)
    process = subprocess.Popen(
        [COMMAND, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            for _ in range(300):
                assert process.poll() is None, process.communicate()[0]
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.communicate, timeout=30)


async def test_a_write_through_one_api_process_reaches_a_subscriber_of_another(
    database_url: str,
) -> None:
    person = make_person()
    async with serve(database_url) as one, serve(database_url) as other:
        ws = one.replace("http://", "ws://") + "/graphql"
        sessions = Subscription(ws, person.token, SESSION_EVENTS, {"c": None})
        sessions_task = asyncio.create_task(sessions.run())
        try:
            await asyncio.sleep(0.5)
            sent = await GraphQLClient(other).ok(SEND, {"s": None, "c": "hi"}, token=person.token)
            session_id = sent["sendMessage"]["session"]["sessionId"]
            created = (await sessions.next())["sessionEvents"]
            assert (created["kind"], created["sessionId"]) == ("CREATED", session_id)

            history = Subscription(ws, person.token, MESSAGE_EVENTS, {"s": session_id})
            history_task = asyncio.create_task(history.run())
            await asyncio.sleep(0.5)
            await GraphQLClient(other).ok(SEND, {"s": session_id, "c": "again"}, token=person.token)
            first = (await history.next())["messageEvents"]
            assert (first["kind"], first["message"]["content"]) == ("ADDED", "again")
            history_task.cancel()
        finally:
            sessions_task.cancel()
            await asyncio.gather(sessions_task, return_exceptions=True)
