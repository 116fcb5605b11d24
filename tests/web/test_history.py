"""AC-8: history comes from the server, so a refresh loses nothing; paging back to the start."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest

from bots.channel import TELEGRAM
from graphql_api.app import create_app
from graphql_api.core.agent import AgentError, ChatTurn
from graphql_api.core.channels import WEB
from graphql_api.core.models import Role
from graphql_api.core.runtime import Resources
from graphql_api.core.settings import Settings
from tests.conftest import make_person, running_server

from .helpers import app_url, expect, message_rows, open_session_id, seed_session, session_item

pytestmark = pytest.mark.browser


async def test_sent_message_and_reply_survive_a_reload(page: Any, server_url: str) -> None:
    person = make_person()
    await page.goto(app_url(server_url, person.token))
    await expect(page.get_by_test_id("session-list-status")).to_contain_text("No sessions yet")
    assert "token" not in page.url  # taken from the address bar into local storage

    composer = page.get_by_test_id("composer")
    await composer.fill("Hello from the browser")
    await composer.press("Enter")
    reply = page.get_by_test_id("message").filter(has_text="You said: Hello from the browser")
    await expect(reply).to_have_attribute("data-role", "assistant")
    await expect(page).to_have_url(re.compile(r"\?session="))
    session_id = open_session_id(page.url)
    assert session_id
    await expect(session_item(page, session_id)).to_have_attribute("data-channel", "web")

    # Shift+Enter is a new line, not a send; the button sends too.
    await composer.type("first line")
    await composer.press("Shift+Enter")
    await composer.type("second line")
    await expect(composer).to_have_value("first line\nsecond line")
    await page.get_by_test_id("send").click()
    shown = page.get_by_test_id("message-list").get_by_test_id("message")
    await expect(shown).to_have_count(4)
    await expect(shown.last).to_contain_text("message 2 in this session")

    await page.reload()
    await expect(shown).to_have_count(4)
    assert open_session_id(page.url) == session_id
    rows = await message_rows(page)
    assert [(r["role"], r["content"]) for r in rows] == [
        ("user", "Hello from the browser"),
        ("assistant", "[assistant] You said: Hello from the browser (message 1 in this session)"),
        ("user", "first line\nsecond line"),
        ("assistant", "[assistant] You said: first line\nsecond line (message 2 in this session)"),
    ]
    item = session_item(page, session_id)
    await expect(item.locator("a")).to_have_attribute("aria-current", "true")
    await expect(item).to_contain_text("second line")  # the last-message preview
    await expect(page.get_by_test_id("load-older")).to_be_hidden()


async def test_load_older_reaches_the_first_message(
    page: Any, server_url: str, pool: asyncpg.Pool
) -> None:
    person = make_person()
    total = 300
    history = [
        (Role.USER if i % 2 == 0 else Role.ASSISTANT, f"Message {i + 1} of {total}")
        for i in range(total)
    ]
    session_id = await seed_session(pool, person.user_id, WEB, history)
    await page.goto(app_url(server_url, person.token, session_id))

    shown = page.get_by_test_id("message-list").get_by_test_id("message")
    await expect(shown).to_have_count(30)
    await expect(shown.last).to_have_text(re.compile(f"Message {total} of {total}"))
    load_older = page.get_by_test_id("load-older")
    for expected in range(60, total + 1, 30):
        await load_older.click()
        await expect(shown).to_have_count(expected)
    await expect(load_older).to_be_hidden()
    assert await load_older.is_disabled()

    rows = await message_rows(page)
    assert [r["content"] for r in rows] == [f"Message {i} of {total}" for i in range(1, total + 1)]
    assert [r["role"] for r in rows] == ["user", "assistant"] * (total // 2)
    assert len({r["id"] for r in rows}) == total


async def test_an_empty_session_shows_an_empty_panel(
    page: Any, server_url: str, pool: asyncpg.Pool
) -> None:
    person = make_person()
    session_id = await seed_session(pool, person.user_id, WEB)
    await page.goto(app_url(server_url, person.token, session_id))
    await expect(page.get_by_test_id("empty-session")).to_be_visible()
    await expect(page.get_by_test_id("message-list").get_by_test_id("message")).to_have_count(0)
    await expect(page.get_by_test_id("message-status")).to_be_hidden()
    await expect(page.get_by_test_id("notice")).to_be_hidden()
    await expect(page.get_by_test_id("load-older")).to_be_hidden()
    await expect(page.get_by_test_id("composer")).to_be_enabled()
    await expect(session_item(page, session_id)).to_contain_text("No messages yet")


async def test_message_text_is_shown_as_text_never_as_markup(
    page: Any, server_url: str, pool: asyncpg.Pool
) -> None:
    person = make_person()
    markup = '<img src=x onerror="document.body.dataset.pwned=1"><b>bold?</b>'
    session_id = await seed_session(
        pool, person.user_id, TELEGRAM, [(Role.USER, markup)], agent_name="<i>agent</i>"
    )
    await page.goto(app_url(server_url, person.token, session_id))
    shown = page.get_by_test_id("message-list").get_by_test_id("message")
    await expect(shown).to_have_count(1)
    assert [r["content"] for r in await message_rows(page)] == [markup]
    await expect(session_item(page, session_id)).to_contain_text("<i>agent</i>")
    assert await page.locator("img, b, i").count() == 0
    assert await page.evaluate("document.body.dataset.pwned") is None


async def test_unknown_session_in_the_address_says_so(page: Any, server_url: str) -> None:
    person = make_person()
    await page.goto(app_url(server_url, person.token, "no-such-session"))
    status = page.get_by_test_id("message-status")
    await expect(status).to_contain_text("no session with this id")
    await expect(page.get_by_test_id("composer")).to_be_disabled()


class BrokenAgent:
    """A real agent whose model is down: every reply fails."""

    async def reply(self, history: Sequence[ChatTurn], message: str, *, agent_name: str) -> str:
        raise AgentError("the model is down")

    async def aclose(self) -> None:
        return None


async def test_a_failed_reply_keeps_the_message_and_shows_the_error(
    page: Any, settings: Settings, pool: asyncpg.Pool
) -> None:
    person = make_person()
    app = create_app(settings, Resources(settings=settings, pool=pool, agent=BrokenAgent()))
    async with running_server(app) as url:
        await page.goto(app_url(url, person.token))
        composer = page.get_by_test_id("composer")
        await expect(composer).to_be_enabled()
        await composer.fill("Are you there?")
        await composer.press("Enter")
        notice = page.get_by_test_id("notice")
        await expect(notice).to_contain_text("could not answer")
        await expect(page).to_have_url(re.compile(r"\?session="))
        shown = page.get_by_test_id("message-list").get_by_test_id("message")
        await expect(shown).to_have_count(1)
        await expect(shown.first).to_have_attribute("data-message-id", re.compile(r"\d+"))

        await page.reload()
        await expect(shown).to_have_count(1)
        assert [(r["role"], r["content"]) for r in await message_rows(page)] == [
            ("user", "Are you there?")
        ]
        await expect(notice).to_contain_text("the model is down")  # the session's lastError
