"""Linking a person's Telegram account: one-time codes, the link itself, unlinking."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

import strawberry

from graphql_api.core.errors import Forbidden
from graphql_api.core.tokens import Viewer
from graphql_api.schema.types import Info

from . import links


@strawberry.type(description="A one-time code that links a Telegram account to the viewer.")
class TelegramLinkCode:
    code: str = strawberry.field(description="Send `/start <code>` to the bot. Shown only once.")
    expires_at: datetime
    deep_link: str | None = strawberry.field(
        description="https://t.me/<bot>?start=<code>; null when the bot's username is not set."
    )


@strawberry.type(description="The Telegram account linked to the viewer.")
class TelegramLink:
    telegram_user_id: str = strawberry.field(description="Telegram's numeric user id, as text.")
    telegram_username: str | None
    linked_at: datetime

    @classmethod
    def from_row(cls, link: links.TelegramLink) -> TelegramLink:
        return cls(
            telegram_user_id=str(link.telegram_user_id),
            telegram_username=link.telegram_username,
            linked_at=link.linked_at,
        )


def _person(info: Info) -> Viewer:
    viewer = info.context.require_viewer()
    if viewer.is_service:
        raise Forbidden("Telegram accounts are linked to people, not to the service identity")
    return viewer


def deep_link(bot_username: str | None, code: str) -> str | None:
    if not bot_username:
        return None
    return f"https://t.me/{quote(bot_username.lstrip('@'))}?start={code}"


@strawberry.type
class TelegramQuery:
    @strawberry.field(description="The viewer's linked Telegram account, or null.")
    async def telegram_link(self, info: Info) -> TelegramLink | None:
        viewer = _person(info)
        link = await links.find_link_for_user(info.context.pool, viewer.user_id)
        return TelegramLink.from_row(link) if link else None


@strawberry.type
class TelegramMutation:
    @strawberry.mutation(
        description="A new one-time code to link a Telegram account (valid for minutes)."
    )
    async def create_telegram_link_code(self, info: Info) -> TelegramLinkCode:
        viewer = _person(info)
        settings = info.context.settings
        created = await links.create_link_code(
            info.context.pool, viewer.user_id, ttl_seconds=settings.link_code_ttl_seconds
        )
        return TelegramLinkCode(
            code=created.code,
            expires_at=created.expires_at,
            deep_link=deep_link(settings.telegram_bot_username, created.code),
        )

    @strawberry.mutation(
        description="Unlink the viewer's Telegram account; false if none was linked."
    )
    async def unlink_telegram(self, info: Info) -> bool:
        viewer = _person(info)
        removed = await links.unlink(info.context.pool, user_id=viewer.user_id)
        return removed is not None
