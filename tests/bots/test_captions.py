"""A photo or file with a caption is a turn: the caption is the text, after a media marker."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from bots import texts
from graphql_api.core.settings import Settings
from tests.conftest import GraphQLClient, Person

from .conftest import BotHarness, TelegramUser, history, link, telegram_sessions


def photo(caption: str | None = None) -> dict[str, Any]:
    sizes = [
        {"file_id": f"photo-{w}", "file_unique_id": f"p{w}", "width": w, "height": w}
        for w in (90, 320, 1280)
    ]
    return {"photo": sizes} | ({"caption": caption} if caption is not None else {})


def document(file_name: str | None, caption: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "file_id": "doc-1",
        "file_unique_id": "d1",
        "mime_type": "application/pdf",
    }
    if file_name is not None:
        doc["file_name"] = file_name
    return {"document": doc, "caption": caption}


def animation(caption: str) -> dict[str, Any]:
    """A GIF: Telegram sets both `animation` and `document` on it."""
    media = {
        "file_id": "gif-1",
        "file_unique_id": "g1",
        "width": 200,
        "height": 200,
        "duration": 2,
        "file_name": "funny.mp4",
    }
    return {"animation": media, "document": media, "caption": caption}


@pytest.mark.parametrize(
    ("media", "stored"),
    [
        (photo("what is in this picture?"), "[photo] what is in this picture?"),
        (document("report.pdf", "summarise this"), "[file: report.pdf] summarise this"),
        (document(None, "no name"), "[file] no name"),
        (animation("ha"), "[animation] ha"),
    ],
    ids=["photo", "document", "document-without-name", "animation"],
)
async def test_a_captioned_photo_or_file_is_a_turn_with_a_media_marker(
    tg: BotHarness,
    graphql: GraphQLClient,
    person: Person,
    pool: asyncpg.Pool,
    settings: Settings,
    media: dict[str, Any],
    stored: str,
) -> None:
    user = TelegramUser()
    await link(tg, graphql, user, person)

    await tg.send(user, None, extra=media)

    [session] = await telegram_sessions(pool, person.user_id)
    reply = f"[{settings.default_agent_name}] You said: {stored} (message 1 in this session)"
    assert await history(pool, session["session_id"]) == [("human", stored), ("ai", reply)]
    assert tg.last_text_to(user) == reply


async def test_a_photo_without_a_caption_keeps_the_text_only_answer_and_stores_nothing(
    tg: BotHarness, graphql: GraphQLClient, person: Person, pool: asyncpg.Pool
) -> None:
    user = TelegramUser()
    await link(tg, graphql, user, person)

    await tg.send(user, None, extra=photo())

    assert tg.last_text_to(user) == texts.TEXT_ONLY
    assert await telegram_sessions(pool, person.user_id) == []


async def test_an_unlinked_senders_captioned_photo_gets_the_linking_instructions(
    tg: BotHarness, pool: asyncpg.Pool
) -> None:
    user = TelegramUser()

    await tg.send(user, None, extra=photo("hello?"))

    assert tg.last_text_to(user) == texts.HOW_TO_LINK
    # Telegram session ids start with the chat id: nothing was stored for this chat.
    sessions_of_chat = "SELECT count(*) FROM chat_sessions WHERE session_id LIKE $1"
    assert await pool.fetchval(sessions_of_chat, f"tg-{user.chat_id}-%") == 0
