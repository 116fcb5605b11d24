"""Scheduled runs as a channel plug-in: schedules in the schema, an arq client for the API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from graphql_api.core.channels import Channel, SchemaPart

if TYPE_CHECKING:
    from graphql_api.core.runtime import Resources
    from graphql_api.core.settings import Settings

log = logging.getLogger(__name__)

SCHEDULED = "scheduled"
SESSION_ID_PREFIX = "sched:"
STATE_KEY = "scheduler"  # the lifespan state's ArqRedis, used by runScheduleNow


def _schema() -> SchemaPart:
    from .schema import ScheduleMutation, ScheduleQuery

    return SchemaPart(query=ScheduleQuery, mutation=ScheduleMutation)


@contextlib.asynccontextmanager
async def _lifespan(settings: Settings, resources: Resources) -> AsyncIterator[Mapping[str, Any]]:
    """An arq client on the API's Redis connection pool (closed with it), when there is Redis."""
    if resources.redis is None:
        yield {}
        return
    from arq.connections import ArqRedis

    from graphql_api.core.deliveries import WAKE

    from . import arq_queue

    arq = ArqRedis(connection_pool=resources.redis.connection_pool)
    queue = settings.worker_queue

    async def wake(delivery_id: int) -> None:
        """Best effort: a delivery Redis did not take is sent by the worker's next sweep."""
        try:
            async with asyncio.timeout(arq_queue.ENQUEUE_TIMEOUT):
                await arq_queue.enqueue_delivery(arq, queue, delivery_id)
        except arq_queue.REDIS_DOWN as exc:
            log.warning("could not queue delivery %s (%r); the sweep sends it", delivery_id, exc)

    yield {STATE_KEY: arq, WAKE: wake}


def scheduled() -> Channel:
    return Channel(
        name=SCHEDULED,
        service_id_prefix=SESSION_ID_PREFIX,
        schema=_schema,
        lifespan=_lifespan,
        description="prompts the arq worker runs on a cron schedule",
    )
