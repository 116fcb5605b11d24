"""A linked sender's messages land in the registry (AC-6) and show through the API (AC-9)."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace

import asyncpg

from bots import texts
from bots.delivery import TEXT_LIMIT
from graphql_api.core.agent import EchoAgent, OpenAICompatibleAgent
from graphql_api.core.embedded import free_port
from graphql_api.core.runtime import Resources
from graphql_api.core.settings import Settings
from tests.conftest import GraphQLClient, Person

from .conftest import BotHarness, TelegramUser, harness, history, link, telegram_sessions

TELEGRAM_SESSIONS = """
query {
  sessions(channel: TELEGRAM) {
    edges { node { sessionId channel agentName isActive
      messages(last: 10) { edges { node { role content } } } } }
  }
}
"""


async def test_a_linked_senders_message_is_a_turn_in_a_telegram_session(
    tg: BotHarness, graphql: GraphQLClient, person: Person, pool: asyncpg.Pool, settings: Settings
) -> None:
    user = TelegramUser()
    await link(tg, graphql, user, person)
    before = len(tg.fake.calls)

    await tg.send(user, "Hello from Telegram")

    [session] = await telegram_sessions(pool, person.user_id)
    assert session["channel"] == "telegram"
    assert session["user_id"] == person.user_id
    assert session["is_active"] is True
    assert session["agent_name"] == settings.default_agent_name
    reply = (
        f"[{settings.default_agent_name}] You said: Hello from Telegram (message 1 in this session)"
    )
    assert await history(pool, session["session_id"]) == [
        ("human", "Hello from Telegram"),
        ("ai", reply),
    ]
    # "typing" first, then the reply.
    calls = [
        (c.method, c.params.get("action") or c.params.get("text")) for c in tg.fake.calls[before:]
    ]
    assert calls == [("sendChatAction", "typing"), ("sendMessage", reply)]

    # AC-9, API side: the person sees it among their Telegram sessions, with its messages.
    data = await graphql.ok(TELEGRAM_SESSIONS, token=person.token)
    [edge] = data["sessions"]["edges"]
    assert edge["node"]["sessionId"] == session["session_id"]
    assert edge["node"]["channel"] == "TELEGRAM"
    assert [
        (m["node"]["role"], m["node"]["content"]) for m in edge["node"]["messages"]["edges"]
    ] == [
        ("USER", "Hello from Telegram"),
        ("ASSISTANT", reply),
    ]


async def test_the_conversation_continues_in_the_same_session(
    tg: BotHarness, graphql: GraphQLClient, person: Person, pool: asyncpg.Pool
) -> None:
    user = TelegramUser()
    await link(tg, graphql, user, person)
    for text in ["one", "two", "three"]:
        await tg.send(user, text)
    [session] = await telegram_sessions(pool, person.user_id)
    assert [
        content for kind, content in await history(pool, session["session_id"]) if kind == "human"
    ] == [
        "one",
        "two",
        "three",
    ]
    assert tg.last_text_to(user).endswith("(message 3 in this session)")


async def test_an_unlinked_sender_gets_instructions_and_no_session(
    tg: BotHarness, pool: asyncpg.Pool
) -> None:
    user = TelegramUser()
    sessions_before = await pool.fetchval("SELECT count(*) FROM chat_sessions")
    messages_before = await pool.fetchval("SELECT count(*) FROM chat_message_history")

    await tg.send(user, "Hello, is anyone there?")
    await tg.send(user, "/new")

    assert tg.texts_to(user) == [texts.HOW_TO_LINK, texts.HOW_TO_LINK]
    assert await pool.fetchval("SELECT count(*) FROM chat_sessions") == sessions_before
    assert await pool.fetchval("SELECT count(*) FROM chat_message_history") == messages_before
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM telegram_chats WHERE telegram_user_id = $1", user.id
        )
        == 0
    )
    assert tg.fake.to_chat("sendChatAction", user.chat_id) == []


async def test_new_starts_a_fresh_session(
    tg: BotHarness, graphql: GraphQLClient, person: Person, pool: asyncpg.Pool
) -> None:
    user = TelegramUser()
    await link(tg, graphql, user, person)
    await tg.send(user, "first conversation")
    new_command = await tg.send(user, "/new")
    assert tg.last_text_to(user) == texts.NEW_SESSION
    await tg.send(user, "second conversation")
    assert tg.last_text_to(user).endswith("(message 1 in this session)")

    # Telegram redelivers the /new: it starts nothing new.
    await tg.feed(new_command)
    await tg.send(user, "still the second")

    old, new = await telegram_sessions(pool, person.user_id)
    assert (old["is_active"], new["is_active"]) == (False, True)
    assert [c for _, c in await history(pool, old["session_id"])][0::2] == ["first conversation"]
    assert [c for _, c in await history(pool, new["session_id"])][0::2] == [
        "second conversation",
        "still the second",
    ]

    data = await graphql.ok(TELEGRAM_SESSIONS, token=person.token)
    assert {e["node"]["sessionId"] for e in data["sessions"]["edges"]} == {
        old["session_id"],
        new["session_id"],
    }


async def test_a_redelivered_update_stores_nothing_twice(
    tg: BotHarness, graphql: GraphQLClient, person: Person, pool: asyncpg.Pool
) -> None:
    user = TelegramUser()
    await link(tg, graphql, user, person)
    update = await tg.send(user, "only once, please")
    await tg.feed(update)
    await asyncio.gather(tg.feed(update), tg.feed(update))

    [session] = await telegram_sessions(pool, person.user_id)
    stored = await history(pool, session["session_id"])
    assert [kind for kind, _ in stored] == ["human", "ai"]
    # The reply was delivered, so the redeliveries (one waiting behind the other) send nothing.
    assert tg.texts_to(user)[1:] == [stored[1][1]]


async def test_twenty_concurrent_messages_from_one_chat(
    tg: BotHarness, graphql: GraphQLClient, person: Person, pool: asyncpg.Pool
) -> None:
    user = TelegramUser()
    await link(tg, graphql, user, person)
    updates = [user.update(f"message {i}") for i in range(20)]

    await asyncio.gather(*(tg.feed(u) for u in updates))

    [session] = await telegram_sessions(pool, person.user_id)
    stored = await history(pool, session["session_id"])
    assert sorted(c for kind, c in stored if kind == "human") == sorted(
        f"message {i}" for i in range(20)
    )
    assert sum(1 for kind, _ in stored if kind == "ai") == 20
    assert len(tg.texts_to(user)) == 1 + 20  # "Linked!" and one reply each


async def test_a_long_reply_is_split_to_telegrams_limit(
    tg: BotHarness, graphql: GraphQLClient, person: Person, pool: asyncpg.Pool
) -> None:
    user = TelegramUser()
    await link(tg, graphql, user, person)
    before = len(tg.texts_to(user))
    words = " ".join(f"word{i:04d}" for i in range(1000))  # 8999 characters
    assert len(words) == 8999

    await tg.send(user, words)

    pieces = tg.texts_to(user)[before:]
    assert len(pieces) == 3
    assert all(len(piece) <= TEXT_LIMIT for piece in pieces)
    [session] = await telegram_sessions(pool, person.user_id)
    reply = (await history(pool, session["session_id"]))[1][1]
    assert len(reply) > 9000
    assert "".join(pieces) == reply


async def test_when_the_agent_fails_the_message_is_kept_and_the_person_told(
    settings: Settings,
    resources: Resources,
    graphql: GraphQLClient,
    person: Person,
    pool: asyncpg.Pool,
) -> None:
    # A real agent client pointed at a port where nothing listens.
    agent = OpenAICompatibleAgent(
        base_url=f"http://127.0.0.1:{free_port()}/v1", model="none", api_key=None, timeout=5
    )
    async with harness(settings, replace(resources, agent=agent)) as failing:
        user = TelegramUser()
        try:
            await link(failing, graphql, user, person)
            await failing.send(user, "are you there?")
        finally:
            await agent.aclose()

        assert failing.last_text_to(user) == texts.AGENT_FAILED
        [session] = await telegram_sessions(pool, person.user_id)
        assert await history(pool, session["session_id"]) == [("human", "are you there?")]
        assert session["last_error"] is not None
        assert "could not be reached" in session["last_error"]


# A fault no retry mends: the outbox refuses the reply to one message, every time.
_REFUSE_ONE_REPLY = """
CREATE FUNCTION test_refuse_poison_reply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM chat_message_history m WHERE m.id = NEW.message_id
               AND m.message -> 'data' ->> 'content' LIKE '%poison pill%') THEN
        RAISE EXCEPTION 'this reply is refused (test)';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER test_refuse_poison_reply BEFORE INSERT ON message_deliveries
    FOR EACH ROW EXECUTE FUNCTION test_refuse_poison_reply();
"""


async def test_a_message_whose_turn_fails_every_time_is_set_aside_and_the_chat_goes_on(
    settings: Settings,
    resources: Resources,
    graphql: GraphQLClient,
    person: Person,
    pool: asyncpg.Pool,
) -> None:
    await pool.execute(_REFUSE_ONE_REPLY)
    try:
        async with harness(replace(settings, telegram_turn_tries=2), resources) as tg:
            user = TelegramUser()
            await link(tg, graphql, user, person)
            poison = await tg.send(user, "a poison pill", settle=False)
            await tg.send(user, "and then hello", settle=False)
            # tried by the bot's job, then by the worker's sweep (every 5 s), then set aside
            await tg.settle(user.chat_id, timeout=60)
            row = await pool.fetchrow(
                "SELECT tries, queued_at, answered_at FROM telegram_messages "
                "WHERE telegram_chat_id = $1 AND message_id = $2",
                user.chat_id,
                poison["message"]["message_id"],
            )
            sent = tg.texts_to(user)
    finally:
        await pool.execute(
            "DROP TRIGGER test_refuse_poison_reply ON message_deliveries; "
            "DROP FUNCTION test_refuse_poison_reply()"
        )
    assert (row["tries"], row["queued_at"], row["answered_at"]) == (3, None, None)
    assert sent.count(texts.AGENT_FAILED) == 1
    assert "and then hello" in sent[-1]
    assert not any("poison pill" in text for text in sent)
    [session] = await telegram_sessions(pool, person.user_id)
    turns = await history(pool, session["session_id"])
    # the bot stores both messages at once; the refused reply is in the registry all the same
    assert turns[:2] == [("human", "a poison pill"), ("human", "and then hello")]
    assert [kind for kind, _ in turns[2:]] == ["ai", "ai"]
    assert "poison pill" in turns[2][1] and "and then hello" in turns[3][1]


async def test_non_text_messages_and_group_chats(
    tg: BotHarness, graphql: GraphQLClient, person: Person, pool: asyncpg.Pool
) -> None:
    user = TelegramUser()
    await link(tg, graphql, user, person)
    sticker = {
        "sticker": {
            "file_id": "abc",
            "file_unique_id": "abc",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
        }
    }
    await tg.send(user, None, extra=sticker)
    assert tg.last_text_to(user) == texts.TEXT_ONLY

    # A person's assistant lives in private chats: a group message is not answered.
    group_id = -1_000_000_000_000 - user.id
    await tg.send(user, "hello group", chat_type="supergroup", chat_id=group_id)
    assert tg.fake.texts_to(group_id) == []
    assert await telegram_sessions(pool, person.user_id) == []


async def test_a_streamed_reply_grows_as_a_draft_then_is_sent_as_a_message(
    settings: Settings, resources: Resources, graphql: GraphQLClient, person: Person
) -> None:
    async with harness(settings, replace(resources, agent=EchoAgent(word_delay=0.1))) as slow:
        user = TelegramUser()
        await link(slow, graphql, user, person)
        words = "one two three four five six seven eight nine ten eleven twelve thirteen"
        before = len(slow.fake.calls)
        await slow.send(user, words)

        calls = slow.fake.calls[before:]
        drafts = [c.params["text"] for c in calls if c.method == "sendMessageDraft"]
        final = slow.last_text_to(user)
        assert len(drafts) >= 2, [c.method for c in calls]
        assert all(final.startswith(d) and len(d) < len(final) for d in drafts)
        assert all(len(a) < len(b) for a, b in itertools.pairwise(drafts))
        assert calls[-1].method == "sendMessage"  # the reply itself is a normal message


async def test_a_bot_api_without_drafts_still_gets_the_reply(
    settings: Settings, resources: Resources, graphql: GraphQLClient, person: Person
) -> None:
    async with harness(settings, replace(resources, agent=EchoAgent(word_delay=0.1))) as slow:
        user = TelegramUser()
        await link(slow, graphql, user, person)
        slow.fake.fail_next("sendMessageDraft", status=400, description="Bad Request: not found")
        before = len(slow.fake.calls)
        await slow.send(user, "one two three four five six seven eight nine ten")

        methods = [c.method for c in slow.fake.calls[before:]]
        assert methods.count("sendMessageDraft") == 1  # refused once, not tried again
        assert slow.last_text_to(user).startswith(f"[{settings.default_agent_name}] You said: one")
