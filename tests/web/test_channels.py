"""AC-9: Telegram and scheduled sessions sit in the same list as web ones; filter; scrolling."""

from __future__ import annotations

import uuid
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


async def test_a_telegram_session_is_listed_readable_and_read_only(
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
    await expect(page.get_by_test_id("composer")).to_be_disabled()
    await expect(page.get_by_test_id("send")).to_be_disabled()
    await expect(page.get_by_test_id("read-only-note")).to_contain_text("Telegram")

    channel_filter = page.get_by_test_id("channel-filter")
    await channel_filter.select_option("telegram")
    await expect(items).to_have_count(1)
    await expect(items.first).to_have_attribute("data-session-id", telegram_id)

    await channel_filter.select_option("scheduled")
    await expect(items).to_have_count(1)
    await expect(items.first).to_have_attribute("data-session-id", scheduled_id)
    await items.first.locator("a").click()
    await expect(shown.last).to_contain_text("Nothing new today")
    await expect(page.get_by_test_id("send")).to_be_disabled()
    await expect(page.get_by_test_id("read-only-note")).to_contain_text("Scheduled")

    await channel_filter.select_option("web")
    await expect(items).to_have_count(1)
    await expect(items.first).to_have_attribute("data-session-id", web_id)
    await items.first.locator("a").click()
    await expect(shown.last).to_contain_text("A web answer")
    await expect(page.get_by_test_id("send")).to_be_enabled()
    await expect(page.get_by_test_id("read-only-note")).to_be_hidden()

    await channel_filter.select_option("all")
    await expect(items).to_have_count(3)


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
