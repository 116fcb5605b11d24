"""Telegram as a channel plug-in. Importing this module imports no aiogram: the webhook's parts
are imported only when the webhook is on."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from graphql_api.core.channels import Channel, DeliveryPart, SchemaPart, WorkerPart

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from graphql_api.core.runtime import Resources
    from graphql_api.core.settings import Settings

TELEGRAM = "telegram"
SESSION_ID_PREFIX = "tg-"


def _schema() -> SchemaPart:
    from .schema import TelegramMutation, TelegramQuery

    return SchemaPart(query=TelegramQuery, mutation=TelegramMutation)


def _webhook_on(settings: Settings) -> bool:
    return settings.telegram_webhook


def _routes(settings: Settings) -> Sequence[BaseRoute]:
    from .webhook import telegram_routes

    return telegram_routes(settings)  # POST /telegram/webhook


@contextlib.asynccontextmanager
async def _lifespan(settings: Settings, resources: Resources) -> AsyncIterator[Mapping[str, Any]]:
    from .webhook import telegram_lifespan

    async with telegram_lifespan(settings, resources) as state:
        yield state


def _check(settings: Settings) -> None:
    if not settings.telegram_webhook:  # nothing to check, and aiogram stays unloaded
        return
    from .webhook import webhook_secret

    webhook_secret(settings)


def _delivery() -> DeliveryPart:
    from .outbound import telegram_delivery

    return telegram_delivery()


def _worker() -> WorkerPart:
    from .turns import telegram_worker

    return telegram_worker()


def telegram() -> Channel:
    return Channel(
        name=TELEGRAM,
        service_id_prefix=SESSION_ID_PREFIX,
        schema=_schema,
        enabled=_webhook_on,
        routes=_routes,
        lifespan=_lifespan,
        check_settings=_check,
        delivery=_delivery,
        worker=_worker,
        description="a Telegram bot: private chats, linked accounts, polling or a webhook",
    )
