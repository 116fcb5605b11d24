"""Continue anywhere, in Telegram: /sessions lists every channel's sessions, /resume N carries a
web conversation on in the chat (and the web sees those messages live)."""

from __future__ import annotations

import asyncio

import asyncpg

from bots import texts
from tests.conftest import GraphQLClient, Person
from tests.graphql_api.schema.test_live import MESSAGE_EVENTS, Subscription

from .conftest import BotHarness, TelegramUser, history, link

SEND = """mutation($s: String, $c: String!) {
  sendMessage(input: {sessionId: $s, content: $c}) { session { sessionId } } }"""


async def test_a_web_conversation_is_resumed_in_telegram(
    tg: BotHarness, graphql: GraphQLClient, person: Person, pool: asyncpg.Pool
) -> None:
    user = TelegramUser()
    await link(tg, graphql, user, person)
    await tg.send(user, "hello from Telegram")
    web = await graphql.ok(SEND, {"s": None, "c": "Plan my trip to Lisbon"}, token=person.token)
    web_session = web["sendMessage"]["session"]["sessionId"]

    await tg.send(user, "/sessions")
    listing = tg.last_text_to(user)
    lines = [line for line in listing.splitlines() if line[:2].rstrip(".").isdigit()]
    assert lines[0] == "1. [web] Plan my trip to Lisbon"  # newest activity first, every channel
    assert lines[1].startswith("2. ▶ [telegram] hello from Telegram")  # this chat's current one

    await tg.send(user, "/resume 1")
    assert tg.last_text_to(user) == texts.RESUMED.format(
        channel="web", name="Plan my trip to Lisbon"
    )
    live = Subscription(
        graphql.url.replace("http://", "ws://"), person.token, MESSAGE_EVENTS, {"s": web_session}
    )
    task = asyncio.create_task(live.run())
    try:
        await asyncio.sleep(0.3)
        await tg.send(user, "and book a hotel")
        seen = [(await live.next())["messageEvents"]["message"]["content"] for _ in range(2)]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    stored = await history(pool, web_session)
    assert stored[-2][1] == "and book a hotel" and stored[-1][0] == "ai"
    assert seen == [stored[-2][1], stored[-1][1]]
    assert tg.last_text_to(user) == stored[-1][1]  # answered in the chat
    via = await pool.fetch(
        "SELECT via FROM chat_message_history WHERE session_id = $1 ORDER BY id", web_session
    )
    assert [r["via"] for r in via] == ["web", "web", "telegram", "telegram"]


async def test_resume_refuses_a_number_it_did_not_list(
    tg: BotHarness, graphql: GraphQLClient, person: Person
) -> None:
    user = TelegramUser()
    await link(tg, graphql, user, person)
    await tg.send(user, "only one")
    for arg in ("", "0", "2", "x", "\uff11"):  # the last: a fullwidth digit one
        await tg.send(user, f"/resume {arg}".strip())
        assert tg.last_text_to(user) == texts.RESUME_HOW.format(count=1)
