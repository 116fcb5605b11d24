"""Schedules: a person's cron prompts, their validation, and a slot's identity (Slot). Pure
schedule data: no queue here. Cron arithmetic is cron.py; claiming due slots and the runs
themselves are in runs.py; queueing a slot on arq is arq_queue.py."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from typing import Any
from zoneinfo import available_timezones

import asyncpg
from croniter import croniter

from graphql_api.core import messages, sessions
from graphql_api.core.db import Executor, lock_until_commit
from graphql_api.core.errors import BadInput

from .channel import SESSION_ID_PREFIX
from .cron import check_cron_syntax, next_run_after

MAX_NAME = 200
MAX_SCHEDULES_PER_PERSON = 50  # a cost cap: every schedule may run an agent turn every minute


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class SessionMode(StrEnum):
    NEW_PER_RUN = "new_per_run"  # each run is a session of its own
    APPEND = "append"  # every run appends to one ongoing session of the schedule


MAX_DELIVER_TO = 5


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    prompt: str
    cron: str
    timezone: str
    agent_name: str
    enabled: bool
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_outcome: Outcome | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    session_mode: SessionMode = SessionMode.NEW_PER_RUN
    deliver_to: tuple[str, ...] = ()  # channel names each run's reply is also sent to
    append_generation: int = 0  # APPEND: bumped when the person deletes the ongoing session

    @classmethod
    def from_record(cls, record: Any) -> ScheduleRow:
        outcome = record["last_outcome"]
        converted = {"last_outcome", "session_mode", "deliver_to"}
        return cls(
            **{name: record[name] for name in _FIELDS if name not in converted},
            last_outcome=Outcome(outcome) if outcome else None,
            session_mode=SessionMode(record["session_mode"]),
            deliver_to=tuple(record["deliver_to"]),
        )

    def session_id_of(self, slot: datetime) -> str:
        """The session a run of this schedule at `slot` writes to."""
        return run_session_id(Slot(self.id, slot), self.session_mode, self.append_generation)


_FIELDS = (
    "id",
    "user_id",
    "name",
    "prompt",
    "cron",
    "timezone",
    "agent_name",
    "enabled",
    "next_run_at",
    "last_run_at",
    "last_outcome",
    "last_error",
    "created_at",
    "updated_at",
    "session_mode",
    "deliver_to",
    "append_generation",
)
SCHEDULE_COLUMNS = ", ".join(_FIELDS)


# --- validation ----------------------------------------------------------------------------


def validate_cron(expression: str) -> str:
    """A standard five-field cron expression (or @daily and friends): see cron.py."""
    _reject_nul(expression, "cron")
    expression = check_cron_syntax(expression)
    if not croniter.is_valid(expression):  # a backstop: the syntax check is the stricter one
        raise BadInput(
            "cron must be a five-field cron expression such as '0 9 * * MON-FRI'", field="cron"
        )
    return expression


# Names in the system's time zone database that are not places: the server's own zone, the
# template for POSIX TZ strings, and tzdata's placeholder for machines with no zone set.
_NOT_TIME_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@cache
def _known_timezones() -> frozenset[str]:
    return (frozenset(available_timezones()) - _NOT_TIME_ZONES) | {"UTC"}


def validate_timezone(name: str) -> str:
    _reject_nul(name, "timezone")
    name = name.strip()
    if name not in _known_timezones():
        raise BadInput(
            "timezone must be an IANA time zone such as 'Europe/Berlin'", field="timezone"
        )
    return name


def _reject_nul(value: str, field: str) -> None:
    """PostgreSQL text cannot hold NUL: say so instead of failing in the database."""
    if "\x00" in value:
        raise BadInput(f"{field} must not contain NUL characters", field=field)


def _validate_name(name: str) -> str:
    _reject_nul(name, "name")
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise BadInput(f"name must be 1-{MAX_NAME} characters", field="name")
    return name


def _validate_prompt(prompt: str) -> str:
    try:
        return messages.validate_content(prompt)
    except BadInput as exc:
        raise BadInput(exc.message.replace("content", "prompt"), field="prompt") from None


def _validate_agent_name(agent_name: str) -> str:
    _reject_nul(agent_name, "agentName")
    agent_name = agent_name.strip()
    if not 1 <= len(agent_name) <= sessions.MAX_AGENT_NAME:
        raise BadInput(
            f"agentName must be 1-{sessions.MAX_AGENT_NAME} characters", field="agentName"
        )
    return agent_name


# --- a person's schedules -------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleSpec:
    """A new schedule; or, for an update, the fields to change (None: unchanged)."""

    name: str | None = None
    prompt: str | None = None
    cron: str | None = None
    timezone: str | None = None
    agent_name: str | None = None
    enabled: bool | None = None
    session_mode: SessionMode | None = None
    deliver_to: tuple[str, ...] | None = None  # channel names, checked by the caller


def _validate_deliver_to(channels: tuple[str, ...]) -> list[str]:
    unique = list(dict.fromkeys(channels))
    if len(unique) > MAX_DELIVER_TO:
        raise BadInput(f"deliverTo names at most {MAX_DELIVER_TO} channels", field="deliverTo")
    return unique


async def create_schedule(
    pool: asyncpg.Pool,
    owner: uuid.UUID,
    spec: ScheduleSpec,
    *,
    default_agent_name: str = "assistant",
    now: datetime | None = None,
    limit: int = MAX_SCHEDULES_PER_PERSON,
) -> ScheduleRow:
    """Store a new schedule. A person has at most `limit` schedules: the count and the insert
    run under a lock on the person, so concurrent creates cannot pass the cap together."""
    if spec.name is None or spec.prompt is None or spec.cron is None:
        raise BadInput("name, prompt and cron are required")
    name, prompt = _validate_name(spec.name), _validate_prompt(spec.prompt)
    cron = validate_cron(spec.cron)
    # Absent means the default; an empty value is refused, as update refuses it.
    timezone = validate_timezone("UTC" if spec.timezone is None else spec.timezone)
    agent_name = _validate_agent_name(
        default_agent_name if spec.agent_name is None else spec.agent_name
    )
    enabled = True if spec.enabled is None else spec.enabled
    next_run = next_run_after(cron, timezone, now or datetime.now(UTC))  # validates it ever runs
    async with pool.acquire() as conn, conn.transaction():
        await lock_until_commit(conn, f"schedules-of:{owner}")
        count = await conn.fetchval("SELECT count(*) FROM schedules WHERE user_id = $1", owner)
        if count >= limit:
            raise BadInput(
                f"you already have {limit} schedules, the most a person can have; "
                "delete one to create another"
            )
        record = await conn.fetchrow(
            f"""
            INSERT INTO schedules (user_id, name, prompt, cron, timezone, agent_name, enabled,
                                   next_run_at, session_mode, deliver_to)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            RETURNING {SCHEDULE_COLUMNS}
            """,
            owner,
            name,
            prompt,
            cron,
            timezone,
            agent_name,
            enabled,
            next_run if enabled else None,
            (spec.session_mode or SessionMode.NEW_PER_RUN).value,
            _validate_deliver_to(spec.deliver_to or ()),
        )
    return ScheduleRow.from_record(record)


async def get_schedule(
    db: Executor, owner: uuid.UUID, schedule_id: uuid.UUID
) -> ScheduleRow | None:
    """The person's schedule, or None: another person's looks exactly like a missing one."""
    record = await db.fetchrow(
        f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = $1 AND user_id = $2",
        schedule_id,
        owner,
    )
    return ScheduleRow.from_record(record) if record else None


async def get_schedules_by_ids(
    db: Executor, owner: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, ScheduleRow]:
    records = await db.fetch(
        f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = ANY($1::uuid[]) AND user_id = $2",
        list(ids),
        owner,
    )
    return {r["id"]: ScheduleRow.from_record(r) for r in records}


@dataclass(frozen=True)
class ScheduleKey:
    """Keyset position in the newest-first order."""

    created_at: datetime
    id: uuid.UUID


async def list_schedules(
    db: Executor, owner: uuid.UUID, *, limit: int, after: ScheduleKey | None = None
) -> list[ScheduleRow]:
    """Up to `limit` of the person's schedules, newest first, strictly after the position."""
    if after is None:
        records = await db.fetch(
            f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE user_id = $1 "
            "ORDER BY created_at DESC, id DESC LIMIT $2",
            owner,
            limit,
        )
    else:
        records = await db.fetch(
            f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE user_id = $1 "
            "AND (created_at, id) < ($2, $3) ORDER BY created_at DESC, id DESC LIMIT $4",
            owner,
            after.created_at,
            after.id,
            limit,
        )
    return [ScheduleRow.from_record(r) for r in records]


async def update_schedule(
    pool: asyncpg.Pool,
    owner: uuid.UUID,
    schedule_id: uuid.UUID,
    changes: ScheduleSpec,
    *,
    now: datetime | None = None,
) -> ScheduleRow | None:
    """Apply the changes; None if the person has no such schedule.

    A new cron or time zone, or enabling, moves the next run to the first slot after now: slots
    missed while a schedule was disabled are not caught up. Disabling clears the next run.
    """
    async with pool.acquire() as conn, conn.transaction():
        record = await conn.fetchrow(
            f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = $1 AND user_id = $2 FOR UPDATE",
            schedule_id,
            owner,
        )
        if record is None:
            return None
        current = ScheduleRow.from_record(record)
        name = _validate_name(changes.name) if changes.name is not None else current.name
        prompt = _validate_prompt(changes.prompt) if changes.prompt is not None else current.prompt
        cron = validate_cron(changes.cron) if changes.cron is not None else current.cron
        timezone = (
            validate_timezone(changes.timezone)
            if changes.timezone is not None
            else current.timezone
        )
        agent_name = (
            _validate_agent_name(changes.agent_name)
            if changes.agent_name is not None
            else current.agent_name
        )
        enabled = current.enabled if changes.enabled is None else changes.enabled
        next_run = next_run_after(cron, timezone, now or datetime.now(UTC))
        timing_changed = (cron, timezone) != (current.cron, current.timezone)
        if not enabled:
            next_run_at = None
        elif timing_changed or not current.enabled or current.next_run_at is None:
            next_run_at = next_run
        else:
            next_run_at = current.next_run_at
        record = await conn.fetchrow(
            f"""
            UPDATE schedules
               SET name = $2, prompt = $3, cron = $4, timezone = $5, agent_name = $6,
                   enabled = $7, next_run_at = $8, session_mode = $9, deliver_to = $10,
                   updated_at = now()
             WHERE id = $1
            RETURNING {SCHEDULE_COLUMNS}
            """,
            schedule_id,
            name,
            prompt,
            cron,
            timezone,
            agent_name,
            enabled,
            next_run_at,
            (changes.session_mode or current.session_mode).value,
            _validate_deliver_to(
                changes.deliver_to if changes.deliver_to is not None else current.deliver_to
            ),
        )
    return ScheduleRow.from_record(record)


async def delete_schedule(db: Executor, owner: uuid.UUID, schedule_id: uuid.UUID) -> bool:
    """Delete the schedule and its run rows. The sessions its runs created stay in the registry."""
    status = await db.execute(
        "DELETE FROM schedules WHERE id = $1 AND user_id = $2", schedule_id, owner
    )
    return status == "DELETE 1"


# --- slots: one run of one schedule, and every name it goes by ---------------------------


def slot_token(slot: datetime) -> str:
    """A slot as compact UTC text, safe in session ids and job ids: 20250105T090000Z. Slot.token
    is this; every other name of a slot is built from it (see Slot)."""
    slot = slot.astimezone(UTC)
    return (
        slot.strftime("%Y%m%dT%H%M%S")
        + (f".{slot.microsecond:06d}" if slot.microsecond else "")
        + "Z"
    )


@dataclass(frozen=True, slots=True)
class Slot:
    """One run of one schedule: the schedule and the moment (in UTC) the run stands for.

    A slot goes by several names, and they must agree wherever they are made (the claim,
    runScheduleNow, the worker), so all of them are derived here, from `token`:
    `session_id` (the run's session in the registry), `job_id` (its arq job, used only by
    arq_queue.py) and `idempotency_key` (its turn's messages). They are stored (sessions,
    message keys) and queued (job ids): changing one strands the runs already in flight.
    """

    schedule_id: uuid.UUID
    at: datetime

    def __post_init__(self) -> None:
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError("a slot is a timezone-aware moment")
        object.__setattr__(self, "at", self.at.astimezone(UTC))

    @property
    def token(self) -> str:
        return slot_token(self.at)

    @property
    def session_id(self) -> str:
        """sched:<schedule id>:<token>, the session the run creates (a scheduled one)."""
        return f"{SESSION_ID_PREFIX}{self._key}"

    @property
    def job_id(self) -> str:
        """schedule:<schedule id>:<token>: a slot enqueued twice is one arq job."""
        return f"schedule:{self._key}"

    @property
    def idempotency_key(self) -> str:
        """schedule:<token>: the turn's prompt and reply are stored once however often the slot
        is tried. Scoped to the session (itself the slot's), hence no schedule id."""
        return f"schedule:{self.token}"

    @property
    def _key(self) -> str:
        return f"{self.schedule_id}:{self.token}"


def run_session_id(slot: Slot, mode: SessionMode, generation: int = 0) -> str:
    """A run's session: the slot's own (`sched:<id>:<slot>`), or the schedule's one ongoing
    session (`sched:<id>`) when its runs append (each run's turn still keyed by its slot). Once
    the person deleted that session, the next one is `sched:<id>.<generation>` (the deletion
    bumps the generation: SQL us_append_session_id, 20250113000000_delete_retention.sql)."""
    if mode is SessionMode.APPEND:
        suffix = f".{generation}" if generation > 0 else ""
        return f"{SESSION_ID_PREFIX}{slot.schedule_id}{suffix}"
    return slot.session_id
