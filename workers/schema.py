"""Schedules: a person's cron prompts, their runs (sessions in the registry), and runScheduleNow."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from enum import Enum

import asyncpg
import strawberry
from arq.connections import ArqRedis
from strawberry import relay
from strawberry.dataloader import DataLoader

from graphql_api.core.errors import BadInput, DomainError, NotFound, ServiceUnavailable
from graphql_api.core.models import SessionRow, parse_uuid
from graphql_api.core.pagination import Keyset, page_size, window
from graphql_api.schema.context import paged_loader
from graphql_api.schema.types import (
    Channel,
    ChatSession,
    ChatSessionConnection,
    Info,
    page_info,
    resolve_owned_nodes,
)

from . import arq_queue, runs, schedules
from .channel import STATE_KEY
from .schedules import ScheduleKey, ScheduleRow, ScheduleSpec, SessionMode, Slot

RunPageKey = tuple[uuid.UUID, datetime | None, int]  # (schedule id, before slot, rows to fetch)
RunPage = list[tuple[datetime, SessionRow]]


def run_pages(pool: asyncpg.Pool) -> DataLoader[RunPageKey, RunPage]:
    """Pages of many schedules' runs in one query per page size."""
    return paged_loader(pool, runs.run_session_pages)


@strawberry.enum
class ScheduleSessionMode(Enum):
    NEW_PER_RUN = "new_per_run"
    APPEND = "append"


@strawberry.enum
class ScheduleOutcome(Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@strawberry.type(description="A prompt the agent runs on a cron schedule; each run is a session.")
class Schedule(relay.Node):
    id: relay.NodeID[str]
    name: str
    prompt: str
    cron: str = strawberry.field(description="Five-field cron expression, or @daily and the like.")
    timezone: str = strawberry.field(description="IANA time zone the cron expression is read in.")
    agent_name: str
    enabled: bool
    next_run_at: datetime | None = strawberry.field(description="Null while disabled.")
    last_run_at: datetime | None = strawberry.field(
        description="The slot of the most recent finished run."
    )
    last_outcome: ScheduleOutcome | None
    last_error: str | None = strawberry.field(description="Why the most recent run failed.")
    created_at: datetime
    updated_at: datetime
    session_mode: ScheduleSessionMode = strawberry.field(
        description="NEW_PER_RUN: each run is a session; APPEND: every run adds to one session."
    )
    deliver_to: list[Channel] = strawberry.field(
        description="Channels each run's reply is also sent to (the person's linked account)."
    )

    @classmethod
    def from_row(cls, row: ScheduleRow) -> Schedule:
        return cls(
            id=str(row.id),
            name=row.name,
            prompt=row.prompt,
            cron=row.cron,
            timezone=row.timezone,
            agent_name=row.agent_name,
            enabled=row.enabled,
            next_run_at=row.next_run_at,
            last_run_at=row.last_run_at,
            last_outcome=ScheduleOutcome(row.last_outcome.value) if row.last_outcome else None,
            last_error=row.last_error,
            created_at=row.created_at,
            updated_at=row.updated_at,
            session_mode=ScheduleSessionMode(row.session_mode.value),
            deliver_to=[Channel(name) for name in row.deliver_to],
        )

    @strawberry.field(description="The sessions this schedule's runs created, newest run first.")
    async def runs(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> ChatSessionConnection:
        limit = page_size(first, "first")
        scope = (self.id,)
        before_slot = RUNS.read(after, scope, "after")[0] if after is not None else None
        rows, more = window(
            await info.context.loader(run_pages).load((uuid.UUID(self.id), before_slot, limit + 1)),
            limit,
        )
        edges = [
            relay.Edge(cursor=RUNS.cursor(scope, slot), node=ChatSession.from_row(row))
            for slot, row in rows
        ]
        return ChatSessionConnection(
            edges=edges, page_info=page_info(edges, has_next=more, has_previous=after is not None)
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Schedule | None]:
        return await resolve_owned_nodes(
            info, node_ids, schedules.get_schedules_by_ids, cls.from_row
        )


@strawberry.type
class ScheduleConnection(relay.Connection[Schedule]):
    """The viewer's schedules, newest first."""


@strawberry.input
class CreateScheduleInput:
    name: str
    prompt: str = strawberry.field(description="Sent to the agent as the person's message.")
    cron: str = strawberry.field(description="Five-field cron expression, e.g. '0 9 * * MON-FRI'.")
    timezone: str = strawberry.field(default="UTC", description="IANA time zone.")
    agent_name: str | None = strawberry.field(default=None, description="Default: the server's.")
    enabled: bool = True
    session_mode: ScheduleSessionMode = ScheduleSessionMode.NEW_PER_RUN
    deliver_to: list[Channel] = strawberry.field(
        default_factory=list, description="E.g. [TELEGRAM]: each reply also goes there."
    )


@strawberry.input(description="The fields to change; absent or null ones stay as they are.")
class UpdateScheduleInput:
    id: relay.GlobalID
    name: str | None = None
    prompt: str | None = None
    cron: str | None = None
    timezone: str | None = None
    agent_name: str | None = None
    enabled: bool | None = None
    session_mode: ScheduleSessionMode | None = None
    deliver_to: list[Channel] | None = None


def _spec(info: Info, input: CreateScheduleInput | UpdateScheduleInput) -> ScheduleSpec:
    return ScheduleSpec(
        name=input.name,
        prompt=input.prompt,
        cron=input.cron,
        timezone=input.timezone,
        agent_name=input.agent_name,
        enabled=input.enabled,
        session_mode=SessionMode(input.session_mode.value) if input.session_mode else None,
        deliver_to=_deliver_to(info, input.deliver_to),
    )


def _deliver_to(info: Info, channels: list[Channel] | None) -> tuple[str, ...] | None:
    """Channel names a reply can be sent to on a person's behalf; others are refused."""
    if channels is None:
        return None
    able = {c.name for c in info.context.channels if c.delivery and c.delivery().person_target}
    for channel in channels:
        if channel.value not in able:
            raise BadInput(
                f"{channel.name} cannot be delivered to; deliverTo takes "
                + (", ".join(sorted(n.upper() for n in able)) or "no channel here"),
                field="deliverTo",
            )
    return tuple(c.value for c in channels)


@strawberry.type
class DeleteSchedulePayload:
    deleted_id: strawberry.ID


@strawberry.type
class RunScheduleNowPayload:
    schedule: Schedule
    slot: datetime = strawberry.field(description="The run's slot: now, to the second.")
    session_id: str = strawberry.field(description="The session the run creates.")
    queued: bool = strawberry.field(
        description="False if a run of this same second already ran: it is not run twice."
    )


@strawberry.type
class ScheduleQuery:
    @strawberry.field(description="The viewer's schedules, newest first.")
    async def schedules(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> ScheduleConnection:
        viewer = info.context.require_viewer()
        limit = page_size(first, "first")
        scope = (str(viewer.user_id),)
        key = ScheduleKey(*SCHEDULES.read(after, scope, "after")) if after is not None else None
        rows, more = window(
            await schedules.list_schedules(
                info.context.pool, viewer.user_id, limit=limit + 1, after=key
            ),
            limit,
        )
        edges = [
            relay.Edge(
                cursor=SCHEDULES.cursor(scope, r.created_at, r.id), node=Schedule.from_row(r)
            )
            for r in rows
        ]
        return ScheduleConnection(
            edges=edges, page_info=page_info(edges, has_next=more, has_previous=after is not None)
        )

    @strawberry.field(description="One of the viewer's schedules; null if there is none.")
    async def schedule(self, info: Info, id: relay.GlobalID) -> Schedule | None:
        viewer = info.context.require_viewer()
        schedule_id = _schedule_uuid(id)
        row = (
            await schedules.get_schedule(info.context.pool, viewer.user_id, schedule_id)
            if schedule_id
            else None
        )
        return Schedule.from_row(row) if row else None


@strawberry.type
class ScheduleMutation:
    @strawberry.mutation(description="Create a schedule; it runs from its next cron slot on.")
    async def create_schedule(self, info: Info, input: CreateScheduleInput) -> Schedule:
        viewer = info.context.require_viewer()
        row = await schedules.create_schedule(
            info.context.pool,
            viewer.user_id,
            _spec(info, input),
            default_agent_name=info.context.settings.default_agent_name,
        )
        return Schedule.from_row(row)

    @strawberry.mutation(description="Change a schedule, including enabling or disabling it.")
    async def update_schedule(self, info: Info, input: UpdateScheduleInput) -> Schedule:
        viewer = info.context.require_viewer()
        row = await schedules.update_schedule(
            info.context.pool,
            viewer.user_id,
            _require_schedule_uuid(input.id),
            _spec(info, input),
        )
        if row is None:
            raise NotFound("no such schedule")
        return Schedule.from_row(row)

    @strawberry.mutation(description="Delete a schedule. The sessions its runs created remain.")
    async def delete_schedule(self, info: Info, id: relay.GlobalID) -> DeleteSchedulePayload:
        viewer = info.context.require_viewer()
        if not await schedules.delete_schedule(
            info.context.pool, viewer.user_id, _require_schedule_uuid(id)
        ):
            raise NotFound("no such schedule")
        return DeleteSchedulePayload(deleted_id=strawberry.ID(str(id)))

    @strawberry.mutation(
        description="Queue one run of the schedule now, enabled or not. Refused (BAD_USER_INPUT)"
        " while the schedule has a run queued or running, and with SERVICE_UNAVAILABLE (nothing"
        " queued; send it again) while the scheduler's Redis is unreachable."
    )
    async def run_schedule_now(self, info: Info, id: relay.GlobalID) -> RunScheduleNowPayload:
        viewer = info.context.require_viewer()
        schedule_id = _require_schedule_uuid(id)
        arq, queue_name = _arq(info), info.context.settings.worker_queue

        async def enqueue(slot: Slot) -> None:
            try:
                await arq_queue.enqueue_run_within(arq, queue_name, slot)
            except arq_queue.QueueUnavailable:
                # Raised after the run row committed, with no connection held meanwhile;
                # queue_run_now withdraws the row before this reaches the client, so nothing is
                # stored or queued. /healthz reports the outage ("redis": "unreachable").
                raise ServiceUnavailable(
                    "the scheduler is unavailable, try again in a moment"
                ) from None

        run = await runs.queue_run_now(info.context.pool, viewer.user_id, schedule_id, enqueue)
        if run is None:
            raise NotFound("no such schedule")
        return RunScheduleNowPayload(
            schedule=Schedule.from_row(run.schedule),
            slot=run.slot.at,
            session_id=run.schedule.session_id_of(run.slot.at),  # an APPEND one's own
            queued=run.queued,
        )


def _arq(info: Info) -> ArqRedis:
    """The arq client this channel's lifespan opened on the API's Redis (workers/channel.py)."""
    client: ArqRedis | None = getattr(info.context.state, STATE_KEY, None)
    if client is None:
        raise DomainError("scheduled runs are not available: the server has no REDIS_URL")
    return client


# --- ids and cursors ------------------------------------------------------------------------


def _schedule_uuid(global_id: relay.GlobalID) -> uuid.UUID | None:
    """The schedule's uuid; None for another type's id (it names no schedule)."""
    if global_id.type_name != Schedule.__name__:
        return None
    return parse_uuid(global_id.node_id)


def _require_schedule_uuid(global_id: relay.GlobalID) -> uuid.UUID:
    schedule_id = _schedule_uuid(global_id)
    if schedule_id is None:
        raise NotFound("no such schedule")
    return schedule_id


# The viewer's schedules, newest first; a schedule's runs, newest slot first.
SCHEDULES = Keyset("c1", "created_at desc, id desc", (datetime, uuid.UUID))
RUNS = Keyset("r1", "slot desc", (datetime,))
