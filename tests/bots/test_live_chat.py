"""A Telegram message, handled by the real dispatcher, reaches the person's live subscriptions."""

from __future__ import annotations

import asyncio

from tests.conftest import GraphQLClient, Person
from tests.graphql_api.schema.test_live import MESSAGE_EVENTS, SESSION_EVENTS, Subscription

from .conftest import BotHarness, TelegramUser, link


async def test_a_telegram_message_and_its_reply_arrive_live(
    tg: BotHarness, graphql: GraphQLClient, person: Person
) -> None:
    user = TelegramUser()
    await link(tg, graphql, user, person)
    ws = graphql.url.replace("http://", "ws://")
    sessions = Subscription(ws, person.token, SESSION_EVENTS, {"c": "TELEGRAM"})
    task = asyncio.create_task(sessions.run())
    try:
        await asyncio.sleep(0.3)
        await tg.send(user, "first words")
        created = (await sessions.next())["sessionEvents"]
        assert (created["kind"], created["session"]["channel"]) == ("CREATED", "TELEGRAM")
        session_id = created["sessionId"]

        history = Subscription(ws, person.token, MESSAGE_EVENTS, {"s": session_id})
        history_task = asyncio.create_task(history.run())
        await asyncio.sleep(0.3)
        await tg.send(user, "second words")
        added = [(await history.next())["messageEvents"] for _ in range(2)]
        assert [(e["kind"], e["message"]["role"]) for e in added] == [
            ("ADDED", "USER"),
            ("ADDED", "ASSISTANT"),
        ]
        assert added[0]["message"]["content"] == "second words"
        assert added[1]["message"]["content"] == tg.last_text_to(user)
        history_task.cancel()
        await asyncio.gather(history_task, return_exceptions=True)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
