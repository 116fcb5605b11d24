"""Without a usable token the app explains how to sign in; it never shows a blank page."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from graphql_api.core.tokens import mint_token
from tests.conftest import make_person

from .helpers import app_url, expect

pytestmark = pytest.mark.browser


async def expect_sign_in(page: Any, reason: str) -> None:
    sign_in = page.get_by_test_id("sign-in")
    await expect(sign_in).to_be_visible()
    await expect(page.get_by_test_id("sign-in-reason")).to_contain_text(reason)
    await expect(sign_in).to_contain_text("unified-sessions token --user <uuid>")
    await expect(sign_in).to_contain_text("unified-sessions dev")
    await expect(page.get_by_test_id("session-list")).to_be_hidden()
    await expect(page.get_by_test_id("telegram-link")).to_be_hidden()


async def test_no_token_shows_sign_in_and_a_pasted_token_signs_in(
    page: Any, server_url: str
) -> None:
    await page.goto(app_url(server_url))
    await expect_sign_in(page, "not signed in")

    person = make_person()
    await page.get_by_test_id("sign-in-token").fill(person.token)
    await page.get_by_test_id("sign-in-token").press("Enter")
    await expect(page.get_by_test_id("session-list-status")).to_contain_text("No sessions yet")
    await expect(page.get_by_test_id("sign-in")).to_be_hidden()

    await page.get_by_test_id("sign-out").click()
    await expect_sign_in(page, "not signed in")


async def test_an_expired_token_shows_sign_in(page: Any, server_url: str) -> None:
    expired = make_person(ttl=-60)
    await page.goto(app_url(server_url, expired.token))
    await expect_sign_in(page, "expired")
    await page.reload()  # the expired token was dropped, not kept for the next visit
    await expect_sign_in(page, "not signed in")


async def test_a_token_the_server_refuses_shows_sign_in(page: Any, server_url: str) -> None:
    forged = mint_token("not-the-server-secret-" + "x" * 32, uuid.uuid4())
    await page.goto(app_url(server_url, forged))
    await expect_sign_in(page, "did not accept")


async def test_garbage_in_the_address_shows_sign_in(page: Any, server_url: str) -> None:
    await page.goto(app_url(server_url, "not-a-jwt"))
    await expect_sign_in(page, "not a valid token")
