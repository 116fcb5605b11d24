"""The channel plug-in interface: what a channel (Telegram, scheduled runs, the web) declares.

A channel is one object. The app mounts its routes and enters its lifespan when the channel is
configured; the schema merges its Query and Mutation parts and its types always (the GraphQL
contract does not depend on a deployment's settings). Its `name` is what `chat_sessions.channel`
stores and, upper-cased, its value in the GraphQL `Channel` enum. Channels are registered as
entry points in the group `unified_sessions.channels` (see graphql_api/channels.py and
docs/channels.md); the entry point's name is the channel's name.

This module imports nothing heavy: a channel module may import it at no cost, and the objects
below build nothing until the app asks.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from .db import Executor
    from .models import SessionRow
    from .runtime import Resources
    from .settings import Settings

WEB = "web"  # the API's own channel: sessions people start in the web app

Lifespan = Callable[["Settings", "Resources"], AbstractAsyncContextManager[Mapping[str, Any]]]


@contextlib.asynccontextmanager
async def no_state(settings: Settings, resources: Resources) -> AsyncIterator[Mapping[str, Any]]:
    yield {}


def always(settings: Settings) -> bool:
    return True


def no_routes(settings: Settings) -> Sequence[BaseRoute]:
    return ()


def no_checks(settings: Settings) -> None:
    return None


@dataclass(frozen=True)
class SchemaPart:
    """A channel's share of the GraphQL schema: Strawberry types merged into Query/Mutation."""

    query: type | None = None
    mutation: type | None = None
    subscription: type | None = None
    types: tuple[type, ...] = ()


Send = Callable[[str, str], Awaitable[None]]  # (target, text)


@dataclass(frozen=True)
class DeliveryPart:
    """How a channel sends a reply out (the worker's outbox, graphql_api/core/deliveries.py).

    - `target(db, session)`: where the session's replies go (a chat id), or None when there is
      nowhere (`no_target` says why: the delivery is failed with that reason at once);
    - `person_target(db, user_id)`: the person's own address there (a schedule's deliverTo);
    - `sender(settings)`: an async context manager giving `send(target, text)`, opened once per
      worker; `send` raises deliveries.RetryLater to be tried after the channel's wait,
      deliveries.Undeliverable when no retry can help, anything else to be retried with backoff.
    """

    target: Callable[[Executor, SessionRow], Awaitable[str | None]]
    sender: Callable[[Settings], AbstractAsyncContextManager[Send]]
    no_target: str = "there is nowhere to deliver it"
    # Where a person's messages from elsewhere go in this channel (a schedule's deliverTo).
    person_target: Callable[[Executor, uuid.UUID], Awaitable[str | None]] | None = None


@dataclass(frozen=True)
class Job:
    """A function the worker runs for a channel, `function(ctx, *args)`: queued by `name`, and
    also every `every` seconds when set (a sweep that finds work a lost enqueue left behind).
    It must be idempotent (it may run more than once) and finish within `timeout(settings)`."""

    name: str
    function: Callable[..., Awaitable[Any]]
    timeout: Callable[[Settings], float]
    every: int | None = None


WorkerLifespan = Callable[["Settings"], AbstractAsyncContextManager[Mapping[str, Any]]]


@contextlib.asynccontextmanager
async def no_worker_state(settings: Settings) -> AsyncIterator[Mapping[str, Any]]:
    yield {}


@dataclass(frozen=True)
class WorkerPart:
    """What a channel runs in the worker: its jobs, and a lifespan entered at the worker's start
    whose state joins every job's ctx (a Bot API client)."""

    jobs: tuple[Job, ...] = ()
    lifespan: WorkerLifespan = no_worker_state


@dataclass(frozen=True)
class Channel:
    """One channel. Everything but `name` has a do-nothing default.

    - `service_id_prefix`: session ids the channel mints (`tg-`, `sched:`); a person may not
      create a session under one, since the channel's own upsert would then be refused.
    - `schema`: called once per schema build; imports the channel's schema module lazily.
    - `enabled(settings)`: whether this deployment runs the channel's routes and lifespan.
    - `routes(settings)`: Starlette routes mounted on the API (a webhook, a callback).
    - `lifespan(settings, resources)`: an async context manager entered at API startup, after
      the shared resources are open; what it yields is merged into the app's lifespan state
      (`request.state`, `info.context.state`) under the keys it chooses.
    - `check_settings(settings)`: raises SettingsError for a misconfiguration, so `serve`
      refuses to start with one clear line.
    - `delivery()`: how replies written through another door reach this channel's sessions
      (None: they are only stored).
    - `worker()`: the channel's jobs in the worker (Telegram's queued turns).
    """

    name: str
    service_id_prefix: str | None = None
    schema: Callable[[], SchemaPart] = SchemaPart
    enabled: Callable[[Settings], bool] = always
    routes: Callable[[Settings], Sequence[BaseRoute]] = no_routes
    lifespan: Lifespan = no_state
    check_settings: Callable[[Settings], None] = no_checks
    delivery: Callable[[], DeliveryPart] | None = None
    worker: Callable[[], WorkerPart] = WorkerPart
    description: str = field(default="", compare=False)
