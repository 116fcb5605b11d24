"""A chat's current session deleted on the web while the chat itself changes (/new, /unlink).

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
from tests.locks import row_held, until_waiting

from .conftest import BotHarness, TelegramUser, link, telegram_sessions

DELETE = """
mutation ($id: String!) { deleteSession(input: {sessionId: $id}) { deletedSessionId } }
"""
UNLINK = "mutation { unlinkTelegram }"


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
