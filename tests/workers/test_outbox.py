"""Continue on the web, answered in Telegram: the outbox, sent by a real arq worker to a Bot API
stand-in over HTTP, retried, and failed with a reason after bounded attempts."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from arq.connections import ArqRedis
from arq.constants import job_key_prefix

from graphql_api.core import deliveries
from graphql_api.core.agent import EchoAgent
from graphql_api.core.runtime import Resources
from graphql_api.core.settings import Settings
from tests.bots.conftest import (
    BotHarness,
    FakeTelegram,
    TelegramUser,
    bot_settings,
    fake_bot_api_app,
    harness,
    link,
)
from tests.conftest import GraphQLClient, Person, make_person, running_server

from .conftest import ScheduleIds, Workers

SEND = """
mutation($s: String!, $c: String!) {
  sendMessage(input: {sessionId: $s, content: $c}) {
    userMessage { via }
    reply { id via content deliveries { channel status attempts lastError sentAt } }
  }
}
"""
MESSAGE = """
query($id: ID!) { node(id: $id) { ... on ChatMessage {
  deliveries { channel status attempts lastError sentAt } } } }
"""
TELEGRAM_SESSION = "{ sessions(channel: TELEGRAM) { edges { node { sessionId } } } }"


@dataclass
class Outbox:
    api: GraphQLClient
    fake: FakeTelegram
    tg: BotHarness
    workers: Workers
    pool: asyncpg.Pool
    resources: Resources


@pytest.fixture
async def outbox(
    worker_settings: Settings,
    resources: Resources,
    schedules_api: GraphQLClient,
    pool: asyncpg.Pool,
    schedule_ids: ScheduleIds,
) -> AsyncIterator[Outbox]:
    fake = FakeTelegram()
    async with running_server(fake_bot_api_app(fake)) as api_url:
        settings = bot_settings(
            worker_settings, telegram_api_base=api_url, worker_queue=worker_settings.worker_queue
        )
        # Linking needs only the bot; the workers here are the tests' own bursts.
        async with harness(settings, resources, answers=False) as tg:
            yield Outbox(
                schedules_api, fake, tg, Workers(settings, pool, schedule_ids), pool, resources
            )


async def telegram_conversation(outbox: Outbox, person: Person) -> tuple[TelegramUser, str]:
    """A person linked on Telegram who has said something there: their Telegram session."""
    user = TelegramUser()
    await link(outbox.tg, outbox.api, user, person)
    # Answered by a worker of its own, on its own Bot API stand-in: the tests' bursts see only
    # the deliveries they cause.
    async with harness(outbox.workers.settings, outbox.resources) as tg:
        await tg.send(user, "started on Telegram")
    data = await outbox.api.ok(TELEGRAM_SESSION, token=person.token)
    [edge] = data["sessions"]["edges"]
    return user, edge["node"]["sessionId"]


async def test_a_web_question_in_a_telegram_session_is_answered_in_telegram(
    outbox: Outbox,
) -> None:
    person = make_person()
    user, session_id = await telegram_conversation(outbox, person)

    sent = await outbox.api.ok(
        SEND, {"s": session_id, "c": "continued on the web"}, token=person.token
    )
    message = sent["sendMessage"]
    assert message["userMessage"]["via"] == "WEB" and message["reply"]["via"] == "WEB"
    [queued] = message["reply"]["deliveries"]
    assert (queued["channel"], queued["status"], queued["attempts"]) == ("TELEGRAM", "PENDING", 0)

    await outbox.workers.burst(EchoAgent())  # its start-up sweep sends what is due

    texts = outbox.fake.texts_to(user.chat_id)
    assert texts == [message["reply"]["content"]]
    [delivered] = (
        await outbox.api.ok(MESSAGE, {"id": message["reply"]["id"]}, token=person.token)
    )["node"]["deliveries"]
    assert (delivered["status"], delivered["attempts"]) == ("SENT", 1)
    assert delivered["sentAt"] is not None and delivered["lastError"] is None

    await outbox.workers.burst(EchoAgent())  # sent once: nothing is sent again
    assert outbox.fake.texts_to(user.chat_id) == texts


async def test_two_workers_send_one_chats_replies_in_the_order_they_were_written(
    outbox: Outbox,
) -> None:
    """Two workers on the queue at once, each free to take any due delivery: a chat still gets
    its replies one at a time, oldest first (a newer one waits while an older one is pending)."""
    person = make_person()
    user, session_id = await telegram_conversation(outbox, person)
    replies = []
    for n in range(6):
        sent = await outbox.api.ok(SEND, {"s": session_id, "c": f"web {n}"}, token=person.token)
        replies.append(sent["sendMessage"]["reply"]["content"])

    outbox.fake.send_delay = (0.0, 0.05)
    await asyncio.gather(outbox.workers.burst(EchoAgent()), outbox.workers.burst(EchoAgent()))

    assert outbox.fake.texts_to(user.chat_id) == replies


async def due_now(pool: asyncpg.Pool, chat_id: int) -> None:
    """Makes this chat's deliveries due, and no one else's: a delivery other tests left pending
    would take the stand-in's queued failures."""
    await pool.execute(
        "UPDATE message_deliveries SET next_attempt_at = now() WHERE target = $1", str(chat_id)
    )


BACKLOG = 150  # more than a sweep lists (deliveries.due's limit)


async def test_a_backlog_behind_a_retry_does_not_hide_other_chats_from_the_sweep(
    outbox: Outbox, arq_redis: ArqRedis
) -> None:
    """Another chat's deliveries wait behind its oldest one, which is retrying later: however
    many they are, the sweep still finds this chat's due reply and the worker sends it."""
    person = make_person()
    user, session_id = await telegram_conversation(outbox, person)
    backlog_target = f"backlog-{uuid.uuid4()}"
    message_ids = await outbox.pool.fetch(
        "INSERT INTO chat_message_history (session_id, message) "
        "SELECT $1, jsonb_build_object('type', 'ai', 'data', "
        "jsonb_build_object('content', 'queued ' || n)) FROM generate_series(0, $2) AS n "
        "RETURNING id",
        session_id,
        BACKLOG,
    )
    try:
        # Its oldest retries in an hour; the rest were due an hour ago (longer than any other).
        await outbox.pool.execute(
            "INSERT INTO message_deliveries (message_id, channel, target, next_attempt_at) "
            "SELECT id, 'telegram', $2, CASE WHEN id = (SELECT min(i) FROM unnest($1::bigint[]) "
            "AS i) THEN now() + interval '1 hour' ELSE now() - interval '1 hour' END "
            "FROM unnest($1::bigint[]) AS id",
            [r["id"] for r in message_ids],
            backlog_target,
        )
        sent = await outbox.api.ok(
            SEND, {"s": session_id, "c": "behind no one"}, token=person.token
        )
        reply = sent["sendMessage"]["reply"]
        # As if Redis had lost the reply's job: only the sweep can find the row.
        queue = outbox.workers.settings.worker_queue
        [delivery_id] = await outbox.pool.fetch(
            "SELECT d.id FROM message_deliveries d JOIN chat_message_history m "
            "ON m.id = d.message_id WHERE m.session_id = $1 AND d.status = 'pending' "
            "AND d.target = $2",
            session_id,
            str(user.chat_id),
        )
        await arq_redis.delete(queue, job_key_prefix + f"delivery:{queue}:{delivery_id[0]}:0")

        await outbox.workers.burst(EchoAgent())

        assert outbox.fake.texts_to(user.chat_id).count(reply["content"]) == 1
        pending = await outbox.pool.fetchval(
            "SELECT count(*) FROM message_deliveries WHERE target = $1 AND status = 'pending' "
            "AND attempts = 0",
            backlog_target,
        )
        assert pending == BACKLOG + 1  # the backlog still waits for its oldest
    finally:
        await outbox.pool.execute(
            "DELETE FROM chat_message_history WHERE id = ANY($1::bigint[])",
            [r["id"] for r in message_ids],
        )


async def test_a_failing_bot_api_is_retried_then_failed_with_its_reason(outbox: Outbox) -> None:
    person = make_person()
    user, session_id = await telegram_conversation(outbox, person)
    sent = await outbox.api.ok(SEND, {"s": session_id, "c": "are you there?"}, token=person.token)
    reply_id = sent["sendMessage"]["reply"]["id"]

    # Flood control longer than the bot waits by itself: the row waits as Telegram says.
    outbox.fake.fail_next(
        "sendMessage", status=429, description="Too Many Requests", retry_after=120
    )
    await outbox.workers.burst(EchoAgent())
    row = await outbox.pool.fetchrow(
        "SELECT status, attempts, last_error, next_attempt_at - now() AS wait "
        "FROM message_deliveries d JOIN chat_message_history m ON m.id = d.message_id "
        "WHERE m.session_id = $1 AND m.via = 'web'",  # not the Telegram turn's own reply
        session_id,
    )
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert "flood control" in row["last_error"].lower()
    assert 100 < row["wait"].total_seconds() <= 120

    # Then the Bot API fails on every attempt: after MAX_ATTEMPTS the delivery is failed.
    outbox.fake.fail_next(
        "sendMessage",
        status=500,
        description="Internal Server Error",
        times=deliveries.MAX_ATTEMPTS,
    )
    for _ in range(deliveries.MAX_ATTEMPTS - 1):
        await due_now(outbox.pool, user.chat_id)
        await outbox.workers.burst(EchoAgent())
    [failed] = (await outbox.api.ok(MESSAGE, {"id": reply_id}, token=person.token))["node"][
        "deliveries"
    ]
    assert (failed["status"], failed["attempts"]) == ("FAILED", deliveries.MAX_ATTEMPTS)
    assert "Internal Server Error" in failed["lastError"]
    # One Bot API call per attempt (the stand-in records refused calls too), none after.
    tried = [t for t in outbox.fake.texts_to(user.chat_id) if "are you there?" in t]
    assert len(tried) == deliveries.MAX_ATTEMPTS
    await due_now(outbox.pool, user.chat_id)
    await outbox.workers.burst(EchoAgent())
    assert len([t for t in outbox.fake.texts_to(user.chat_id) if "are you there?" in t]) == len(
        tried
    )


async def test_a_telegram_session_whose_account_was_unlinked_fails_at_once(
    outbox: Outbox,
) -> None:
    person = make_person()
    _, session_id = await telegram_conversation(outbox, person)
    await outbox.api.ok("mutation { unlinkTelegram }", token=person.token)
    sent = await outbox.api.ok(SEND, {"s": session_id, "c": "still there?"}, token=person.token)
    [delivery] = sent["sendMessage"]["reply"]["deliveries"]
    assert delivery["status"] == "FAILED"
    assert "not linked" in delivery["lastError"]


async def test_a_scheduled_session_takes_a_web_message_and_sends_nothing(
    outbox: Outbox,
) -> None:
    person = make_person()
    schedule = await outbox.workers.create(person.user_id)
    await outbox.workers.make_due(schedule.id)
    await outbox.workers.burst(EchoAgent())
    [row] = await outbox.workers.sessions_of(schedule.agent_name)
    sent = await outbox.api.ok(
        SEND, {"s": row["session_id"], "c": "tell me more"}, token=person.token
    )
    assert sent["sendMessage"]["reply"]["deliveries"] == []
    assert sent["sendMessage"]["userMessage"]["via"] == "WEB"


RUN_NOW = "mutation($id: ID!) { runScheduleNow(id: $id) { queued } }"
CREATE = """
mutation($input: CreateScheduleInput!) {
  createSchedule(input: $input) { id sessionMode deliverTo }
}
"""


async def test_an_appending_schedule_delivers_each_run_to_telegram(outbox: Outbox) -> None:
    person = make_person()
    user = TelegramUser()
    await link(outbox.tg, outbox.api, user, person)
    data = await outbox.api.ok(
        CREATE,
        {
            "input": {
                "name": "Briefing",
                "prompt": "Morning briefing",
                "cron": "0 0 1 1 *",
                "sessionMode": "APPEND",
                "deliverTo": ["TELEGRAM"],
            }
        },
        token=person.token,
    )
    created = data["createSchedule"]
    assert (created["sessionMode"], created["deliverTo"]) == ("APPEND", ["TELEGRAM"])
    schedule_id = uuid.UUID(base64.b64decode(created["id"]).decode().split(":", 1)[1])
    outbox.workers.ids.add(schedule_id)

    for n in range(2):  # two runs, at two different slots (a second apart)
        if n:
            await asyncio.sleep(1.1)
        await outbox.api.ok(RUN_NOW, {"id": created["id"]}, token=person.token)
        await outbox.workers.burst(EchoAgent())
    [session] = await outbox.pool.fetch(
        "SELECT session_id FROM chat_sessions WHERE user_id = $1 AND channel = 'scheduled'",
        person.user_id,
    )
    assert session["session_id"] == f"sched:{schedule_id}"  # one ongoing session
    kinds = [k for k, _ in await outbox.workers.messages_of(session["session_id"])]
    assert kinds == ["human", "ai", "human", "ai"]
    await outbox.workers.burst(EchoAgent())  # sends what the last run queued
    replies = [c for _, c in await outbox.workers.messages_of(session["session_id"])][1::2]
    assert outbox.fake.texts_to(user.chat_id) == replies


async def test_delivering_to_an_unlinked_telegram_fails_that_delivery_not_the_run(
    outbox: Outbox,
) -> None:
    person = make_person()  # never linked
    schedule = await outbox.workers.create(person.user_id)
    await outbox.pool.execute(
        "UPDATE schedules SET deliver_to = '{telegram}' WHERE id = $1", schedule.id
    )
    await outbox.workers.make_due(schedule.id)
    await outbox.workers.burst(EchoAgent())
    [run] = await outbox.workers.runs(schedule.id)
    assert run["status"] == "succeeded"
    [delivery] = await outbox.pool.fetch(
        "SELECT d.status, d.last_error FROM message_deliveries d "
        "JOIN chat_message_history m ON m.id = d.message_id WHERE m.session_id = $1",
        run["session_id"],
    )
    assert delivery["status"] == "failed" and "not linked" in delivery["last_error"]


async def test_deliver_to_takes_only_channels_that_deliver(outbox: Outbox) -> None:
    person = make_person()
    refused = await outbox.api(
        CREATE,
        {"input": {"name": "x", "prompt": "y", "cron": "@daily", "deliverTo": ["WEB"]}},
        token=person.token,
    )
    assert refused.codes == ["BAD_USER_INPUT"]
    assert "TELEGRAM" in refused.errors[0]["message"]  # type: ignore[index]


async def test_a_session_of_a_formerly_linked_account_is_not_delivered_to_it(
    outbox: Outbox,
) -> None:
    """Relinked to another Telegram account: the old account's chat gets nothing."""
    person = make_person()
    old_user, session_id = await telegram_conversation(outbox, person)
    await outbox.api.ok("mutation { unlinkTelegram }", token=person.token)
    await link(outbox.tg, outbox.api, TelegramUser(), person)  # another account, linked now
    sent = await outbox.api.ok(SEND, {"s": session_id, "c": "who gets this?"}, token=person.token)
    [delivery] = sent["sendMessage"]["reply"]["deliveries"]
    assert delivery["status"] == "FAILED" and "not linked" in delivery["lastError"]
    await outbox.workers.burst(EchoAgent())
    assert all("who gets this" not in t for t in outbox.fake.texts_to(old_user.chat_id))
