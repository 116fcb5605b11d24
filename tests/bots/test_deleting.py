"""A chat's current session deleted on the web while the chat changes (/new, /unlink, /resume).

A deletion takes the session row, then its trigger deletes the chats pointing at it; /new and
/unlink change the chat and mark its session inactive. Taken in opposite orders the two would
wait on each other until PostgreSQL's deadlock detector failed one of them. Here a third
connection holds the session row so that the deletion is sure to be queued first, the chat's
command second: the worst order, every time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import asyncpg

from bots import texts
from tests.conftest import GraphQLClient, Person
from tests.locks import row_held, until_waiting, waiting_backends

from .conftest import BotHarness, TelegramUser, link, telegram_sessions

DELETE = """
mutation ($id: String!) { deleteSession(input: {sessionId: $id}) { deletedSessionId } }
"""
UNLINK = "mutation { unlinkTelegram }"
SEND = "mutation($c: String!) { sendMessage(input: {content: $c}) { session { sessionId } } }"


async def _delete_then(
    graphql: GraphQLClient,
    pool: asyncpg.Pool,
    person: Person,
    session_id: str,
    command: Awaitable[Any],
) -> Any:
    """Queue the deletion of `session_id` behind a held row, then `command`; let both go."""
    async with row_held(pool, "chat_sessions", "session_id = $1", session_id):
        deleting = asyncio.ensure_future(graphql.ok(DELETE, {"id": session_id}, token=person.token))
        await until_waiting(pool, 1)
        commanding = asyncio.ensure_future(command)
        await until_waiting(pool, 2)
    deleted, done = await asyncio.gather(deleting, commanding)
    assert deleted["deleteSession"] == {"deletedSessionId": session_id}
    return done


async def _linked_chat_with_a_session(
    tg: BotHarness, graphql: GraphQLClient, person: Person, pool: asyncpg.Pool
) -> tuple[TelegramUser, str]:
    user = TelegramUser()
    await link(tg, graphql, user, person)
    await tg.send(user, "the conversation to delete")
    [session] = await telegram_sessions(pool, person.user_id)
    return user, session["session_id"]


async def test_new_while_the_chats_session_is_deleted_starts_the_fresh_one(
    tg: BotHarness, graphql: GraphQLClient, person: Person, pool: asyncpg.Pool
) -> None:
    user, doomed = await _linked_chat_with_a_session(tg, graphql, person, pool)

    await _delete_then(graphql, pool, person, doomed, tg.send(user, "/new"))

    assert tg.last_text_to(user) == texts.NEW_SESSION
    await tg.send(user, "after the deletion")
    [fresh] = await telegram_sessions(pool, person.user_id)
    assert fresh["session_id"] != doomed and fresh["is_active"]
    assert tg.last_text_to(user).endswith("(message 1 in this session)")


async def test_unlinking_while_the_chats_session_is_deleted_does_both(
    tg: BotHarness, graphql: GraphQLClient, person: Person, pool: asyncpg.Pool
) -> None:
    user, doomed = await _linked_chat_with_a_session(tg, graphql, person, pool)

    unlinked = await _delete_then(
        graphql, pool, person, doomed, graphql.ok(UNLINK, token=person.token)
    )

    assert unlinked == {"unlinkTelegram": True}
    assert await telegram_sessions(pool, person.user_id) == []
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM telegram_links WHERE user_id = $1", person.user_id
        )
        == 0
    )
    await tg.send(user, "anyone?")
    assert tg.last_text_to(user) == texts.HOW_TO_LINK


async def test_resuming_a_session_as_it_is_deleted_leaves_the_chat_working(
    tg: BotHarness, graphql: GraphQLClient, person: Person, pool: asyncpg.Pool
) -> None:
    """/resume read the list before the deletion and points the chat after it: the chat must
    not be left pointing at a deleted session, where every next message would be dropped."""
    user, _ = await _linked_chat_with_a_session(tg, graphql, person, pool)
    web = await graphql.ok(SEND, {"c": "Plan my trip to Lisbon"}, token=person.token)
    doomed = web["sendMessage"]["session"]["sessionId"]

    async with row_held(pool, "telegram_chats", "telegram_chat_id = $1", user.chat_id):
        resuming = asyncio.ensure_future(tg.send(user, "/resume 1"))  # the web one: newest
        await until_waiting(pool, 1)
        deleting = asyncio.ensure_future(graphql.ok(DELETE, {"id": doomed}, token=person.token))
        # Either the deletion waits for the resumed pointer (2 waiters), or it is done already.
        async with asyncio.timeout(10):
            while not deleting.done() and await waiting_backends(pool) < 2:
                await asyncio.sleep(0.01)
    await resuming
    assert (await deleting)["deleteSession"] == {"deletedSessionId": doomed}

    await tg.send(user, "anyone there?")
    assert tg.last_text_to(user).endswith("(message 1 in this session)")
    current = await pool.fetchval(
        "SELECT c.session_id FROM telegram_chats c JOIN chat_sessions s USING (session_id) "
        "WHERE c.telegram_chat_id = $1",
        user.chat_id,
    )
    assert current is not None and current != doomed
