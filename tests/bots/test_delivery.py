"""Talking back to Telegram: splitting, flood control and a blocked bot never break the bot."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg

from bots import texts
from bots.delivery import TEXT_LIMIT, split_text
from tests.conftest import GraphQLClient, Person

from .conftest import BotHarness, TelegramUser, history, link, telegram_sessions


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def test_split_text_cuts_at_paragraphs_lines_or_spaces_and_loses_nothing() -> None:
    paragraph = ("lorem ipsum " * 200).strip()  # 2399 characters
    text = "\n\n".join([paragraph] * 4)
    pieces = split_text(text)
    assert "".join(pieces) == text
    assert all(len(piece) <= TEXT_LIMIT for piece in pieces)
    assert [piece.rstrip("\n") for piece in pieces] == [paragraph] * 4

    no_spaces = "x" * 9000
    assert [len(p) for p in split_text(no_spaces)] == [4096, 4096, 808]
    assert split_text("short") == ["short"]
    assert split_text("   ") == []


def test_split_text_counts_in_utf16_units_like_telegram() -> None:
    text = "😀" * 3000  # 2 UTF-16 units each: 6000 units
    pieces = split_text(text)
    assert "".join(pieces) == text
    assert [utf16_units(p) for p in pieces] == [4096, 1904]


async def linked_user(tg: BotHarness, graphql: GraphQLClient, person: Person) -> TelegramUser:
    user = TelegramUser()
    await link(tg, graphql, user, person)
    return user


async def test_flood_control_waits_as_told_and_sends_again(
    tg: BotHarness, graphql: GraphQLClient, person: Person
) -> None:
    user = await linked_user(tg, graphql, person)
    tg.fake.fail_next(
        "sendMessage", status=429, description="Too Many Requests: retry after 1", retry_after=1
    )
    await tg.send(user, "hello")
    attempts = tg.fake.to_chat("sendMessage", user.chat_id)[-2:]
    assert attempts[0].params == attempts[1].params
    assert "You said: hello" in attempts[1].params["text"]


async def test_a_long_flood_wait_holds_the_chats_replies_back_in_order(
    tg: BotHarness, graphql: GraphQLClient, person: Person, pool: asyncpg.Pool
) -> None:
    """Told to wait an hour, the outbox waits an hour (no worker slot held meanwhile), and the
    chat's next reply waits behind the first: they will arrive in order."""
    user = await linked_user(tg, graphql, person)
    tg.fake.fail_next(
        "sendMessage",
        status=429,
        description="Too Many Requests: retry after 3600",
        retry_after=3600,
    )
    sent_before = len(tg.texts_to(user))
    await tg.send(user, "first", settle=False)
    await tg.send(user, "second", settle=False)
    await eventually(lambda: _both_answered(pool, user))

    rows = await pool.fetch(
        "SELECT d.status, d.attempts, d.last_error, d.next_attempt_at - now() AS wait "
        "FROM message_deliveries d WHERE d.channel = 'telegram' AND d.target = $1 ORDER BY d.id",
        str(user.chat_id),
    )
    first, second = rows
    assert (first["status"], first["attempts"]) == ("pending", 1)
    assert "flood control" in first["last_error"]
    assert first["wait"].total_seconds() > 3500
    assert (second["status"], second["attempts"]) == ("pending", 0)  # behind the first
    assert len(tg.texts_to(user)) == sent_before + 1  # the one refused attempt, nothing else
    [session] = await telegram_sessions(pool, person.user_id)
    stored = await history(pool, session["session_id"])
    assert [text for kind, text in stored if kind == "human"] == ["first", "second"]
    assert [kind for kind, _ in stored].count("ai") == 2
    await pool.execute(  # let the harness settle
        "UPDATE message_deliveries SET status = 'failed' WHERE target = $1", str(user.chat_id)
    )


async def _both_answered(pool: asyncpg.Pool, user: TelegramUser) -> bool:
    waiting = await pool.fetchval(
        "SELECT count(*) FROM telegram_messages WHERE telegram_chat_id = $1 "
        "AND queued_at IS NOT NULL AND answered_at IS NULL",
        user.chat_id,
    )
    attempted = await pool.fetchval(
        # the attempt counts once its outcome is written (attempts goes up when it is taken)
        "SELECT count(*) FROM message_deliveries WHERE target = $1 AND attempts > 0 "
        "AND last_error IS NOT NULL",
        str(user.chat_id),
    )
    return waiting == 0 and attempted == 1


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)


async def test_flood_control_on_typing_is_not_waited_for(
    tg: BotHarness, graphql: GraphQLClient, person: Person
) -> None:
    user = await linked_user(tg, graphql, person)
    tg.fake.fail_next(
        "sendChatAction",
        status=429,
        description="Too Many Requests: retry after 60",
        retry_after=60,
    )
    await tg.send(user, "hello")
    assert len(tg.fake.to_chat("sendChatAction", user.chat_id)) == 1
    assert "You said: hello" in tg.last_text_to(user)


async def test_a_blocked_bot_does_not_break_the_dispatcher(
    tg: BotHarness, graphql: GraphQLClient, person: Person, pool: asyncpg.Pool
) -> None:
    user = await linked_user(tg, graphql, person)
    blocked = "Forbidden: bot was blocked by the user"
    tg.fake.fail_next("sendChatAction", status=403, description=blocked)
    tg.fake.fail_next("sendMessage", status=403, description=blocked)

    await tg.send(user, "I blocked you")  # the turn is stored; the reply cannot be delivered

    [session] = await telegram_sessions(pool, person.user_id)
    stored = await history(pool, session["session_id"])
    assert [kind for kind, _ in stored] == ["human", "ai"]
    assert stored[0][1] == "I blocked you"

    # Unblocked later: the bot carries on.
    await tg.send(user, "/help")
    assert tg.last_text_to(user) == texts.HELP


async def test_a_refused_request_is_logged_and_dropped(
    tg: BotHarness, graphql: GraphQLClient, person: Person
) -> None:
    user = await linked_user(tg, graphql, person)
    tg.fake.fail_next("sendMessage", status=400, description="Bad Request: chat not found")
    await tg.send(user, "/help")  # no exception escapes
    await tg.send(user, "/help")
    assert tg.last_text_to(user) == texts.HELP
