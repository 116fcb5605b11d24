"""Subscriptions over graphql-transport-ws against the real server, and read marks."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
import websockets
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport

from graphql_api.app import create_app
from graphql_api.core.agent import AgentError, EchoAgent
from graphql_api.core.models import Role
from graphql_api.core.runtime import Resources
from graphql_api.core.settings import Settings
from graphql_api.schema.types import message_cursor
from tests.conftest import GraphQLClient, Person, make_person, running_server
from tests.graphql_api.seed import add_messages, make_session

MESSAGE_EVENTS = """
subscription($s: String!, $after: String) {
  messageEvents(sessionId: $s, after: $after) {
    kind cursor text message { id role content }
  }
}
"""
SESSION_EVENTS = """
subscription($c: Channel) {
  sessionEvents(channel: $c) { kind sessionId session { sessionId channel } }
}
"""
SEND = """
mutation($s: String, $c: String!) {
  sendMessage(input: {sessionId: $s, content: $c}) { session { sessionId } reply { content } }
}
"""
WAIT = 10.0


def ws_url(server_url: str) -> str:
    return server_url.replace("http://", "ws://") + "/graphql"


@pytest.fixture
def ws(server_url: str) -> str:
    return ws_url(server_url)


class Subscription:
    """One subscription over gql's graphql-transport-ws transport, read as a queue."""

    def __init__(self, url: str, token: str, query: str, variables: dict[str, Any]) -> None:
        self.transport = WebsocketsTransport(
            url=url,
            init_payload={"Authorization": f"Bearer {token}"},
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        )
        self.request = GraphQLRequest(query, variable_values=variables)
        self.received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.done = asyncio.Event()

    async def run(self) -> None:
        try:
            async with Client(transport=self.transport) as session:
                async for result in session.subscribe(self.request):
                    await self.received.put(result)
        finally:
            self.done.set()

    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.received.get(), WAIT)


@pytest.fixture
async def subscribe(ws: str) -> AsyncIterator[Any]:
    tasks: list[asyncio.Task[None]] = []

    async def start(token: str, query: str, variables: dict[str, Any]) -> Subscription:
        sub = Subscription(ws, token, query, variables)
        tasks.append(asyncio.create_task(sub.run()))
        await asyncio.sleep(0.3)  # connected and following before the test writes
        return sub

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_message_events_replay_after_the_cursor_then_go_live(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person, subscribe: Any
) -> None:
    session = await make_session(pool, person.user_id)
    ids = await add_messages(pool, session.session_id, 3)
    sub = await subscribe(
        person.token,
        MESSAGE_EVENTS,
        {"s": session.session_id, "after": message_cursor(session.session_id, ids[0])},
    )
    replayed = [(await sub.next())["messageEvents"] for _ in range(2)]
    assert [e["message"]["content"] for e in replayed] == ["message 2", "message 3"]
    assert [e["cursor"] for e in replayed] == [
        message_cursor(session.session_id, i) for i in ids[1:]
    ]
    assert all(e["kind"] == "ADDED" for e in replayed)

    await graphql.ok(SEND, {"s": session.session_id, "c": "live now"}, token=person.token)
    added = []
    while len(added) < 2:
        event = (await sub.next())["messageEvents"]
        if event["kind"] == "ADDED":
            added.append(event)
    assert [(e["message"]["role"], e["message"]["content"]) for e in added] == [
        ("USER", "live now"),
        ("ASSISTANT", "[assistant] You said: live now (message 3 in this session)"),
    ]
    assert sub.received.empty()
    # An event's cursor resumes right after it: a new subscription replays only the reply.
    resumed = await subscribe(
        person.token, MESSAGE_EVENTS, {"s": session.session_id, "after": added[0]["cursor"]}
    )
    assert (await resumed.next())["messageEvents"]["message"] == added[1]["message"]
    await asyncio.sleep(0.3)
    assert resumed.received.empty()


async def test_session_events_reach_only_their_owner(
    graphql: GraphQLClient, person: Person, subscribe: Any
) -> None:
    other = make_person()
    mine = await subscribe(person.token, SESSION_EVENTS, {"c": None})
    theirs = await subscribe(other.token, SESSION_EVENTS, {"c": None})
    sent = await graphql.ok(SEND, {"s": None, "c": "a new session"}, token=person.token)
    session_id = sent["sendMessage"]["session"]["sessionId"]

    first = (await mine.next())["sessionEvents"]
    assert first == {
        "kind": "CREATED",
        "sessionId": session_id,
        "session": {"sessionId": session_id, "channel": "WEB"},
    }
    assert (await mine.next())["sessionEvents"]["kind"] == "UPDATED"  # the turn touched it
    await asyncio.sleep(0.5)
    assert theirs.received.empty()


async def test_a_channel_filter_keeps_other_channels_out(
    graphql: GraphQLClient, person: Person, subscribe: Any
) -> None:
    telegram_only = await subscribe(person.token, SESSION_EVENTS, {"c": "TELEGRAM"})
    await graphql.ok(SEND, {"s": None, "c": "web, not telegram"}, token=person.token)
    await asyncio.sleep(0.5)
    assert telegram_only.received.empty()


async def test_another_persons_session_is_as_missing_as_a_missing_one(
    ws: str, pool: asyncpg.Pool, person: Person
) -> None:
    other = make_person()
    foreign = await make_session(pool, other.user_id)
    answers = []
    for session_id in (foreign.session_id, "no-such-session"):
        answers.append(await _raw_subscribe(ws, person.token, MESSAGE_EVENTS, {"s": session_id}))
    assert answers[0] == answers[1]
    first, last = answers[0][0], answers[0][-1]
    assert first["type"] == "next" and first["payload"]["data"] is None
    assert [e["extensions"]["code"] for e in first["payload"]["errors"]] == ["NOT_FOUND"]
    assert last == {"type": "complete"}


@pytest.mark.parametrize("token", [None, "not-a-jwt", "expired"])
async def test_a_missing_or_bad_token_closes_with_4403_and_sends_nothing(
    ws: str, token: str | None
) -> None:
    if token == "expired":
        token = make_person(ttl=-10).token
    payload = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with websockets.connect(ws, subprotocols=["graphql-transport-ws"]) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), WAIT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_a_subscription_ends_when_its_token_expires(
    pool: asyncpg.Pool, subscribe: Any
) -> None:
    person = make_person(ttl=2)
    session = await make_session(pool, person.user_id)
    sub = await subscribe(person.token, MESSAGE_EVENTS, {"s": session.session_id})
    await asyncio.wait_for(sub.done.wait(), 6)


async def test_subscriptions_per_connection_are_capped(
    ws: str, pool: asyncpg.Pool, person: Person
) -> None:
    from graphql_api.app import MAX_SUBSCRIPTIONS_PER_CONNECTION

    session = await make_session(pool, person.user_id)
    async with websockets.connect(ws, subprotocols=["graphql-transport-ws"]) as socket:
        await _init(socket, person.token)
        for n in range(MAX_SUBSCRIPTIONS_PER_CONNECTION + 1):
            await socket.send(
                json.dumps(
                    {
                        "id": str(n),
                        "type": "subscribe",
                        "payload": {
                            "query": MESSAGE_EVENTS,
                            "variables": {"s": session.session_id},
                        },
                    }
                )
            )
        refused = json.loads(await asyncio.wait_for(socket.recv(), WAIT))
    assert refused["id"] == str(MAX_SUBSCRIPTIONS_PER_CONNECTION)
    assert refused["type"] == "error"


async def test_connections_per_person_are_capped(ws: str, person: Person) -> None:
    from graphql_api.app import MAX_CONNECTIONS_PER_PERSON

    sockets = []
    try:
        for _ in range(MAX_CONNECTIONS_PER_PERSON):
            socket = await websockets.connect(ws, subprotocols=["graphql-transport-ws"])
            sockets.append(socket)
            await _init(socket, person.token)
        extra = await websockets.connect(ws, subprotocols=["graphql-transport-ws"])
        sockets.append(extra)
        await extra.send(json.dumps({"type": "connection_init", "payload": _auth(person.token)}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(extra.recv(), WAIT)
        # Not 4403: the token is good, and a client would sign out on that; 1013, "Try Again
        # Later", which graphql-ws clients retry.
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    finally:
        for socket in sockets:
            await socket.close()
    # Closed connections give their places back.
    await asyncio.sleep(0.3)
    async with websockets.connect(ws, subprotocols=["graphql-transport-ws"]) as again:
        await _init(again, person.token)


async def test_unread_counts_follow_the_read_mark(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    session = await make_session(pool, person.user_id)
    await add_messages(pool, session.session_id, 2, role=Role.USER)
    replies = await add_messages(pool, session.session_id, 3, role=Role.ASSISTANT)
    query = "query($s: String!) { session(sessionId: $s) { unreadCount } }"
    count = lambda data: data["session"]["unreadCount"]  # noqa: E731
    assert count(await graphql.ok(query, {"s": session.session_id}, token=person.token)) == 3

    mark = """mutation($s: String!, $u: String) {
      markSessionRead(input: {sessionId: $s, upTo: $u}) { unreadCount } }"""
    up_to = message_cursor(session.session_id, replies[0])
    marked = await graphql.ok(mark, {"s": session.session_id, "u": up_to}, token=person.token)
    assert marked["markSessionRead"]["unreadCount"] == 2
    await graphql.ok(mark, {"s": session.session_id}, token=person.token)
    assert count(await graphql.ok(query, {"s": session.session_id}, token=person.token)) == 0
    # A mark never moves back, and a cursor of another session is refused.
    await graphql.ok(mark, {"s": session.session_id, "u": up_to}, token=person.token)
    assert count(await graphql.ok(query, {"s": session.session_id}, token=person.token)) == 0
    other = await make_session(pool, person.user_id)
    refused = await graphql(mark, {"s": other.session_id, "u": up_to}, token=person.token)
    assert refused.codes == ["BAD_USER_INPUT"]


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _init(socket: Any, token: str) -> None:
    await socket.send(json.dumps({"type": "connection_init", "payload": _auth(token)}))
    ack = json.loads(await asyncio.wait_for(socket.recv(), WAIT))
    assert ack["type"] == "connection_ack"


async def _raw_subscribe(
    ws: str, token: str, query: str, variables: dict[str, Any]
) -> list[dict[str, Any]]:
    """The messages the server sends for one subscription, until it completes."""
    answers = []
    async with websockets.connect(ws, subprotocols=["graphql-transport-ws"]) as socket:
        await _init(socket, token)
        await socket.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": query, "variables": variables},
                }
            )
        )
        while True:
            message = json.loads(await asyncio.wait_for(socket.recv(), WAIT))
            answers.append({k: v for k, v in message.items() if k != "id"})
            if message["type"] in ("complete", "error"):  # the subscription is over
                return answers


@pytest.fixture
async def streaming_server(settings: Settings, resources: Resources) -> AsyncIterator[str]:
    """A server whose echo agent writes a word every 50 ms."""
    agent = EchoAgent(word_delay=0.05)
    async with running_server(create_app(settings, replace(resources, agent=agent))) as url:
        yield url


async def test_a_streamed_reply_is_seen_growing_then_stored_whole(
    streaming_server: str, pool: asyncpg.Pool, person: Person, subscribe: Any
) -> None:
    session = await make_session(pool, person.user_id)
    sub = Subscription(
        ws_url(streaming_server), person.token, MESSAGE_EVENTS, {"s": session.session_id}
    )
    task = asyncio.create_task(sub.run())
    try:
        await asyncio.sleep(0.3)
        words = "one two three four five six seven eight nine ten eleven twelve"
        sent = await GraphQLClient(streaming_server).ok(
            SEND, {"s": session.session_id, "c": words}, token=person.token
        )
        final = sent["sendMessage"]["reply"]["content"]
        progress, added = [], []
        while len(added) < 2:
            event = (await sub.next())["messageEvents"]
            if event["kind"] == "REPLY_PROGRESS":
                progress.append(event["text"])
            else:
                added.append(event)
        assert len(progress) >= 2, progress
        assert all(final.startswith(p) for p in progress)
        assert all(len(a) < len(b) for a, b in itertools.pairwise(progress))
        assert added[1]["message"]["content"] == final
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class FailingAgent:
    async def reply(self, history: Any, message: str, *, agent_name: str) -> str:
        raise AgentError("the model is down")

    async def aclose(self) -> None:
        return None


async def test_a_failed_reply_is_told_and_the_message_stays(
    settings: Settings, resources: Resources, pool: asyncpg.Pool, person: Person
) -> None:
    app = create_app(settings, replace(resources, agent=FailingAgent()))
    async with running_server(app) as url:
        session = await make_session(pool, person.user_id)
        sub = Subscription(ws_url(url), person.token, MESSAGE_EVENTS, {"s": session.session_id})
        task = asyncio.create_task(sub.run())
        try:
            await asyncio.sleep(0.3)
            result = await GraphQLClient(url)(
                SEND, {"s": session.session_id, "c": "hello?"}, token=person.token
            )
            assert result.codes == ["AGENT_FAILED"]
            kinds = {}
            while len(kinds) < 2:
                event = (await sub.next())["messageEvents"]
                kinds[event["kind"]] = event
            assert kinds["ADDED"]["message"]["content"] == "hello?"
            assert kinds["REPLY_FAILED"]["text"] == "the model is down"
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_subscriptions_get_the_same_document_limits(ws: str, person: Person) -> None:
    many = " ".join(f"a{n}: sessionEvents {{ kind }}" for n in range(21))
    wordy = "sessionEvents { " + "kind " * 2100 + "}"
    for body, words in ((many, "aliases"), (wordy, "token")):
        [answer] = await _raw_subscribe(ws, person.token, "subscription { " + body + " }", {})
        assert answer["type"] == "error", answer
        [error] = answer["payload"]
        assert words in error["message"].lower()
        assert error["extensions"]["code"] == "BAD_USER_INPUT"


async def test_each_session_event_reads_its_fields_afresh(
    graphql: GraphQLClient, person: Person, subscribe: Any
) -> None:
    """One WebSocket connection, one context: per-request DataLoaders must not outlive an event."""
    query = "subscription { sessionEvents { kind session { unreadCount } } }"
    sub = await subscribe(person.token, query, {})
    sent = await graphql.ok(SEND, {"s": None, "c": "one"}, token=person.token)
    session_id = sent["sendMessage"]["session"]["sessionId"]
    await graphql.ok(SEND, {"s": session_id, "c": "two"}, token=person.token)
    counts = []
    while 2 not in counts:
        counts.append((await sub.next())["sessionEvents"]["session"]["unreadCount"])
    assert 1 in counts  # the first reply, then both replies unread
