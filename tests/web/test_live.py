"""The app, live: messages from other doors appear without a reload, unread badges and read
marks, reconnecting after a dropped socket with no gap and no duplicate, Markdown rendered
safely, the reply growing as it streams, day separators."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

import asyncpg
import pytest

from graphql_api.app import create_app
from graphql_api.core.agent import EchoAgent
from graphql_api.core.channels import WEB
from graphql_api.core.models import Role
from graphql_api.core.runtime import Resources
from graphql_api.core.settings import Settings
from tests.conftest import GraphQLClient, make_person, running_server

from .helpers import app_url, conversation, expect, message_rows, seed_session, session_item

pytestmark = pytest.mark.browser

# "Within 2 s": how long a live update may take to show (the page's own waits are longer).
LIVE_MS = 2_000

SEND = """
mutation Send($input: SendMessageInput!) {
  sendMessage(input: $input) { session { sessionId } userMessage { id } reply { id } }
}"""

CURSORS = """
query Cursors($sessionId: String!) {
  messages(sessionId: $sessionId, last: 100) { edges { cursor node { id content } } }
}"""


async def send(graphql: GraphQLClient, token: str, content: str, session_id: str | None) -> dict:
    """A message sent through the API's HTTP door, as another tab or client would."""
    payload: dict[str, Any] = {"content": content}
    if session_id is not None:
        payload["sessionId"] = session_id
    data = await graphql.ok(SEND, {"input": payload}, token=token)
    return data["sendMessage"]


def shown_messages(page: Any) -> Any:
    return page.get_by_test_id("message-list").get_by_test_id("message")


async def test_messages_from_another_client_appear_live(
    page: Any, server_url: str, pool: asyncpg.Pool
) -> None:
    """With the app open, messages sent through HTTP by another client show up in the open
    session and in the list within 2 s, without a reload; unread badges count the agent's
    replies in other sessions, and opening a session marks it read (also after a reload)."""
    person = make_person()
    graphql = GraphQLClient(server_url)
    other_id = await seed_session(pool, person.user_id, WEB, conversation(("Old", "Older")))
    open_id = await seed_session(pool, person.user_id, WEB, conversation(("Hi", "Hello")))
    await page.goto(app_url(server_url, person.token, open_id))
    await expect(shown_messages(page)).to_have_count(2)
    items = page.get_by_test_id("session-item")
    await expect(items.first).to_have_attribute("data-session-id", open_id)
    other = session_item(page, other_id)
    await expect(other.get_by_test_id("unread-badge")).to_have_text("1")  # its "Older"
    await expect(session_item(page, open_id).get_by_test_id("unread-badge")).to_have_count(0)
    await page.wait_for_timeout(300)  # the subscriptions are sent

    # The open session: the message and the agent's reply appear, each once.
    await send(graphql, person.token, "Sent from elsewhere", open_id)
    await expect(shown_messages(page)).to_have_count(4, timeout=LIVE_MS)
    rows = await message_rows(page)
    assert [r["content"] for r in rows[2:]] == [
        "Sent from elsewhere",
        "[assistant] You said: Sent from elsewhere (message 2 in this session)",
    ]
    await expect(session_item(page, open_id)).to_contain_text("Sent from elsewhere")
    await expect(session_item(page, open_id).get_by_test_id("unread-badge")).to_have_count(0)

    # Another session moves to the top with the agent's reply unread (one's own is not).
    await send(graphql, person.token, "Over here", other_id)
    await expect(items.first).to_have_attribute("data-session-id", other_id, timeout=LIVE_MS)
    await expect(other.get_by_test_id("unread-badge")).to_have_text("2", timeout=LIVE_MS)
    await expect(other).to_contain_text("Over here")

    # A new session made elsewhere is listed at the top.
    created = await send(graphql, person.token, "A brand new session", None)
    new_id = created["session"]["sessionId"]
    await expect(items.first).to_have_attribute("data-session-id", new_id, timeout=LIVE_MS)
    await expect(items).to_have_count(3)
    await expect(session_item(page, new_id).get_by_test_id("unread-badge")).to_have_text("1")

    # Opening a session marks it read: its badge goes, and stays gone after a reload.
    await other.locator("a").click()
    await expect(shown_messages(page)).to_have_count(4)
    await expect(other.get_by_test_id("unread-badge")).to_have_count(0)
    await page.wait_for_timeout(300)  # markSessionRead reaches the server
    await page.reload()
    await expect(shown_messages(page)).to_have_count(4)
    await expect(session_item(page, new_id).get_by_test_id("unread-badge")).to_have_text("1")
    await expect(session_item(page, other_id).get_by_test_id("unread-badge")).to_have_count(0)
    await expect(session_item(page, open_id).get_by_test_id("unread-badge")).to_have_count(0)

    # New messages arriving in the open session are read as they are shown.
    await send(graphql, person.token, "While you watch", other_id)
    await expect(shown_messages(page)).to_have_count(6, timeout=LIVE_MS)
    await page.wait_for_timeout(300)
    await page.reload()
    await expect(shown_messages(page)).to_have_count(6)
    await expect(session_item(page, other_id).get_by_test_id("unread-badge")).to_have_count(0)


UNREAD = "query Unread($s: String!) { session(sessionId: $s) { unreadCount } }"


async def set_visibility(page: Any, state: str) -> None:
    """The page as the browser reports it when its tab is hidden or shown again."""
    await page.evaluate(
        """(state) => {
          Object.defineProperty(document, "visibilityState", { configurable: true, get: () => state });
          document.dispatchEvent(new Event("visibilitychange"));
        }""",
        state,
    )


async def test_what_arrives_while_the_page_is_hidden_is_read_when_it_shows(
    page: Any, server_url: str, pool: asyncpg.Pool
) -> None:
    """The open session's new messages are shown at once, but marked read only once the
    person can see them: while the tab is hidden the reply stays unread on the server."""
    person = make_person()
    graphql = GraphQLClient(server_url)
    session_id = await seed_session(pool, person.user_id, WEB, conversation(("Hi", "Hello")))
    await page.goto(app_url(server_url, person.token, session_id))
    await expect(shown_messages(page)).to_have_count(2)
    await page.wait_for_timeout(300)  # the subscription is sent, the open marked read
    unread = lambda: graphql.ok(UNREAD, {"s": session_id}, token=person.token)  # noqa: E731
    assert (await unread())["session"]["unreadCount"] == 0

    await set_visibility(page, "hidden")
    await send(graphql, person.token, "While you are away", session_id)
    await expect(shown_messages(page)).to_have_count(4, timeout=LIVE_MS)
    await page.wait_for_timeout(500)
    assert (await unread())["session"]["unreadCount"] == 1  # the agent's reply

    await set_visibility(page, "visible")
    deadline = time.monotonic() + LIVE_MS / 1000
    while (await unread())["session"]["unreadCount"] != 0:
        assert time.monotonic() < deadline, "not marked read once shown"
        await asyncio.sleep(0.05)


async def test_unread_badge_caps_at_99_plus(page: Any, server_url: str, pool: asyncpg.Pool) -> None:
    person = make_person()
    many = [(Role.ASSISTANT, f"Note {i}") for i in range(105)]
    busy_id = await seed_session(pool, person.user_id, WEB, many)
    few_id = await seed_session(pool, person.user_id, WEB, [(Role.ASSISTANT, "Just one")])
    await page.goto(app_url(server_url, person.token))
    await expect(session_item(page, busy_id).get_by_test_id("unread-badge")).to_have_text("99+")
    await expect(session_item(page, few_id).get_by_test_id("unread-badge")).to_have_text("1")


async def test_markup_in_a_message_does_not_run_and_markdown_renders(
    page: Any, server_url: str, pool: asyncpg.Pool
) -> None:
    """Stored HTML is shown as text, never run; Markdown becomes (sanitized) markup."""
    person = make_person()
    attack = (
        "<img src=x onerror=window.__pwned=1> and "
        "<script>window.__pwned=2</script> and "
        '<a href="javascript:window.__pwned=3">click</a>'
    )
    session_id = await seed_session(
        pool,
        person.user_id,
        WEB,
        [
            (Role.USER, attack),
            (Role.ASSISTANT, "This is **bold**, `code` and [a link](javascript:alert(1))."),
            (Role.ASSISTANT, "<script>\nwindow.__pwned=4\n</script>"),
            (Role.ASSISTANT, "- one\n- two\n\n![x](x)"),
        ],
    )
    await page.goto(app_url(server_url, person.token, session_id))
    shown = shown_messages(page)
    await expect(shown).to_have_count(4)
    await page.wait_for_timeout(300)  # an image error would have fired by now
    assert await page.evaluate("window.__pwned") is None
    list_ = page.get_by_test_id("message-list")
    assert await list_.locator("img, script, iframe, [onerror]").count() == 0
    assert (await message_rows(page))[0]["content"] == attack  # shown as the text it is

    await expect(shown.nth(1).locator("strong")).to_have_text("bold")
    await expect(shown.nth(1).locator("code")).to_have_text("code")
    link = shown.nth(1).locator("a")
    assert await link.count() == 0 or not (await link.get_attribute("href") or "").startswith(
        "javascript"
    )
    await expect(shown.nth(3).locator("li")).to_have_count(2)

    # A live message with markup is just as inert.
    graphql = GraphQLClient(server_url)
    await page.wait_for_timeout(300)
    await send(graphql, person.token, "<img src=y onerror=window.__pwned=5> **live**", session_id)
    await expect(shown).to_have_count(6, timeout=LIVE_MS)
    await expect(shown.nth(4).locator("strong")).to_have_text("live")
    await page.wait_for_timeout(300)
    assert await page.evaluate("window.__pwned") is None
    assert await list_.locator("img").count() == 0


class Proxy:
    """Playwright's WebSocket route in front of /graphql: forwards frames while `up`, drops the
    connection on `drop()`, refuses new ones while down; records what the page subscribes."""

    def __init__(self) -> None:
        self.up = True
        self.routes: list[Any] = []
        self.subscriptions: list[dict[str, Any]] = []

    async def handle(self, ws: Any) -> None:
        if not self.up:
            await ws.close(code=1013, reason="try again later")
            return
        server = ws.connect_to_server()
        self.routes.append((ws, server))

        def from_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "subscribe":
                self.subscriptions.append(frame["payload"])
            server.send(message)

        ws.on_message(from_page)

    async def drop(self) -> None:
        self.up = False
        for ws, server in self.routes:
            await server.close(code=1001, reason="gone")
            await ws.close(code=1012, reason="service restart")
        self.routes.clear()

    def message_subscriptions(self) -> list[dict[str, Any]]:
        return [s for s in self.subscriptions if "messageEvents" in s["query"]]


async def test_a_dropped_connection_resumes_with_no_gap_and_no_duplicate(
    page: Any, server_url: str, pool: asyncpg.Pool
) -> None:
    person = make_person()
    graphql = GraphQLClient(server_url)
    session_id = await seed_session(pool, person.user_id, WEB, conversation(("One", "Two")))
    proxy = Proxy()
    await page.route_web_socket("**/graphql", proxy.handle)
    await page.goto(app_url(server_url, person.token, session_id))
    shown = shown_messages(page)
    await expect(shown).to_have_count(2)
    await page.wait_for_timeout(300)
    await send(graphql, person.token, "Before the drop", session_id)
    await expect(shown).to_have_count(4, timeout=LIVE_MS)

    await proxy.drop()
    status = page.get_by_test_id("live-status")
    await expect(status).to_have_text("Reconnecting…")
    during = ["While down 1", "While down 2"]
    for content in during:
        await send(graphql, person.token, content, session_id)
    await page.wait_for_timeout(1_000)
    await expect(shown).to_have_count(4)  # nothing arrives while the socket is down
    proxy.up = True
    await expect(status).to_be_hidden()
    await expect(shown).to_have_count(8)
    await send(graphql, person.token, "After the return", session_id)
    await expect(shown).to_have_count(10, timeout=LIVE_MS)
    await page.wait_for_timeout(500)  # a duplicate would have had time to show

    rows = await message_rows(page)
    expected = ["One", "Two"]
    for n, content in enumerate(["Before the drop", *during, "After the return"], start=2):
        expected += [content, f"[assistant] You said: {content} (message {n} in this session)"]
    assert [r["content"] for r in rows] == expected
    assert len({r["id"] for r in rows}) == len(rows)

    # The resumed subscription started after the newest message the page had: no replay.
    edges = (await graphql.ok(CURSORS, {"sessionId": session_id}, token=person.token))["messages"][
        "edges"
    ]
    before_drop = edges[3]["cursor"]  # the reply to "Before the drop"
    subscribed = proxy.message_subscriptions()
    assert len(subscribed) >= 2
    assert subscribed[0]["variables"]["after"] == edges[1]["cursor"]
    assert subscribed[-1]["variables"]["after"] == before_drop


async def test_the_reply_grows_as_it_streams(
    page: Any, settings: Settings, pool: asyncpg.Pool, resources: Resources
) -> None:
    person = make_person()
    slow = Resources(
        settings=settings, pool=pool, agent=EchoAgent(word_delay=0.2), redis=resources.redis
    )
    session_id = await seed_session(pool, person.user_id, WEB, conversation(("Hi", "Hello")))
    async with running_server(create_app(settings, slow)) as url:
        await page.goto(app_url(url, person.token, session_id))
        shown = shown_messages(page)
        await expect(shown).to_have_count(2)
        await page.wait_for_timeout(300)
        composer = page.get_by_test_id("composer")
        words = "please say these few words back to me slowly"
        await composer.fill(words)
        await composer.press("Enter")

        draft = page.get_by_test_id("reply-draft")
        states: list[str] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if await shown.count() == 4:
                break
            text = await draft.evaluate_all(
                "items => items.map(i => i.querySelector('.message-content').textContent)"
            )
            if text and (not states or states[-1] != text[0]):
                states.append(text[0])
            await asyncio.sleep(0.05)
        await expect(shown).to_have_count(4)
        await expect(draft).to_have_count(0)
        final = f"[assistant] You said: {words} (message 2 in this session)"
        assert (await message_rows(page))[3]["content"] == final
        assert len(states) >= 2, states
        for shorter, longer in itertools.pairwise(states):
            assert longer.startswith(shorter) and len(longer) > len(shorter), states
        assert final.startswith(states[-1])


async def test_day_separators_instead_of_times(
    page: Any, server_url: str, pool: asyncpg.Pool
) -> None:
    person = make_person()
    session_id = await seed_session(
        pool, person.user_id, WEB, conversation(("Long ago", "Indeed"), ("Today", "Yes"))
    )
    await pool.execute(
        """UPDATE chat_message_history SET created_at = now() - interval '3 days'
            WHERE id IN (SELECT id FROM chat_message_history
                          WHERE session_id = $1 ORDER BY id LIMIT 2)""",
        session_id,
    )
    await page.goto(app_url(server_url, person.token, session_id))
    await expect(shown_messages(page)).to_have_count(4)
    separators = page.get_by_test_id("message-list").get_by_test_id("day-separator")
    await expect(separators).to_have_count(2)
    await expect(separators.last).to_have_text("Today")
    kinds = await page.get_by_test_id("message-list").evaluate(
        "list => Array.from(list.children, c => c.dataset.testid)"
    )
    assert kinds == ["day-separator", "message", "message", "day-separator", "message", "message"]
    first = shown_messages(page).first
    assert await first.get_attribute("title")  # the full time on hover
    assert await page.locator(".message-time").count() == 0


async def test_a_telegram_message_appears_live(
    page: Any, settings: Settings, server_url: str, resources: Resources
) -> None:
    """Through the Telegram door: updates handled by the real bot dispatcher (as its webhook
    or polling would feed them) show up in the open app without a reload."""
    from tests.bots.conftest import TelegramUser, harness, link

    person = make_person()
    graphql = GraphQLClient(server_url)
    async with harness(settings, resources) as tg:
        user = TelegramUser()
        await link(tg, graphql, user, person)
        await page.goto(app_url(server_url, person.token))
        await expect(page.get_by_test_id("session-list-status")).to_contain_text("No sessions yet")
        await page.wait_for_timeout(300)

        await tg.send(user, "Hello from **Telegram**")
        item = page.get_by_test_id("session-item").first
        await expect(item).to_have_attribute("data-channel", "telegram", timeout=LIVE_MS)
        await expect(item.get_by_test_id("unread-badge")).to_have_text("1", timeout=LIVE_MS)

        await item.locator("a").click()
        shown = shown_messages(page)
        await expect(shown).to_have_count(2)
        await expect(shown.first.locator("strong")).to_have_text("Telegram")
        await expect(item.get_by_test_id("unread-badge")).to_have_count(0)
        await page.wait_for_timeout(300)

        await tg.send(user, "And once more")
        await expect(shown).to_have_count(4, timeout=LIVE_MS)
        rows = await message_rows(page)
        assert rows[2]["content"] == "And once more"
        assert rows[3]["content"] == tg.last_text_to(user)
        assert len({r["id"] for r in rows}) == 4
        await expect(item.get_by_test_id("unread-badge")).to_have_count(0)


async def test_an_empty_session_catches_up_after_a_drop(
    page: Any, server_url: str, pool: asyncpg.Pool
) -> None:
    """A session with no messages has no cursor to resume from: after a reconnect the app reads
    what came meanwhile, each message once."""
    person = make_person()
    graphql = GraphQLClient(server_url)
    session_id = await seed_session(pool, person.user_id, WEB)
    proxy = Proxy()
    await page.route_web_socket("**/graphql", proxy.handle)
    await page.goto(app_url(server_url, person.token, session_id))
    await expect(page.get_by_test_id("empty-session")).to_be_visible()
    await page.wait_for_timeout(300)

    await proxy.drop()
    await expect(page.get_by_test_id("live-status")).to_have_text("Reconnecting…")
    await send(graphql, person.token, "Sent while down", session_id)
    proxy.up = True
    shown = shown_messages(page)
    await expect(shown).to_have_count(2)
    await send(graphql, person.token, "Sent after", session_id)
    await expect(shown).to_have_count(4, timeout=LIVE_MS)
    await page.wait_for_timeout(500)
    rows = await message_rows(page)
    assert [r["content"] for r in rows] == [
        "Sent while down",
        "[assistant] You said: Sent while down (message 1 in this session)",
        "Sent after",
        "[assistant] You said: Sent after (message 2 in this session)",
    ]
    assert proxy.message_subscriptions()[-1]["variables"]["after"] is not None


async def test_a_session_is_shown_by_its_title(page: Any, server_url: str) -> None:
    """The first message names the session in the list and the header (text, never markup)."""
    person = make_person()
    await page.goto(app_url(server_url, person.token))
    await page.get_by_test_id("composer").fill("Plan <b>a</b> trip to Lisbon")
    await page.get_by_test_id("composer").press("Enter")
    items = page.get_by_test_id("session-list").get_by_test_id("session-item")
    await expect(items).to_have_count(1)
    await expect(items.first).to_contain_text("Plan <b>a</b> trip to Lisbon")
    await expect(page.locator("#conversation-title")).to_have_text("Plan <b>a</b> trip to Lisbon")
