"""The Telegram link button asks the API for a one-time code and shows it with the deep link."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from bots import links as telegram_links
from tests.conftest import make_person

from .helpers import app_url, expect

pytestmark = pytest.mark.browser


async def test_link_button_shows_a_code_that_links_the_account(
    page: Any, server_url: str, pool: asyncpg.Pool
) -> None:
    person = make_person()
    await page.goto(app_url(server_url, person.token))
    await page.get_by_test_id("telegram-link").click()

    code = page.get_by_test_id("telegram-link-code")
    await expect(code).to_be_visible()
    text = (await code.text_content() or "").strip()
    assert text
    await expect(page.get_by_test_id("telegram-deep-link")).to_have_attribute(
        "href", f"https://t.me/unified_sessions_test_bot?start={text}"
    )
    await expect(page.get_by_test_id("telegram-link-status")).to_be_hidden()
    await expect(page.get_by_test_id("telegram-linked")).to_be_hidden()

    # The person sends /start CODE to the bot: the code shown is the one that links them.
    redeemed = await telegram_links.redeem_link_code(
        pool, text, telegram_user_id=424242, telegram_username="ana_tg"
    )
    assert redeemed.link is not None and redeemed.link.user_id == person.user_id

    await page.get_by_role("button", name="Close").click()
    await expect(code).to_be_hidden()
    await page.get_by_test_id("telegram-link").click()
    await expect(page.get_by_test_id("telegram-linked")).to_contain_text("Linked to @ana_tg")
    await expect(code).not_to_have_text(text)  # every click makes a new one-time code
