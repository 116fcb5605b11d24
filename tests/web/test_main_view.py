"""The main view as a person sees it: a screenshot artifact, and the phone-width layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bots.channel import TELEGRAM
from graphql_api.core.channels import WEB
from graphql_api.core.settings import Settings
from graphql_api.core.tokens import mint_token
from graphql_api.demo import LONG_SESSION_ID, seed_demo
from tests.conftest import make_person
from workers.channel import SCHEDULED

from .helpers import app_url, conversation, expect, seed_session, session_item

pytestmark = pytest.mark.browser

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


async def seed_variety(pool: asyncpg.Pool, person_id: Any) -> str:
    """A few sessions from every channel; returns the web one to open."""
    await seed_session(
        pool,
        person_id,
        SCHEDULED,
        conversation(
            ("Summarise yesterday's support tickets.", "12 tickets: 9 resolved, 3 waiting.")
        ),
        agent_name="digest",
        is_active=False,
    )
    await seed_session(
        pool,
        person_id,
        TELEGRAM,
        conversation(("What did we plan for Friday?", "Review the quarterly numbers at 10:00.")),
    )
    return await seed_session(
        pool,
        person_id,
        WEB,
        conversation(
            ("Hi! What is this?", "Every conversation with your agent, from every channel."),
            (
                "Can I see my Telegram chats here?",
                "Yes: they are listed beside web sessions, with a Telegram badge.\n"
                "Open one to read it; reply in Telegram.",
            ),
        ),
    )


async def fits_width(page: Any, test_id: str, width: int) -> bool:
    """The element is inside the screen's width and the page does not scroll sideways."""
    box = await page.get_by_test_id(test_id).bounding_box()
    page_width = await page.evaluate("document.documentElement.scrollWidth")
    return box is not None and box["x"] + box["width"] <= width and page_width <= width


async def test_screenshot_of_the_main_view(
    page: Any, server_url: str, pool: asyncpg.Pool, artifacts: Path
) -> None:
    person = make_person()
    web_id = await seed_variety(pool, person.user_id)
    await page.goto(app_url(server_url, person.token, web_id))
    await expect(page.get_by_test_id("session-item")).to_have_count(3)
    await expect(page.get_by_test_id("message-list").get_by_test_id("message")).to_have_count(4)
    await expect(page.get_by_test_id("composer")).to_be_enabled()

    target = artifacts / "web-main.png"
    target.unlink(missing_ok=True)
    await page.screenshot(path=str(target))
    assert target.read_bytes().startswith(PNG_SIGNATURE)


async def test_phone_width_shows_one_pane_at_a_time(
    browser: Any, server_url: str, pool: asyncpg.Pool, artifacts: Path
) -> None:
    person = make_person()
    web_id = await seed_variety(pool, person.user_id)
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    try:
        page = await context.new_page()
        await page.goto(app_url(server_url, person.token))
        items = page.get_by_test_id("session-item")
        await expect(items).to_have_count(3)
        await expect(page.get_by_test_id("message-list")).to_be_hidden()
        assert await fits_width(page, "new-session", 390)
        await page.screenshot(path=str(artifacts / "web-phone-list.png"))

        await session_item(page, web_id).locator("a").tap()
        composer = page.get_by_test_id("composer")
        await expect(composer).to_be_visible()
        await expect(page.get_by_test_id("session-list")).to_be_hidden()
        assert await fits_width(page, "send", 390)
        await page.screenshot(path=str(artifacts / "web-phone-chat.png"))

        await page.get_by_role("button", name="Back to sessions").tap()
        await expect(page.get_by_test_id("session-list")).to_be_visible()
    finally:
        await context.close()


async def test_the_demo_person_sees_every_channel(
    page: Any, settings: Settings, server_url: str, pool: asyncpg.Pool
) -> None:
    """What `unified-sessions dev` shows a newcomer: demo sessions from all three channels."""
    demo_user = await seed_demo(pool)
    token = mint_token(settings.require_jwt_secret(), demo_user)
    await page.goto(app_url(server_url, token))
    items = page.get_by_test_id("session-item")
    await expect(items.first).to_have_attribute("data-session-id", "demo-web-welcome")
    await expect(items).to_have_count(5)
    channels = await items.evaluate_all("items => items.map(item => item.dataset.channel)")
    assert set(channels) == {"web", "telegram", "scheduled"}

    await session_item(page, LONG_SESSION_ID).locator("a").click()
    await expect(page.get_by_test_id("message-list").get_by_test_id("message")).to_have_count(30)
    await expect(page.get_by_test_id("load-older")).to_be_enabled()
