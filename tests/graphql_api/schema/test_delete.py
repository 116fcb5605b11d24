"""deleteSession over GraphQL/HTTP: scoped to the viewer, for good, and never brought back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from graphql_api.app import create_app
from graphql_api.core import reads
from graphql_api.core.agent import ChatTurn
from graphql_api.core.runtime import Resources
from graphql_api.core.settings import Settings
from tests.conftest import GraphQLClient, Person, make_person, running_server
from tests.graphql_api.seed import add_messages, make_session

DELETE = """
mutation ($id: String!) { deleteSession(input: {sessionId: $id}) { deletedSessionId } }
"""
SEND = """
mutation ($id: String, $content: String!, $key: String) {
  sendMessage(input: {sessionId: $id, content: $content, clientMessageId: $key}) {
    session { sessionId } reply { content }
  }
}
"""
UPSERT = """
mutation ($id: String) { upsertSession(input: {sessionId: $id}) { sessionId } }
"""
READ = """
query ($id: String!) {
  session(sessionId: $id) { sessionId }
  messages(sessionId: $id, last: 5) { edges { node { content } } }
}
"""


async def _count(pool: asyncpg.Pool, table: str, session_id: str) -> int:
    return await pool.fetchval(f"SELECT count(*) FROM {table} WHERE session_id = $1", session_id)


async def test_delete_removes_the_session_its_messages_and_read_marks(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    session = await make_session(pool, person.user_id)
    ids = await add_messages(pool, session.session_id, 4)
    await reads.mark_read(pool, person.user_id, session.session_id, ids[-1])

    data = await graphql.ok(DELETE, {"id": session.session_id}, token=person.token)

    assert data["deleteSession"] == {"deletedSessionId": session.session_id}
    for table in ("chat_sessions", "chat_message_history", "session_read_marks"):
        assert await _count(pool, table, session.session_id) == 0, table
    result = await graphql(READ, {"id": session.session_id}, token=person.token)
    assert result.codes == ["NOT_FOUND"]  # messages(); session() is null
    again = await graphql(DELETE, {"id": session.session_id}, token=person.token)
    assert again.codes == ["NOT_FOUND"]


async def test_another_persons_session_and_a_missing_one_are_the_same_not_found(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    theirs = await make_session(pool, uuid.uuid4())
    await add_messages(pool, theirs.session_id, 2)

    other = await graphql(DELETE, {"id": theirs.session_id}, token=person.token)
    missing = await graphql(DELETE, {"id": f"test-{uuid.uuid4()}"}, token=person.token)
    malformed = await graphql(DELETE, {"id": "x" * 500}, token=person.token)

    assert other.codes == missing.codes == malformed.codes == ["NOT_FOUND"]
    assert other.errors and missing.errors
    assert other.errors[0]["message"] == missing.errors[0]["message"]
    assert await _count(pool, "chat_message_history", theirs.session_id) == 2


async def test_a_service_token_acting_for_a_person_deletes_as_that_person(
    graphql: GraphQLClient, pool: asyncpg.Pool
) -> None:
    acting = make_person(service=True)  # sub = the person, role = service_role
    session = await make_session(pool, acting.user_id)
    someone_elses = await make_session(pool, uuid.uuid4())

    data = await graphql.ok(DELETE, {"id": session.session_id}, token=acting.token)
    refused = await graphql(DELETE, {"id": someone_elses.session_id}, token=acting.token)

    assert data["deleteSession"]["deletedSessionId"] == session.session_id
    assert refused.codes == ["NOT_FOUND"]
    assert await _count(pool, "chat_sessions", someone_elses.session_id) == 1


async def test_nothing_brings_a_deleted_id_back(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    """A retried first message (same clientMessageId) and an upsert of the id are refused; the
    refusal of someone else's deleted id reads like any id that is not yours."""
    first = await graphql.ok(SEND, {"content": "secret plans", "key": "m-1"}, token=person.token)
    session_id = first["sendMessage"]["session"]["sessionId"]
    await graphql.ok(DELETE, {"id": session_id}, token=person.token)

    retried = await graphql(SEND, {"content": "secret plans", "key": "m-1"}, token=person.token)
    upserted = await graphql(UPSERT, {"id": session_id}, token=person.token)
    sent = await graphql(SEND, {"id": session_id, "content": "hello?"}, token=person.token)
    stranger = await graphql(UPSERT, {"id": session_id}, token=make_person().token)

    assert retried.codes == upserted.codes == ["BAD_USER_INPUT"]
    assert upserted.errors and "was deleted" in upserted.errors[0]["message"]
    assert sent.codes == ["NOT_FOUND"]
    assert stranger.codes == ["BAD_USER_INPUT"]
    assert stranger.errors and "must be a uuid" in stranger.errors[0]["message"]
    assert await _count(pool, "chat_sessions", session_id) == 0
    assert await _count(pool, "chat_message_history", session_id) == 0
    assert await _count(pool, "deleted_sessions", session_id) == 1


async def _until_waiting_on_locks(pool: asyncpg.Pool, count: int) -> None:
    """Until `count` of this database's backends wait for a lock."""
    async with asyncio.timeout(10):
        while (
            await pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            < count
        ):
            await asyncio.sleep(0.02)


async def test_an_upsert_racing_the_delete_does_not_bring_the_id_back(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    """The upsert meets the row while its delete is in flight and waits for it; once the delete
    commits, the id is refused as any deleted id, not created anew beside its tombstone."""
    session = await make_session(pool, person.user_id, session_id=str(uuid.uuid4()))
    session_id = session.session_id
    async with pool.acquire() as blocker, blocker.transaction():
        # The delete removes the row, then waits to write the tombstone.
        await blocker.execute("LOCK TABLE deleted_sessions IN SHARE MODE")
        deleting = asyncio.create_task(graphql(DELETE, {"id": session_id}, token=person.token))
        await _until_waiting_on_locks(pool, 1)
        # The upsert sees no tombstone yet, and waits for the deleting transaction.
        upserting = asyncio.create_task(graphql(UPSERT, {"id": session_id}, token=person.token))
        await _until_waiting_on_locks(pool, 2)
    deleted, upserted = await deleting, await upserting

    assert deleted.data == {"deleteSession": {"deletedSessionId": session_id}}
    assert upserted.codes == ["BAD_USER_INPUT"]
    assert upserted.errors and "was deleted" in upserted.errors[0]["message"]
    assert await _count(pool, "chat_sessions", session_id) == 0
    assert await _count(pool, "deleted_sessions", session_id) == 1


@dataclass
class GatedAgent:
    """Answers only when the test opens the gate: a turn held in flight."""

    started: asyncio.Event = field(default_factory=asyncio.Event)
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    async def reply(self, history: Sequence[ChatTurn], message: str, *, agent_name: str) -> str:
        self.started.set()
        await self.gate.wait()
        return "a reply nobody will see"

    async def aclose(self) -> None:
        return None


async def test_deleting_during_a_turn_keeps_no_reply_and_answers_cleanly(
    settings: Settings, pool: asyncpg.Pool, person: Person
) -> None:
    agent = GatedAgent()
    async with running_server(
        create_app(settings, Resources(settings=settings, pool=pool, agent=agent))
    ) as url:
        client = GraphQLClient(url)
        session = await make_session(pool, person.user_id)
        turn = asyncio.create_task(
            client(SEND, {"id": session.session_id, "content": "hi"}, token=person.token)
        )
        await asyncio.wait_for(agent.started.wait(), 10)
        await client.ok(DELETE, {"id": session.session_id}, token=person.token)
        agent.gate.set()
        result = await turn

    assert result.codes == ["NOT_FOUND"]  # a clean error, not INTERNAL_SERVER_ERROR
    for table in ("chat_sessions", "chat_message_history", "session_turns"):
        assert await _count(pool, table, session.session_id) == 0, table
