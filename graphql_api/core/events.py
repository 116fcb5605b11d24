"""Live events: PostgreSQL LISTEN/NOTIFY on `us_events`, fanned out to this process's listeners.

Why PostgreSQL and not Redis pub/sub: the registry's triggers (migration 20250107) send the
notification inside the writing transaction, and PostgreSQL delivers it only when that
transaction commits, in commit order. So every write of every process (API replica, bot,
worker, a script) is published exactly when it becomes visible, with no publish call to forget
and no window where a crash between commit and publish loses the event. The API needs no Redis
for it. The cost: one extra connection per API process (the listener), and NOTIFY payloads of
at most 8,000 bytes (events carry ids; `REPLY_PROGRESS` text is cut to PROGRESS_MAX_BYTES).

Events are hints. A subscriber reads rows scoped to its viewer and resumes from a cursor; if the
listener's connection drops, it reconnects with backoff and tells every listener to re-read
(`Replay`), so a hint lost meanwhile loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg

from .db import Connection, Executor
from .models import MESSAGE_COLUMNS, MessageRow

log = logging.getLogger(__name__)

CHANNEL = "us_events"
PROGRESS_MAX_BYTES = 7000  # NOTIFY's payload limit is 8,000 bytes, ids and keys included
LOAD_BATCH = 200  # hints whose rows one query reads
LISTENER_QUEUE = 256  # events a slow listener may fall behind before it is told to replay
RECONNECT_CAP = 5.0


@dataclass(frozen=True, slots=True)
class MessagesAdded:
    session_id: str
    ids: tuple[int, ...] | None  # None: too many to list, read what is newer than your cursor


@dataclass(frozen=True, slots=True)
class RowsAdded:
    """New messages of a session, read once by the hub for all of its listeners."""

    session_id: str
    rows: tuple[MessageRow, ...]


@dataclass(frozen=True, slots=True)
class SessionChanged:
    user_id: uuid.UUID
    session_id: str
    kind: str  # CREATED | UPDATED | DELETED
    channel: str | None = None  # DELETED: the deleted session's channel (the row is gone)


@dataclass(frozen=True, slots=True)
class ReplyProgress:
    session_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ReplyFailed:
    session_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Replay:
    """Events may have been missed (the listener reconnected, or this listener fell behind):
    re-read from your cursor."""


Event = MessagesAdded | RowsAdded | SessionChanged | ReplyProgress | ReplyFailed | Replay


def parse(payload: str) -> Event | None:
    """An event from a notification's payload; None for one this version does not know."""
    try:
        data = json.loads(payload)
        kind = data["k"]
        if kind == "m":
            ids = data.get("ids")
            return MessagesAdded(data["s"], tuple(int(i) for i in ids) if ids else None)
        if kind == "s":
            return SessionChanged(uuid.UUID(data["u"]), data["s"], data["e"], data.get("c"))
        if kind == "p":
            return ReplyProgress(data["s"], data["t"])
        if kind == "f":
            return ReplyFailed(data["s"], data["r"])
    except (ValueError, KeyError, TypeError):
        log.warning("ignored a malformed event: %.200r", payload)
    return None


async def publish_progress(db: Executor, session_id: str, text: str) -> None:
    """The reply's text so far (its first PROGRESS_MAX_BYTES bytes), to the session's watchers."""
    cut = text.encode()[:PROGRESS_MAX_BYTES].decode(errors="ignore")
    await _notify(db, {"k": "p", "s": session_id, "t": cut})


async def publish_failure(db: Executor, session_id: str, reason: str) -> None:
    await _notify(db, {"k": "f", "s": session_id, "r": reason[:500]})


async def _notify(db: Executor, event: dict[str, Any]) -> None:
    await db.execute("SELECT pg_notify($1, $2)", CHANNEL, json.dumps(event))


class Listener:
    """One subscriber's inbox: the events of the sessions and people it follows."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Event] = asyncio.Queue(LISTENER_QUEUE)
        self._behind = False

    def put(self, event: Event) -> None:
        if self._behind:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:  # drop what is queued: one Replay says "re-read"
            self._behind = True
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(Replay())

    async def get(self) -> Event:
        event = await self._queue.get()
        if isinstance(event, Replay):
            self._behind = False
        return event


class EventHub:
    """The process's LISTEN connection and its listeners, by session id and by person."""

    def __init__(self, dsn: str, pool: asyncpg.Pool) -> None:
        self._dsn = dsn
        self._pool = pool
        self._pending: list[MessagesAdded] = []  # hints whose rows the next load reads
        self._loading: asyncio.Task[None] | None = None
        self._by_session: dict[str, set[Listener]] = defaultdict(set)
        self._by_user: dict[uuid.UUID, set[Listener]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    @property
    def listeners(self) -> int:
        return sum(map(len, self._by_session.values())) + sum(map(len, self._by_user.values()))

    @contextlib.contextmanager
    def follow(
        self, *, session_id: str | None = None, user_id: uuid.UUID | None = None
    ) -> Iterator[Listener]:
        """A listener for one session's events or one person's session changes."""
        listener = Listener()
        groups = self._groups(session_id, user_id)
        for group in groups:
            group.add(listener)
        try:
            yield listener
        finally:
            for group in groups:
                group.discard(listener)
            self._forget_empty(session_id, user_id)

    def _groups(self, session_id: str | None, user_id: uuid.UUID | None) -> list[set[Listener]]:
        groups = []
        if session_id is not None:
            groups.append(self._by_session[session_id])
        if user_id is not None:
            groups.append(self._by_user[user_id])
        return groups

    def _forget_empty(self, session_id: str | None, user_id: uuid.UUID | None) -> None:
        if session_id is not None and not self._by_session.get(session_id):
            self._by_session.pop(session_id, None)
        if user_id is not None and not self._by_user.get(user_id):
            self._by_user.pop(user_id, None)

    def dispatch(self, event: Event) -> None:
        if isinstance(event, SessionChanged):
            targets = self._by_user.get(event.user_id, ())
        elif isinstance(event, Replay):
            targets = {*(x for g in self._by_session.values() for x in g)}
            targets |= {x for g in self._by_user.values() for x in g}
        else:
            targets = self._by_session.get(event.session_id, ())
        for listener in tuple(targets):
            listener.put(event)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[EventHub]:
        self._task = asyncio.create_task(self._listen_forever(), name="event-hub")
        try:
            yield self
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen_forever(self) -> None:
        failures = 0
        while True:
            try:
                await self._listen_once()
                failures = 0
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                failures += 1
                delay = min(RECONNECT_CAP, 0.25 * 2**failures)
                log.warning("event listener lost PostgreSQL (%s); again in %.1f s", exc, delay)
                await asyncio.sleep(delay)

    async def _listen_once(self) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(self._dsn)
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(CHANNEL, self._on_notification)
            self.connected.set()
            self.dispatch(Replay())  # anything committed while we were not listening
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), timeout=15)
                if not lost.is_set():
                    await conn.fetchval("SELECT 1", timeout=5)  # a dead peer shows up here
        finally:
            self.connected.clear()
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    def _on_notification(self, conn: Connection, pid: int, channel: str, payload: object) -> None:
        event = parse(str(payload))
        if isinstance(event, MessagesAdded) and event.ids is not None:
            if event.session_id in self._by_session:
                self._pending.append(event)
                if self._loading is None or self._loading.done():
                    self._loading = asyncio.create_task(self._load_pending())
        elif event is not None:
            self.dispatch(event)

    async def _load_pending(self) -> None:
        """Read the rows of every hint that arrived meanwhile in one query, in arrival order,
        and hand them to the sessions' listeners (each session's rows once per process)."""
        await asyncio.sleep(0)  # let the notifications of this read burst arrive
        while self._pending:
            batch, self._pending = self._pending[:LOAD_BATCH], self._pending[LOAD_BATCH:]
            ids = [i for event in batch for i in event.ids or ()]
            try:
                records = await self._pool.fetch(
                    f"SELECT {MESSAGE_COLUMNS} FROM chat_message_history "
                    "WHERE id = ANY($1::bigint[])",
                    ids,
                )
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("could not read new messages (%s): listeners replay", exc)
                for event in batch:
                    self.dispatch(MessagesAdded(event.session_id, None))
                continue
            rows = {r["id"]: MessageRow.from_record(r) for r in records}
            for event in batch:
                found = tuple(rows[i] for i in event.ids or () if i in rows)
                self.dispatch(RowsAdded(event.session_id, found))
