"""Linking a Telegram account with a one-time code: valid, reused, expired, unknown, raced."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta

import asyncpg

from bots import texts
from bots.links import RedeemOutcome
from graphql_api.core.settings import Settings
from tests.conftest import GraphQLClient, Person, make_person

from .conftest import CREATE_CODE, BotHarness, TelegramUser, history, link

TELEGRAM_LINK = "{ telegramLink { telegramUserId telegramUsername linkedAt } }"


async def linked_person(pool: asyncpg.Pool, user: TelegramUser) -> object:
    return await pool.fetchval(
        "SELECT user_id FROM telegram_links WHERE telegram_user_id = $1", user.id
    )


async def test_a_person_gets_a_one_time_code_valid_for_minutes(
    graphql: GraphQLClient, person: Person, pool: asyncpg.Pool, settings: Settings
) -> None:
    before = datetime.now(UTC)
    data = await graphql.ok(CREATE_CODE, token=person.token)
    created = data["createTelegramLinkCode"]
    code = created["code"]
    assert len(code) >= 20
    assert created["deepLink"] == f"https://t.me/{settings.telegram_bot_username}?start={code}"
    expires_at = datetime.fromisoformat(created["expiresAt"])
    ttl = timedelta(seconds=settings.link_code_ttl_seconds)
    assert before + ttl - timedelta(seconds=5) <= expires_at <= before + ttl + timedelta(seconds=60)
    assert ttl <= timedelta(hours=1)  # minutes, not days

    # A code is a credential: only its hash is stored.
    stored = await pool.fetch(
        "SELECT code_hash, used_at FROM telegram_link_codes WHERE user_id = $1", person.user_id
    )
    assert [(bytes(r["code_hash"]), r["used_at"]) for r in stored] == [
        (hashlib.sha256(code.encode()).digest(), None)
    ]
    dumped = await pool.fetchval("SELECT string_agg(t::text, ' ') FROM telegram_link_codes t")
    assert code not in dumped


async def test_codes_are_for_signed_in_people(graphql: GraphQLClient, service: Person) -> None:
    anonymous = await graphql(CREATE_CODE)
    assert anonymous.codes == ["UNAUTHENTICATED"]
    as_service = await graphql(CREATE_CODE, token=service.token)
    assert as_service.codes == ["FORBIDDEN"]


async def test_a_valid_code_links_the_sender(
    tg: BotHarness, graphql: GraphQLClient, person: Person, pool: asyncpg.Pool
) -> None:
    user = TelegramUser(username="ada")
    assert (await graphql.ok(TELEGRAM_LINK, token=person.token))["telegramLink"] is None

    await link(tg, graphql, user, person)

    assert tg.last_text_to(user) == texts.REDEEMED[RedeemOutcome.LINKED]
    assert await linked_person(pool, user) == person.user_id
    shown = (await graphql.ok(TELEGRAM_LINK, token=person.token))["telegramLink"]
    assert shown["telegramUserId"] == str(user.id)
    assert shown["telegramUsername"] == "ada"


async def test_a_used_code_links_nobody_else(
    tg: BotHarness, graphql: GraphQLClient, person: Person, pool: asyncpg.Pool
) -> None:
    first, second = TelegramUser(), TelegramUser()
    code = await link(tg, graphql, first, person)

    # The same sender again (a redelivery, a second tap): nothing changes, said kindly.
    await tg.send(first, f"/start {code}")
    assert tg.last_text_to(first) == texts.REDEEMED[RedeemOutcome.ALREADY_LINKED]

    # Someone else with the same code: refused.
    await tg.send(second, f"/start {code}")
    assert tg.last_text_to(second) == texts.REDEEMED[RedeemOutcome.USED]
    assert await linked_person(pool, second) is None
    assert await linked_person(pool, first) == person.user_id


async def test_an_expired_code_links_nothing(
    tg: BotHarness, graphql: GraphQLClient, person: Person, pool: asyncpg.Pool
) -> None:
    user = TelegramUser()
    code = (await graphql.ok(CREATE_CODE, token=person.token))["createTelegramLinkCode"]["code"]
    # Time passes beyond the code's expiry.
    await pool.execute(
        "UPDATE telegram_link_codes SET expires_at = now() - interval '1 second' WHERE user_id = $1",
        person.user_id,
    )
    await tg.send(user, f"/start {code}")
    assert tg.last_text_to(user) == texts.REDEEMED[RedeemOutcome.EXPIRED]
    assert await linked_person(pool, user) is None


async def test_an_unknown_or_malformed_code_links_nothing(
    tg: BotHarness, pool: asyncpg.Pool
) -> None:
    user = TelegramUser()
    for code in ["no-such-code-0123456789", "not a code", "x" * 65, "'; DROP TABLE telegram_links"]:
        await tg.send(user, f"/start {code}")
        assert tg.last_text_to(user) == texts.REDEEMED[RedeemOutcome.UNKNOWN]
    assert await linked_person(pool, user) is None


async def test_a_code_is_single_use_when_two_senders_race(
    tg: BotHarness, graphql: GraphQLClient, person: Person, pool: asyncpg.Pool
) -> None:
    code = (await graphql.ok(CREATE_CODE, token=person.token))["createTelegramLinkCode"]["code"]
    racers = [TelegramUser() for _ in range(5)]
    await asyncio.gather(*(tg.send(user, f"/start {code}") for user in racers))

    linked = [u for u in racers if await linked_person(pool, u) == person.user_id]
    assert len(linked) == 1
    replies = [tg.last_text_to(u) for u in racers]
    assert replies.count(texts.REDEEMED[RedeemOutcome.LINKED]) == 1
    assert replies.count(texts.REDEEMED[RedeemOutcome.USED]) == 4


async def code_is_open(pool: asyncpg.Pool, code: str) -> bool:
    return await pool.fetchval(
        "SELECT used_at IS NULL AND used_by IS NULL FROM telegram_link_codes WHERE code_hash = $1",
        hashlib.sha256(code.encode()).digest(),
    )


async def test_another_persons_code_does_not_take_a_linked_account(
    tg: BotHarness, graphql: GraphQLClient, pool: asyncpg.Pool
) -> None:
    """A code proves only who made it: Bob sending Alice's Telegram his deep link moves nothing."""
    alice, bob = make_person(), make_person()
    user = TelegramUser()
    await link(tg, graphql, user, alice)
    await tg.send(user, "hello as alice")

    bobs_code = await link(tg, graphql, user, bob)

    assert tg.last_text_to(user) == texts.LINKED_ELSEWHERE.format(code=bobs_code)
    assert "/unlink first" in tg.last_text_to(user)
    assert f"/start {bobs_code}" in tg.last_text_to(user)
    assert await linked_person(pool, user) == alice.user_id
    assert await code_is_open(pool, bobs_code)
    assert (await graphql.ok(TELEGRAM_LINK, token=bob.token))["telegramLink"] is None
    shown = (await graphql.ok(TELEGRAM_LINK, token=alice.token))["telegramLink"]
    assert shown["telegramUserId"] == str(user.id)

    # Messages still land in Alice's session, which stays active; Bob gets nothing.
    await tg.send(user, "still alice")
    alice_sessions = await pool.fetch(
        "SELECT session_id, is_active FROM chat_sessions WHERE user_id = $1", alice.user_id
    )
    assert [r["is_active"] for r in alice_sessions] == [True]
    alice_history = await history(pool, alice_sessions[0]["session_id"])
    assert alice_history[0::2] == [("human", "hello as alice"), ("human", "still alice")]
    assert len(alice_history) == 4  # and a reply to each
    assert await pool.fetch("SELECT 1 FROM chat_sessions WHERE user_id = $1", bob.user_id) == []

    # Only after /unlink does the same, still unused, code link the account to Bob.
    await tg.send(user, "/unlink")
    assert tg.last_text_to(user) == texts.UNLINKED
    await tg.send(user, f"/start {bobs_code}")
    assert tg.last_text_to(user) == texts.REDEEMED[RedeemOutcome.LINKED]
    assert await linked_person(pool, user) == bob.user_id
    assert not await code_is_open(pool, bobs_code)
    assert (await graphql.ok(TELEGRAM_LINK, token=alice.token))["telegramLink"] is None

    # Bob's conversation starts fresh; Alice's session stays hers, now inactive.
    await tg.send(user, "hello as bob")
    alice_sessions = await pool.fetch(
        "SELECT session_id, is_active FROM chat_sessions WHERE user_id = $1", alice.user_id
    )
    bob_sessions = await pool.fetch(
        "SELECT session_id, is_active FROM chat_sessions WHERE user_id = $1", bob.user_id
    )
    assert [r["is_active"] for r in alice_sessions] == [False]
    assert [r["is_active"] for r in bob_sessions] == [True]
    assert [c for _, c in await history(pool, bob_sessions[0]["session_id"])][0::2] == [
        "hello as bob"
    ]


async def test_a_person_can_relink_their_own_telegram_account(
    tg: BotHarness, graphql: GraphQLClient, person: Person, pool: asyncpg.Pool
) -> None:
    user = TelegramUser()
    await link(tg, graphql, user, person)
    await tg.send(user, "first")
    session_id = await pool.fetchval(
        "SELECT session_id FROM chat_sessions WHERE user_id = $1", person.user_id
    )

    code = await link(tg, graphql, user, person)

    assert tg.last_text_to(user) == texts.REDEEMED[RedeemOutcome.LINKED]
    assert await linked_person(pool, user) == person.user_id
    assert not await code_is_open(pool, code)
    await tg.send(user, "second")  # the same conversation goes on
    assert [c for _, c in await history(pool, session_id)][0::2] == ["first", "second"]


async def test_one_telegram_account_per_person(
    tg: BotHarness, graphql: GraphQLClient, person: Person, pool: asyncpg.Pool
) -> None:
    phone, tablet = TelegramUser(), TelegramUser()
    await link(tg, graphql, phone, person)
    await link(tg, graphql, tablet, person)
    assert await linked_person(pool, phone) is None
    assert await linked_person(pool, tablet) == person.user_id


async def test_unlink_from_telegram(
    tg: BotHarness, graphql: GraphQLClient, person: Person, pool: asyncpg.Pool
) -> None:
    user = TelegramUser()
    await link(tg, graphql, user, person)
    await tg.send(user, "before unlinking")

    await tg.send(user, "/unlink")
    assert tg.last_text_to(user) == texts.UNLINKED
    assert await linked_person(pool, user) is None
    assert (await graphql.ok(TELEGRAM_LINK, token=person.token))["telegramLink"] is None

    # Unlinked again: told how to link, nothing stored.
    await tg.send(user, "after unlinking")
    assert tg.last_text_to(user) == texts.HOW_TO_LINK
    rows = await pool.fetch(
        "SELECT s.is_active, count(m.id) AS messages FROM chat_sessions s "
        "LEFT JOIN chat_message_history m ON m.session_id = s.session_id "
        "WHERE s.user_id = $1 GROUP BY s.id",
        person.user_id,
    )
    assert [(r["is_active"], r["messages"]) for r in rows] == [(False, 2)]

    await tg.send(user, "/unlink")
    assert tg.last_text_to(user) == texts.NOT_LINKED


async def test_unlink_from_the_api(
    tg: BotHarness, graphql: GraphQLClient, person: Person, pool: asyncpg.Pool
) -> None:
    user = TelegramUser()
    await link(tg, graphql, user, person)
    unlink = "mutation { unlinkTelegram }"
    assert (await graphql.ok(unlink, token=person.token))["unlinkTelegram"] is True
    assert await linked_person(pool, user) is None
    assert (await graphql.ok(unlink, token=person.token))["unlinkTelegram"] is False


async def test_start_without_a_code(tg: BotHarness, graphql: GraphQLClient, person: Person) -> None:
    user = TelegramUser()
    await tg.send(user, "/start")
    assert tg.last_text_to(user) == texts.HOW_TO_LINK
    await link(tg, graphql, user, person)
    await tg.send(user, "/start")
    assert tg.last_text_to(user) == texts.WELCOME_LINKED
    await tg.send(user, "/help")
    assert tg.last_text_to(user) == texts.HELP


async def test_asking_for_many_codes_keeps_only_the_newest_few(
    graphql: GraphQLClient, person: Person, pool: asyncpg.Pool
) -> None:
    codes = [
        (await graphql.ok(CREATE_CODE, token=person.token))["createTelegramLinkCode"]["code"]
        for _ in range(8)
    ]
    assert len(set(codes)) == 8
    kept = await pool.fetch(
        "SELECT code_hash FROM telegram_link_codes WHERE user_id = $1", person.user_id
    )
    newest = {hashlib.sha256(c.encode()).digest() for c in codes[-5:]}
    assert {bytes(r["code_hash"]) for r in kept} == newest


async def test_concurrent_requests_for_codes_keep_at_most_five_open(
    graphql: GraphQLClient, person: Person, pool: asyncpg.Pool
) -> None:
    created = await asyncio.gather(
        *(graphql.ok(CREATE_CODE, token=person.token) for _ in range(30))
    )
    codes = [c["createTelegramLinkCode"]["code"] for c in created]
    assert len(set(codes)) == 30
    open_codes = await pool.fetch(
        "SELECT code_hash FROM telegram_link_codes "
        "WHERE user_id = $1 AND used_at IS NULL AND expires_at > now()",
        person.user_id,
    )
    assert len(open_codes) == 5
    # The five kept are five of the codes handed out, and one more request still keeps five.
    handed_out = {hashlib.sha256(c.encode()).digest() for c in codes}
    assert {bytes(r["code_hash"]) for r in open_codes} <= handed_out
    last = (await graphql.ok(CREATE_CODE, token=person.token))["createTelegramLinkCode"]["code"]
    kept = await pool.fetch(
        "SELECT code_hash FROM telegram_link_codes WHERE user_id = $1", person.user_id
    )
    assert len(kept) == 5
    assert hashlib.sha256(last.encode()).digest() in {bytes(r["code_hash"]) for r in kept}
