"""The outbox survives a killed worker: SIGKILLed in the middle of a send, the next worker sends
the delivery again once the claim's lease has passed. One reply in the registry, delivered."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qsl

import asyncpg
import pytest
from arq.connections import ArqRedis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from graphql_api.core.settings import Settings
from tests.conftest import GraphQLClient, make_person, running_server
from tests.graphql_api.seed import make_session

COMMAND = str(Path(sys.executable).parent / "unified-sessions")
BOT_TOKEN = "1234567:kill-test-token"
CHAT = 777001
SEND = """mutation($s: String!, $c: String!) {
  sendMessage(input: {sessionId: $s, content: $c}) { reply { id content } } }"""


class HangingBotApi:
    """A Bot API stand-in whose first sendMessage to CHAT never answers (the worker is killed
    then). Only CHAT's messages are recorded: the workers here also send what other tests left
    due in the shared database, to other chats."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.first_arrived = asyncio.Event()
        self.never = asyncio.Event()

    def app(self) -> Starlette:
        async def call(request: Request) -> JSONResponse:
            params = dict(parse_qsl((await request.body()).decode()))
            if request.path_params["method"] == "sendMessage":
                if params["chat_id"] == str(CHAT) and not self.first_arrived.is_set():
                    self.first_arrived.set()
                    await self.never.wait()  # the worker dies waiting for this answer
                if params["chat_id"] == str(CHAT):
                    self.sent.append(params["text"])
                result: object = {
                    "message_id": len(self.sent),
                    "date": 0,
                    "chat": {"id": CHAT, "type": "private"},
                    "text": params["text"],
                }
            else:
                result = True
            return JSONResponse({"ok": True, "result": result})

        return Starlette(routes=[Route("/bot{token}/{method}", call, methods=["POST"])])


@pytest.fixture
async def bot_api() -> AsyncIterator[tuple[HangingBotApi, str]]:
    stand_in = HangingBotApi()
    async with running_server(stand_in.app()) as url:
        yield stand_in, url
        stand_in.never.set()


def start_worker(settings: Settings, api_url: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update(
        DATABASE_URL=settings.require_database_url(),
        REDIS_URL=settings.require_redis_url(),
        WORKER_QUEUE=settings.worker_queue,
        TELEGRAM_BOT_TOKEN=BOT_TOKEN,
        TELEGRAM_API_BASE=api_url,
        DELIVERY_LEASE_SECONDS="2",
    )
    return subprocess.Popen(
        [COMMAND, "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


@pytest.fixture
async def leaves_no_jobs(worker_settings: Settings, arq_redis: ArqRedis) -> AsyncIterator[None]:
    """The killed worker's delivery job comes back deferred (arq re-queues an unfinished job):
    on the queue the other tests share, it would keep their burst workers waiting for it."""
    yield
    await arq_redis.delete(worker_settings.worker_queue)


@pytest.mark.usefixtures("leaves_no_jobs")
async def test_a_worker_killed_mid_send_loses_no_delivery(
    worker_settings: Settings,
    schedules_api: GraphQLClient,
    pool: asyncpg.Pool,
    bot_api: tuple[HangingBotApi, str],
) -> None:
    stand_in, api_url = bot_api
    person = make_person()
    await pool.execute(
        "INSERT INTO telegram_links (telegram_user_id, user_id) VALUES ($1, $2)",
        CHAT,
        person.user_id,
    )
    session = await make_session(
        pool, person.user_id, channel="telegram", session_id=f"tg-{CHAT}-1"
    )
    first = start_worker(worker_settings, api_url)
    try:
        sent = await schedules_api.ok(
            SEND, {"s": session.session_id, "c": "are you still there?"}, token=person.token
        )
        reply = sent["sendMessage"]["reply"]["content"]
        await asyncio.wait_for(stand_in.first_arrived.wait(), 60)  # the first worker is sending
    finally:
        first.send_signal(signal.SIGKILL)
        await asyncio.to_thread(first.wait, 30)
    assert first.returncode == -signal.SIGKILL

    second = start_worker(worker_settings, api_url)
    try:
        async with asyncio.timeout(60):
            while stand_in.sent != [reply]:
                await asyncio.sleep(0.2)
        async with asyncio.timeout(10):
            while (await _delivery(pool, session.session_id))["status"] != "sent":
                await asyncio.sleep(0.2)
    finally:
        second.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(second.communicate, timeout=30)
    delivery = await _delivery(pool, session.session_id)
    assert (delivery["status"], delivery["attempts"]) == ("sent", 2), output
    replies = await pool.fetchval(
        "SELECT count(*) FROM chat_message_history WHERE session_id = $1 "
        "AND message->>'type' = 'ai'",
        session.session_id,
    )
    assert replies == 1


async def _delivery(pool: asyncpg.Pool, session_id: str) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT d.status, d.attempts FROM message_deliveries d "
        "JOIN chat_message_history m ON m.id = d.message_id WHERE m.session_id = $1",
        session_id,
    )
    assert row is not None
    return row
