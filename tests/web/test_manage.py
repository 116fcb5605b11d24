"""Keeping and forgetting sessions from the web app: rename, archive and unarchive, export
(JSON, Markdown, everything as JSON lines) and delete after a confirmation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bots.channel import TELEGRAM
from graphql_api.core.channels import WEB
from tests.conftest import GraphQLClient, make_person

from .helpers import app_url, conversation, expect, open_session_id, seed_session, session_item

pytestmark = pytest.mark.browser


async def test_rename_shows_in_the_list_and_the_header(
    page: Any, server_url: str, pool: asyncpg.Pool
) -> None:
    person = make_person()
    session_id = await seed_session(
        pool, person.user_id, WEB, conversation(("Where should we go in May?", "Lisbon or Porto."))
    )
    await page.goto(app_url(server_url, person.token, session_id))
    title = page.get_by_test_id("conversation-title")
    item = session_item(page, session_id)
    # Seeded without a title (the channels' turns set one from the first message).
    await expect(title).to_have_text("Web session · assistant")
    await expect(item.locator(".session-agent")).to_have_text("assistant")

    # Escape leaves the name as it was.
    await page.get_by_test_id("rename-session").click()
    field = page.get_by_test_id("rename-input")
    await expect(field).to_be_focused()
    await expect(field).to_have_value("")
    await field.fill("Not this")
    await field.press("Escape")
    await expect(page.get_by_test_id("rename-form")).to_be_hidden()
    await expect(page.get_by_test_id("rename-session")).to_be_focused()
    await expect(title).to_have_text("Web session · assistant")

    await page.get_by_test_id("rename-session").click()
    await field.fill("  May trip  ")
    await field.press("Enter")
    await expect(page.get_by_test_id("rename-form")).to_be_hidden()
    await expect(title).to_have_text("May trip")
    await expect(item.locator(".session-agent")).to_have_text("May trip")
    # A renamed session opens the form with its name.
    await page.get_by_test_id("rename-session").click()
    await expect(field).to_have_value("May trip")
    await page.get_by_test_id("rename-cancel").click()

    await page.reload()  # kept by the server
    await expect(title).to_have_text("May trip")
    await expect(item.locator(".session-agent")).to_have_text("May trip")


async def test_archive_moves_a_session_to_the_archived_list_and_back(
    page: Any, server_url: str, pool: asyncpg.Pool
) -> None:
    person = make_person()
    kept = await seed_session(pool, person.user_id, WEB, conversation(("Keep me", "Kept.")))
    filed = await seed_session(
        pool, person.user_id, TELEGRAM, conversation(("File me away", "Filed."))
    )
    await page.goto(app_url(server_url, person.token, filed))
    items = page.get_by_test_id("session-item")
    await expect(items).to_have_count(2)

    await page.get_by_test_id("archive-session").click()
    await expect(session_item(page, filed)).to_have_count(0)
    await expect(items).to_have_count(1)
    await expect(session_item(page, kept)).to_be_visible()
    await expect(page.get_by_test_id("archive-session")).to_be_hidden()
    unarchive = page.get_by_test_id("unarchive-session")
    await expect(unarchive).to_be_focused()  # the keyboard stays on the control
    await expect(page.locator("#conversation-meta")).to_contain_text("archived")
    # Still readable while archived.
    await expect(page.get_by_test_id("message-list").get_by_test_id("message")).to_have_count(2)

    toggle = page.get_by_test_id("show-archived")
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-pressed", "true")
    await expect(items).to_have_count(1)
    await expect(session_item(page, filed)).to_have_attribute("data-channel", "telegram")

    await page.reload()  # archived on the server, not only on the page
    await expect(items).to_have_count(1)
    await expect(session_item(page, kept)).to_be_visible()  # the default list again
    await expect(page.get_by_test_id("unarchive-session")).to_be_visible()
    await page.get_by_test_id("show-archived").click()
    await expect(session_item(page, filed)).to_be_visible()

    await page.get_by_test_id("unarchive-session").click()
    await expect(session_item(page, filed)).to_have_count(0)  # no longer archived
    await expect(page.get_by_test_id("session-list-status")).to_have_text("No archived sessions.")
    await expect(page.get_by_test_id("archive-session")).to_be_visible()
    await page.get_by_test_id("show-archived").click()
    await expect(page.get_by_test_id("show-archived")).to_have_attribute("aria-pressed", "false")
    await expect(items).to_have_count(2)
    await expect(session_item(page, filed)).to_be_visible()


async def download(page: Any, test_id: str) -> tuple[str, str]:
    """Click a download button; the file's suggested name and its text."""
    async with page.expect_download() as started:
        await page.get_by_test_id(test_id).click()
    file = await started.value
    assert await file.failure() is None
    return file.suggested_filename, Path(await file.path()).read_text(encoding="utf-8")


async def test_export_buttons_download_the_messages(
    page: Any, server_url: str, pool: asyncpg.Pool
) -> None:
    person = make_person()
    first = await seed_session(
        pool, person.user_id, WEB, conversation(("Export this please", "Here it is: **bold**"))
    )
    second = await seed_session(
        pool, person.user_id, TELEGRAM, conversation(("And this one", "Also exported."))
    )
    other = make_person()  # someone else's messages never come along
    await seed_session(pool, other.user_id, WEB, conversation(("Not yours", "Private.")))
    await page.goto(app_url(server_url, person.token, first))
    await expect(page.get_by_test_id("message-list").get_by_test_id("message")).to_have_count(2)

    name, text = await download(page, "export-json")
    assert name == f"{first}.json"
    body = json.loads(text)
    assert body["session"]["sessionId"] == first
    assert [(m["type"], m["data"]["content"]) for m in body["messages"]] == [
        ("human", "Export this please"),
        ("ai", "Here it is: **bold**"),
    ]

    name, text = await download(page, "export-md")
    assert name == f"{first}.md"
    assert text.index("Export this please") < text.index("Here it is: **bold**")

    name, text = await download(page, "export-all")
    assert name.endswith(".jsonl")
    lines = [json.loads(line) for line in text.splitlines()]
    contents = {(line["sessionId"], line["message"]["data"]["content"]) for line in lines}
    assert contents == {
        (first, "Export this please"),
        (first, "Here it is: **bold**"),
        (second, "And this one"),
        (second, "Also exported."),
    }
    await expect(page.get_by_test_id("export-all-status")).to_be_empty()
    await expect(page.get_by_test_id("notice")).to_be_hidden()


SESSION_QUERY = "query($s: String!) { session(sessionId: $s) { sessionId } }"


async def test_delete_asks_first_and_cancel_keeps_the_session(
    page: Any, server_url: str, pool: asyncpg.Pool, graphql: GraphQLClient, artifacts: Path
) -> None:
    person = make_person()
    kept = await seed_session(pool, person.user_id, WEB, conversation(("Stay", "Staying.")))
    doomed = await seed_session(
        pool, person.user_id, WEB, conversation(("Delete me later", "Noted."))
    )
    await page.goto(app_url(server_url, person.token, doomed))
    items = page.get_by_test_id("session-item")
    await expect(items).to_have_count(2)

    dialog = page.get_by_test_id("delete-dialog")
    await page.get_by_test_id("delete-session").click()
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text(doomed)  # untitled: named by its id
    await expect(page.get_by_test_id("cancel-delete")).to_be_focused()  # the safe choice
    await page.screenshot(path=str(artifacts / "web-delete-confirm.png"))
    await page.get_by_test_id("cancel-delete").click()
    await expect(dialog).to_be_hidden()
    await expect(items).to_have_count(2)
    # Escape cancels too.
    await page.get_by_test_id("delete-session").click()
    await expect(dialog).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    assert (await graphql.ok(SESSION_QUERY, {"s": doomed}, token=person.token))["session"]

    await page.get_by_test_id("delete-session").click()
    await page.get_by_test_id("confirm-delete").click()
    await expect(dialog).to_be_hidden()
    await expect(session_item(page, doomed)).to_have_count(0)
    await expect(items).to_have_count(1)
    assert open_session_id(page.url) is None  # the panel left the deleted session
    await expect(page.get_by_test_id("conversation-title")).to_have_text("New session")
    assert (await graphql.ok(SESSION_QUERY, {"s": doomed}, token=person.token))["session"] is None

    await page.reload()
    await expect(items).to_have_count(1)
    await expect(session_item(page, kept)).to_be_visible()


RENAME = "mutation($i: RenameSessionInput!) { renameSession(input: $i) { sessionId } }"
ARCHIVE = "mutation($i: ArchiveSessionInput!) { archiveSession(input: $i) { sessionId } }"
DELETE = "mutation($i: DeleteSessionInput!) { deleteSession(input: $i) { deletedSessionId } }"


async def test_changes_made_elsewhere_show_live(
    page: Any, server_url: str, pool: asyncpg.Pool, graphql: GraphQLClient
) -> None:
    """Another tab or client renames, archives or deletes: the list and the panel follow."""
    person = make_person()
    archived = await seed_session(pool, person.user_id, WEB, conversation(("File", "Filed.")))
    opened = await seed_session(pool, person.user_id, WEB, conversation(("Open", "Opened.")))
    await page.goto(app_url(server_url, person.token, opened))
    items = page.get_by_test_id("session-item")
    await expect(items).to_have_count(2)
    await page.wait_for_timeout(300)  # the subscriptions are sent

    variables = {"i": {"sessionId": opened, "title": "Named elsewhere"}}
    await graphql.ok(RENAME, variables, token=person.token)
    await expect(page.get_by_test_id("conversation-title")).to_have_text("Named elsewhere")
    await expect(session_item(page, opened).locator(".session-agent")).to_have_text(
        "Named elsewhere"
    )

    await graphql.ok(ARCHIVE, {"i": {"sessionId": archived}}, token=person.token)
    await expect(session_item(page, archived)).to_have_count(0)

    await graphql.ok(DELETE, {"i": {"sessionId": opened}}, token=person.token)
    await expect(items).to_have_count(0)
    await expect(page.get_by_test_id("conversation-title")).to_have_text("New session")
    assert open_session_id(page.url) is None


async def test_a_failed_delete_says_so_in_the_dialog(
    page: Any, server_url: str, pool: asyncpg.Pool
) -> None:
    person = make_person()
    session_id = await seed_session(pool, person.user_id, WEB, conversation(("Keep", "Kept.")))

    async def refuse_delete(route: Any) -> None:
        if "deleteSession" not in (route.request.post_data or ""):
            await route.continue_()
            return
        error = {"message": "the database is busy", "extensions": {"code": "SERVICE_UNAVAILABLE"}}
        await route.fulfill(json={"data": None, "errors": [error]})

    await page.route("**/graphql", refuse_delete)
    await page.goto(app_url(server_url, person.token, session_id))
    await page.get_by_test_id("delete-session").click()
    await page.get_by_test_id("confirm-delete").click()
    problem = page.get_by_test_id("delete-error")
    await expect(problem).to_have_text("Could not delete the session: the database is busy")
    await expect(page.get_by_test_id("delete-dialog")).to_be_visible()
    await expect(page.get_by_test_id("confirm-delete")).to_be_enabled()  # try again, or cancel
    await page.get_by_test_id("cancel-delete").click()
    await expect(session_item(page, session_id)).to_be_visible()
    assert open_session_id(page.url) == session_id
