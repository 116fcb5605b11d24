"""AC-9: Telegram and scheduled sessions sit in the same list as web ones; filter; scrolling.

"Continue anywhere": any session can be written in from the web; a reply in a Telegram session
is also delivered to the Telegram chat, and the bubbles say by which door and whether it arrived.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bots.channel import TELEGRAM
from graphql_api.core.channels import WEB
from tests.conftest import make_person
from workers.channel import SCHEDULED

from .helpers import (
    app_url,
    conversation,
    expect,
    message_rows,
    open_session_id,
    seed_session,
    session_item,
)

pytestmark = pytest.mark.browser


async def test_a_telegram_session_is_listed_readable_and_writable(
    page: Any, server_url: str, pool: asyncpg.Pool
) -> None:
    person = make_person()
    web_id = await seed_session(
        pool, person.user_id, WEB, conversation(("A web question", "A web answer"))
    )
    telegram_id = await seed_session(
        pool,
        person.user_id,
        TELEGRAM,
        conversation(("Sent from Telegram", "Answered in Telegram")),
        session_id=f"telegram:{uuid.uuid4().hex}",
    )
    scheduled_id = await seed_session(
        pool,
        person.user_id,
        SCHEDULED,
        conversation(("Daily digest", "Nothing new today")),
        agent_name="digest",
        is_active=False,
    )
    await page.goto(app_url(server_url, person.token))

    items = page.get_by_test_id("session-item")
    await expect(items).to_have_count(3)
    ids = [await items.nth(i).get_attribute("data-session-id") for i in range(3)]
    assert ids == [scheduled_id, telegram_id, web_id]  # newest activity first

    telegram = session_item(page, telegram_id)
    await expect(telegram).to_have_attribute("data-channel", "telegram")
    await expect(telegram.get_by_test_id("channel-badge")).to_have_text("Telegram")
    await expect(telegram).to_contain_text("Answered in Telegram")

    await telegram.locator("a").click()
    shown = page.get_by_test_id("message-list").get_by_test_id("message")
    await expect(shown).to_have_count(2)
    assert open_session_id(page.url) == telegram_id
    assert [(r["role"], r["content"]) for r in await message_rows(page)] == [
        ("user", "Sent from Telegram"),
        ("assistant", "Answered in Telegram"),
    ]
    await expect(page.get_by_test_id("composer")).to_be_enabled()
    await expect(page.get_by_test_id("send")).to_be_enabled()
    await expect(page.get_by_test_id("composer-hint")).to_contain_text("Telegram chat")
    # Messages that came in by the session's own door carry no "via" mark.
    await expect(page.get_by_test_id("message-via")).to_have_count(0)

    channel_filter = page.get_by_test_id("channel-filter")
    await channel_filter.select_option("telegram")
    await expect(items).to_have_count(1)
    await expect(items.first).to_have_attribute("data-session-id", telegram_id)

    await channel_filter.select_option("scheduled")
    await expect(items).to_have_count(1)
    await expect(items.first).to_have_attribute("data-session-id", scheduled_id)
    await items.first.locator("a").click()
    await expect(shown.last).to_contain_text("Nothing new today")
    await expect(page.get_by_test_id("composer")).to_be_enabled()
    await expect(page.get_by_test_id("send")).to_be_enabled()
    await expect(page.get_by_test_id("composer-hint")).to_contain_text("scheduled run")

    await channel_filter.select_option("web")
    await expect(items).to_have_count(1)
    await expect(items.first).to_have_attribute("data-session-id", web_id)
    await items.first.locator("a").click()
    await expect(shown.last).to_contain_text("A web answer")
    await expect(page.get_by_test_id("send")).to_be_enabled()
    await expect(page.get_by_test_id("composer-hint")).to_be_hidden()

    await channel_filter.select_option("all")
    await expect(items).to_have_count(3)


async def link_telegram(pool: asyncpg.Pool, user_id: uuid.UUID) -> int:
    """The person's Telegram account, linked (as redeeming a link code does); its user id,
    which is also the id of its private chat with the bot."""
    telegram_user_id = random.randint(10**9, 10**12)
    await pool.execute(
        "INSERT INTO telegram_links (telegram_user_id, user_id, telegram_username) "
        "VALUES ($1, $2, 'someone')",
        telegram_user_id,
        user_id,
    )
    return telegram_user_id


async def send_from_composer(page: Any, text: str, count: int) -> Any:
    """Write `text` in the composer, send it with Enter, wait for `count` messages shown."""
    await page.get_by_test_id("composer").fill(text)
    await page.get_by_test_id("composer").press("Enter")
    shown = page.get_by_test_id("message-list").get_by_test_id("message")
    await expect(shown).to_have_count(count)
    await expect(shown.last).to_have_attribute("data-role", "assistant")
    await expect(page.get_by_test_id("reply-pending")).to_have_count(0)
    return shown


async def test_writing_in_a_telegram_session_from_the_web_delivers_the_reply_there(
    page: Any, server_url: str, pool: asyncpg.Pool, artifacts: Path
) -> None:
    person = make_person()
    chat = await link_telegram(pool, person.user_id)
    session_id = await seed_session(
        pool,
        person.user_id,
        TELEGRAM,
        conversation(("Asked in Telegram", "Answered in Telegram")),
        session_id=f"tg-{chat}-1",  # the linked account's private chat: where replies go
    )
    await page.goto(app_url(server_url, person.token, session_id))
    shown = page.get_by_test_id("message-list").get_by_test_id("message")
    await expect(shown).to_have_count(2)
    await expect(page.get_by_test_id("composer-hint")).to_have_text(
        "Replies here are also sent to your Telegram chat."
    )

    shown = await send_from_composer(page, "Asked on the web", 4)
    assert open_session_id(page.url) == session_id  # the same session, not a new web one
    rows = await message_rows(page)
    assert [r["role"] for r in rows] == ["user", "assistant", "user", "assistant"]
    assert rows[2]["content"] == "Asked on the web"
    question, reply = shown.nth(2), shown.nth(3)
    await expect(question.get_by_test_id("message-via")).to_have_text("via web")
    await expect(reply.get_by_test_id("message-via")).to_have_text("via web")  # a web turn
    await expect(shown.nth(0).get_by_test_id("message-via")).to_have_count(0)
    await expect(shown.nth(1).get_by_test_id("message-delivery")).to_have_count(0)

    # No worker runs here: the reply waits in the outbox.
    delivery = reply.get_by_test_id("message-delivery")
    await expect(delivery).to_have_count(1)
    await expect(delivery).to_have_attribute("data-channel", "telegram")
    await expect(delivery).to_have_attribute("data-status", "pending")
    await expect(delivery).to_have_text("Sending to Telegram…")
    await expect(question.get_by_test_id("message-delivery")).to_have_count(0)

    # The worker sent it: the label follows without a reload (the page re-reads the message).
    updated = await pool.execute(
        "UPDATE message_deliveries SET status = 'sent', sent_at = now(), attempts = 1 "
        "WHERE message_id IN (SELECT id FROM chat_message_history WHERE session_id = $1)",
        session_id,
    )
    assert updated == "UPDATE 1"
    await page.evaluate("window.notReloaded = true")
    await expect(delivery).to_have_attribute("data-status", "sent")
    await expect(delivery).to_have_text("Sent to Telegram")
    assert await page.evaluate("window.notReloaded") is True
    await page.screenshot(path=str(artifacts / "web-telegram-delivery.png"))

    # And after a reload, from the history.
    await page.reload()
    await expect(shown).to_have_count(4)
    await expect(shown.nth(2).get_by_test_id("message-via")).to_have_text("via web")
    await expect(shown.nth(3).get_by_test_id("message-delivery")).to_have_text("Sent to Telegram")


async def test_a_reply_that_cannot_reach_telegram_says_why(
    page: Any, server_url: str, pool: asyncpg.Pool
) -> None:
    person = make_person()  # no linked Telegram account
    session_id = await seed_session(
        pool,
        person.user_id,
        TELEGRAM,
        conversation(("Asked in Telegram", "Answered in Telegram")),
        session_id="tg-4343-1",
    )
    await page.goto(app_url(server_url, person.token, session_id))
    await expect(page.get_by_test_id("message-list").get_by_test_id("message")).to_have_count(2)

    shown = await send_from_composer(page, "<b>Anyone there?</b>", 4)
    delivery = shown.nth(3).get_by_test_id("message-delivery")
    await expect(delivery).to_have_attribute("data-status", "failed")
    await expect(delivery).to_have_text(
        "Not delivered to Telegram: the person's Telegram account is not linked (any more)"
    )
    assert await page.locator(".message-list b").count() == 0  # still only text


async def test_writing_in_a_scheduled_session_from_the_web(
    page: Any, server_url: str, pool: asyncpg.Pool
) -> None:
    person = make_person()
    session_id = await seed_session(
        pool,
        person.user_id,
        SCHEDULED,
        conversation(("Daily digest", "Nothing new today")),
        agent_name="digest",
        is_active=False,
    )
    await page.goto(app_url(server_url, person.token, session_id))
    await expect(page.get_by_test_id("message-list").get_by_test_id("message")).to_have_count(2)

    shown = await send_from_composer(page, "Anything tomorrow?", 4)
    assert open_session_id(page.url) == session_id
    await expect(shown.nth(2).get_by_test_id("message-via")).to_have_text("via web")
    await expect(page.get_by_test_id("message-delivery")).to_have_count(0)  # nowhere to send
    await expect(page.get_by_test_id("notice")).to_be_hidden()


async def test_the_list_loads_more_sessions_as_it_scrolls(
    page: Any, server_url: str, pool: asyncpg.Pool
) -> None:
    person = make_person()
    created = [await seed_session(pool, person.user_id, WEB) for _ in range(45)]
    await page.goto(app_url(server_url, person.token))

    items = page.get_by_test_id("session-item")
    await expect(items).to_have_count(20)  # the first page
    scroller = page.locator("#session-scroll")
    for expected in (40, 45):
        await scroller.evaluate("box => { box.scrollTop = box.scrollHeight; }")
        await expect(items).to_have_count(expected)
    await expect(page.get_by_test_id("session-list-status")).to_be_hidden()

    shown = await items.evaluate_all("items => items.map(item => item.dataset.sessionId)")
    assert shown == list(reversed(created))

    # A new filter starts from the first page and scrolls on again.
    await page.get_by_test_id("channel-filter").select_option("web")
    await expect(items).to_have_count(20)
    for expected in (40, 45):
        await scroller.evaluate("box => { box.scrollTop = box.scrollHeight; }")
        await expect(items).to_have_count(expected)


async def test_new_session_button_starts_a_new_web_session(
    page: Any, server_url: str, pool: asyncpg.Pool
) -> None:
    person = make_person()
    first = await seed_session(
        pool, person.user_id, WEB, conversation(("old question", "old answer"))
    )
    await page.goto(app_url(server_url, person.token, first))
    shown = page.get_by_test_id("message-list").get_by_test_id("message")
    await expect(shown).to_have_count(2)

    await page.get_by_test_id("new-session").click()
    await expect(shown).to_have_count(0)
    assert open_session_id(page.url) is None
    await page.get_by_test_id("composer").fill("A fresh start")
    await page.get_by_test_id("composer").press("Enter")
    await expect(shown).to_have_count(2)
    created = open_session_id(page.url)
    assert created not in (None, first)

    items = page.get_by_test_id("session-item")
    await expect(items).to_have_count(2)
    await expect(items.first).to_have_attribute("data-session-id", created)
    await expect(items.first.locator("a")).to_have_attribute("aria-current", "true")

    await page.go_back()  # back to the first session
    await expect(shown.last).to_contain_text("old answer")
    assert open_session_id(page.url) == first
