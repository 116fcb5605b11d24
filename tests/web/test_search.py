"""Search from the web app: results with a highlighted snippet and the channel's badge; a
result opens its session at the message that matched, in the middle of a long history."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bots.channel import TELEGRAM
from graphql_api.core.channels import WEB
from graphql_api.core.models import Role
from tests.conftest import make_person

from .helpers import app_url, conversation, expect, open_session_id, seed_session

pytestmark = pytest.mark.browser

HIT = "The aubergine parmigiana needs forty minutes in the oven."


def long_history(total: int, hit_at: int) -> list[tuple[Role, str]]:
    return [
        (
            Role.USER if i % 2 == 0 else Role.ASSISTANT,
            HIT if i == hit_at else f"Filler message {i + 1} of {total}",
        )
        for i in range(total)
    ]


async def test_a_result_opens_its_session_at_the_hit(
    page: Any, server_url: str, pool: asyncpg.Pool, artifacts: Path
) -> None:
    person = make_person()
    total, hit_at = 120, 40  # far from both ends: the newest page does not hold it
    web_id = await seed_session(pool, person.user_id, WEB, long_history(total, hit_at))
    telegram_id = await seed_session(
        pool,
        person.user_id,
        TELEGRAM,
        conversation(("Any aubergines left at the market?", "Two, by the door.")),
    )
    stranger = make_person()  # someone else's matching message is never found
    await seed_session(pool, stranger.user_id, WEB, conversation(("aubergine", "secret")))
    await page.goto(app_url(server_url, person.token))
    await expect(page.get_by_test_id("session-item")).to_have_count(2)

    await page.get_by_test_id("search-input").fill("aubergine")
    results = page.get_by_test_id("search-result")
    await expect(results).to_have_count(2)
    await expect(page.get_by_test_id("session-list")).to_be_hidden()  # results replace the list
    await expect(page.get_by_test_id("search-status")).to_contain_text("2 matching messages")
    # Newest first: the Telegram question, then the web message.
    await expect(results.nth(0)).to_have_attribute("data-session-id", telegram_id)
    await expect(results.nth(0).get_by_test_id("channel-badge")).to_have_text("Telegram")
    await expect(results.nth(0).locator("mark")).to_have_text("aubergines")  # stemmed
    web_hit = results.nth(1)
    await expect(web_hit).to_have_attribute("data-channel", "web")
    await expect(web_hit.get_by_test_id("channel-badge")).to_have_text("Web")
    await expect(web_hit.get_by_test_id("search-snippet")).to_contain_text("aubergine parmigiana")
    await expect(web_hit.locator("mark")).to_have_text("aubergine")
    await page.screenshot(path=str(artifacts / "web-search.png"))

    # The channel filter narrows the results too.
    await page.get_by_test_id("channel-filter").select_option("web")
    await expect(results).to_have_count(1)
    await expect(results.first).to_have_attribute("data-session-id", web_id)

    await results.first.locator("a").click()
    assert open_session_id(page.url) == web_id
    await expect(page).to_have_url(re.compile(r"[?&]at="))
    hit = page.locator('[data-testid="message"][data-hit="true"]')
    await expect(hit).to_have_count(1)
    await expect(hit.locator(".message-content")).to_have_text(HIT)
    await expect(hit).to_be_in_viewport()
    assert await page.evaluate("document.scrollingElement.scrollTop") == 0  # only the panel moved
    await page.screenshot(path=str(artifacts / "web-search-hit.png"))
    shown = page.get_by_test_id("message-list").get_by_test_id("message")
    await expect(shown).to_have_count(30)  # a page centred on the hit
    await expect(page.get_by_test_id("load-older")).to_be_visible()
    await expect(page.get_by_test_id("composer")).to_be_disabled()  # until the newest is shown

    # Page forward to the newest message; then the session is live and writable again.
    newer = page.get_by_test_id("load-newer")
    for _ in range(3):  # 65 newer messages: pages of 30, 30 and 5
        await expect(newer).to_be_enabled()
        await newer.click()
    await expect(newer).to_be_hidden()
    await expect(shown.last.locator(".message-content")).to_have_text(
        f"Filler message {total} of {total}"
    )
    assert await shown.count() == total - (hit_at - 15)  # nothing shown twice
    await expect(page.get_by_test_id("composer")).to_be_enabled()

    # A refresh opens it at the hit again (the hit is in the address).
    await page.reload()
    await expect(hit.locator(".message-content")).to_have_text(HIT)
    await expect(hit).to_be_in_viewport()


async def test_snippets_are_text_and_a_miss_says_so(
    page: Any, server_url: str, pool: asyncpg.Pool
) -> None:
    person = make_person()
    # ts_headline drops what its parser takes for tags; the rest comes escaped, to be shown as text.
    text = (
        "Any quinces & <jams> left at the <img src=x onerror=alert(1)> market for a < b tomorrow?"
    )
    await seed_session(pool, person.user_id, WEB, conversation((text, "Noted.")))
    await page.goto(app_url(server_url, person.token))
    field = page.get_by_test_id("search-input")
    await field.fill("quince")
    result = page.get_by_test_id("search-result")
    await expect(result).to_have_count(1)
    snippet = result.get_by_test_id("search-snippet")
    await expect(snippet).to_contain_text("<img src=x onerror=alert(1)> market for a < b")
    await expect(snippet).to_contain_text("quinces &")
    await expect(snippet.locator("mark")).to_have_text("quinces")
    assert await page.locator("img").count() == 0  # the markup stayed text

    await field.fill("nothing-like-this")
    await expect(page.get_by_test_id("search-status")).to_contain_text("No messages match")
    await expect(result).to_have_count(0)

    # Escape (or Clear) goes back to the session list.
    await field.press("Escape")
    await expect(field).to_have_value("")
    await expect(page.get_by_test_id("session-list")).to_be_visible()
    await expect(page.get_by_test_id("session-item")).to_have_count(1)
