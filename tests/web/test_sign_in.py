"""Without a usable token the app explains how to sign in; it never shows a blank page."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import websockets

from graphql_api.core.tokens import mint_token
from tests.conftest import GraphQLClient, make_person

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


async def test_a_person_at_the_socket_cap_stays_signed_in_and_goes_live_later(
    page: Any, server_url: str
) -> None:
    """Other tabs hold every WebSocket the server allows a person: the socket is refused for
    now (not the token), so the app keeps the token, works over HTTP, and goes live once a
    place is free (a session created elsewhere then appears without a reload)."""
    from graphql_api.app import MAX_CONNECTIONS_PER_PERSON

    person = make_person()
    ws = "ws" + server_url.removeprefix("http") + "/graphql"
    init = json.dumps(
        {"type": "connection_init", "payload": {"Authorization": f"Bearer {person.token}"}}
    )
    held = []
    try:
        for _ in range(MAX_CONNECTIONS_PER_PERSON):
            socket = await websockets.connect(ws, subprotocols=["graphql-transport-ws"])
            held.append(socket)
            await socket.send(init)
            assert json.loads(await socket.recv())["type"] == "connection_ack"
        await page.goto(app_url(server_url, person.token))
        await expect(page.get_by_test_id("session-list-status")).to_contain_text("No sessions yet")
        await page.wait_for_timeout(1500)  # the app's socket has been refused, and retried
        await expect(page.get_by_test_id("sign-in")).to_be_hidden()
    finally:
        for socket in held:
            await socket.close()

    await page.wait_for_timeout(8000)  # the app's next retry finds a place
    await GraphQLClient(server_url).ok(
        'mutation { sendMessage(input: {content: "from another tab"}) { reply { id } } }',
        token=person.token,
    )
    await expect(page.get_by_test_id("session-item")).to_have_count(1)
    await expect(page.get_by_test_id("sign-in")).to_be_hidden()


async def test_a_token_that_expires_while_the_page_is_open_shows_sign_in(
    page: Any, server_url: str
) -> None:
    """The server ends the live subscriptions at the token's exp; the page says so instead of
    going quietly stale."""
    person = make_person(ttl=4)
    await page.goto(app_url(server_url, person.token))
    await expect(page.get_by_test_id("session-list-status")).to_contain_text("No sessions yet")
    await expect_sign_in(page, "expired")
