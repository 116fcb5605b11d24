"""A rich data set for the differential tests: fresh people, sessions of every channel and
state, messages of every shape, deliveries, read marks, a busy session. Never global counts:
every person is new, so the test database may hold anything else."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from bots.channel import TELEGRAM
from graphql_api.core import deliveries, messages, reads, sessions
from graphql_api.core.channels import WEB
from graphql_api.core.models import Role
from graphql_api.core.tokens import mint_token
from graphql_api.schema.sessions import SESSIONS
from graphql_api.schema.types import message_cursor
from tests.conftest import TEST_JWT_SECRET, Person, make_person
from tests.graphql_api.seed import add_raw_message, make_session
from workers.channel import SCHEDULED

ODD_TEXT = (
    "ünïcødé 🎉👩‍👩‍👧 \"double\" 'single' back\\slash \\n not a newline\nreal newline\r\n"
    "tab\t bell\x07 esc\x1b unit\x1f del\x7f </script><script>alert(1)</script> <!-- "
    '\u2028\u2029 \ufeff zero\u200bwidth \U0001d518\U0001d52b\U0001d526 {"json": [1]} $1 %s \' OR 1=1 --'
)
TITLE = '"Quoted" — título ✨ \\ back </script>'
RAW_MESSAGES: list[Any] = [
    {
        "type": "ai",
        "data": {"content": [{"type": "text", "text": "a"}, "b", {"type": "image_url"}]},
    },
    {"type": "human", "data": {"content": [{"type": "text", "text": None}, 3, [], {"text": "c"}]}},
    {"type": "tool", "data": {"content": []}},
    {"type": "ai"},
    {"type": 5, "data": {"content": "type is a number"}},
    {"type": "human", "data": {"content": 42}},
    {"type": "system", "data": "data is a string"},
    {"type": ["human"], "data": {"content": "type is a list"}},
    {"data": {"content": "no type"}},
    {"type": "AI", "data": {"content": "upper-case type"}},
    {"type": "ai", "data": {"content": ODD_TEXT}},
    {"type": "ai", "data": {"content": {"text": "content is an object"}}},
    {"type": "ai", "data": {"content": None}},
    {"type": "human", "data": {"content": [{"type": "text", "text": "x", "extra": [1e300]}]}},
    "a bare JSON string",
    [1, 2, 3],
]


def global_id(type_name: str, node_id: object) -> str:
    return base64.b64encode(f"{type_name}:{node_id}".encode()).decode()


@dataclass
class Seed:
    owner: Person
    other: Person  # has sessions of their own
    stranger: Person  # has nothing
    service: Person  # a service token for a person with nothing
    owner_service: Person  # a service token acting as the owner
    poisoned: Person  # owns a message whose stored values no enum member has
    sessions: dict[str, str] = field(default_factory=dict)  # label -> the owner's session_id
    ids: dict[str, uuid.UUID] = field(default_factory=dict)  # label -> the session's uuid
    messages: dict[str, list[int]] = field(default_factory=dict)  # label -> message ids
    other_session: str = ""
    other_session_uuid: uuid.UUID = field(default_factory=uuid.uuid4)
    other_message: int = 0
    poisoned_session: str = ""
    channels: dict[str, str] = field(default_factory=dict)  # label -> the session's channel
    updated: dict[str, datetime] = field(default_factory=dict)  # label -> updated_at

    @property
    def people(self) -> dict[str, Person | None]:
        return {
            "owner": self.owner,
            "other": self.other,
            "stranger": self.stranger,
            "service": self.service,
            "owner_service": self.owner_service,
            "anonymous": None,
        }

    def cursor(self, label: str, index: int) -> str:
        return message_cursor(self.sessions[label], self.messages[label][index])

    def list_cursor(self, label: str, *scope: str, person: Person | None = None) -> str:
        """A sessions cursor at the owner's session `label`, in the list of `scope` (e.g.
        "*", "telegram", "*", "archived") of `person` (default: the owner)."""
        who = str((person or self.owner).user_id)
        return SESSIONS.cursor((who, *scope), self.updated[label], self.ids[label])

    def raw_list_cursor(self, position: str, *scope: str) -> str:
        return SESSIONS.raw_cursor((str(self.owner.user_id), *scope), position)


async def _session(pool: asyncpg.Pool, seed: Seed, label: str, channel: str = WEB) -> str:
    row = await make_session(pool, seed.owner.user_id, channel=channel, agent_name=f"agent-{label}")
    seed.sessions[label], seed.ids[label] = row.session_id, row.id
    seed.channels[label] = channel
    seed.messages[label] = []
    return row.session_id


async def _add(pool: asyncpg.Pool, seed: Seed, label: str, role: Role, text: str) -> int:
    row, _ = await messages.append_message(pool, seed.sessions[label], role, text)
    seed.messages[label].append(row.id)
    return row.id


async def seed_data(pool: asyncpg.Pool) -> Seed:
    owner = make_person()
    seed = Seed(
        owner=owner,
        other=make_person(),
        stranger=make_person(),
        service=make_person(service=True),
        owner_service=Person(
            owner.user_id, mint_token(TEST_JWT_SECRET, owner.user_id, service=True)
        ),
        poisoned=make_person(),
    )
    # The web session: every role, odd text, raw LangChain shapes, via set and not.
    web = await _session(pool, seed, "web")
    for role in (Role.USER, Role.ASSISTANT, Role.SYSTEM, Role.TOOL):
        await _add(pool, seed, "web", role, f"{role.value}: {ODD_TEXT}")
    for raw in RAW_MESSAGES:
        seed.messages["web"].append(await add_raw_message(pool, web, raw))
    await _add(pool, seed, "web", Role.USER, "")
    await _add(pool, seed, "web", Role.ASSISTANT, "the newest, by telegram")
    ids = seed.messages["web"]
    await pool.execute("UPDATE chat_message_history SET via = 'telegram' WHERE id = $1", ids[-1])
    await pool.execute("UPDATE chat_message_history SET via = 'scheduled' WHERE id = $1", ids[1])
    await pool.execute("UPDATE chat_message_history SET via = 'web' WHERE id = $1", ids[2])
    await pool.execute(
        "UPDATE chat_message_history SET created_at = date_trunc('second', created_at) "
        "WHERE id = ANY($1::bigint[])",
        ids[::3],
    )
    await reads.mark_read(pool, owner.user_id, web, ids[5])
    await sessions.rename_session(pool, owner.user_id, web, TITLE)

    # Telegram: deliveries of every status.
    tg = await _session(pool, seed, "telegram", TELEGRAM)
    for n in range(6):
        await _add(pool, seed, "telegram", Role.USER if n % 2 == 0 else Role.ASSISTANT, f"tg {n}")
    tids = seed.messages["telegram"]
    await deliveries.queue(pool, tids[1], TELEGRAM, "12345")
    await deliveries.queue(pool, tids[3], TELEGRAM, None, no_target="no chat linked ✗")
    await pool.execute(
        "INSERT INTO message_deliveries (message_id, channel, target, status, attempts, "
        "last_error, sent_at) VALUES ($1, 'telegram', '1', 'sent', 3, 'flaky \"net\"', "
        "date_trunc('second', now())), ($1, 'web', NULL, 'failed', 7, NULL, NULL), "
        "($2, 'telegram', '1', 'sent', 1, NULL, now()), ($2, 'scheduled', '1', 'pending', 0, "
        "'retrying\n', NULL)",
        tids[5],
        tids[4],
    )
    await reads.mark_read(pool, owner.user_id, tg, None)

    # Scheduled: a failed last turn; one archived.
    sched = await _session(pool, seed, "scheduled", SCHEDULED)
    await _add(pool, seed, "scheduled", Role.USER, "run the report")
    await _add(pool, seed, "scheduled", Role.ASSISTANT, "report: ✓")
    await sessions.record_failure(pool, sched, 'agent timed out: "slow" \\ 🐢', is_active=False)
    old = await _session(pool, seed, "scheduled_archived", SCHEDULED)
    await _add(pool, seed, "scheduled_archived", Role.ASSISTANT, "archived run")
    await sessions.set_archived(pool, owner.user_id, old, True)
    arch = await _session(pool, seed, "web_archived")
    await _add(pool, seed, "web_archived", Role.USER, "archived web")
    await sessions.set_archived(pool, owner.user_id, arch, True)
    await _session(pool, seed, "telegram_archived", TELEGRAM)
    await sessions.set_archived(pool, owner.user_id, seed.sessions["telegram_archived"], True)

    await _session(pool, seed, "empty")
    # Busy: 250 messages, no read mark (unreadCount is capped).
    busy = await _session(pool, seed, "busy")
    seed.messages["busy"] = [
        r["id"]
        for r in await pool.fetch(
            "INSERT INTO chat_message_history (session_id, message) SELECT $1, "
            "jsonb_build_object('type', CASE WHEN n % 2 = 0 THEN 'human' ELSE 'ai' END, "
            "'data', jsonb_build_object('content', 'busy ' || n)) FROM generate_series(1, 250) n "
            "ORDER BY n RETURNING id",
            busy,
        )
    ]
    for n in range(3):
        await _session(pool, seed, f"web{n}")
        await _add(pool, seed, f"web{n}", Role.USER, f"hello {n}")
    # Two sessions with the same last activity (the order falls back to the id); whole seconds.
    await pool.execute(
        "UPDATE chat_sessions SET updated_at = date_trunc('second', now()) - interval '1 hour' "
        "WHERE session_id = ANY($1::text[])",
        [seed.sessions["web0"], seed.sessions["web1"]],
    )
    await pool.execute(
        "UPDATE chat_sessions SET last_error = 'plain', last_error_at = date_trunc('second', "
        "now()) WHERE session_id = $1",
        seed.sessions["web2"],
    )

    # Odd moments (years 999 and 9999, one microsecond) and an odd stored session id.
    times = await _session(pool, seed, "odd_times")
    for text in ("epoch", "leap"):
        await _add(pool, seed, "odd_times", Role.ASSISTANT, text)
    await pool.execute(
        "UPDATE chat_sessions SET updated_at = '0999-06-15 12:00:00.000001+00', created_at = "
        "'1900-01-01 00:00:00+00', last_error = '', last_error_at = '9999-12-31 "
        "23:59:59.999999+00', agent_name = $2 WHERE session_id = $1",
        times,
        ODD_TEXT[:60],
    )
    await pool.execute(
        "UPDATE chat_message_history SET created_at = CASE WHEN id = $1 THEN timestamptz "
        "'1970-01-01 00:00:00.000001+00' ELSE timestamptz '2000-02-29 23:59:59.1+00' END "
        "WHERE session_id = $2",
        seed.messages["odd_times"][0],
        times,
    )
    odd = await _session(pool, seed, "odd_id")
    odd_id = f'ünï "q" \\ 🎉 </script> {uuid.uuid4().hex[:8]}'
    await pool.execute(
        "UPDATE chat_sessions SET session_id = $2 WHERE session_id = $1", odd, odd_id
    )
    seed.sessions["odd_id"] = odd_id
    for raw in RAW_MESSAGES[:3]:
        seed.messages["odd_id"].append(await add_raw_message(pool, odd_id, raw))

    # Someone else's session and message.
    row = await make_session(pool, seed.other.user_id, channel=TELEGRAM)
    seed.other_session, seed.other_session_uuid = row.session_id, row.id
    msg, _ = await messages.append_message(pool, row.session_id, Role.USER, "not yours")
    seed.other_message = msg.id
    # The owner has read someone else's session id mark (no effect on theirs).
    await pool.execute(
        "INSERT INTO session_read_marks (user_id, session_id, last_read_id) VALUES ($1, $2, $3)",
        owner.user_id,
        row.session_id,
        msg.id,
    )
    await reads.mark_read(pool, seed.other.user_id, web, None)  # not the owner's mark
    # A stored value no enum member has: both paths must answer alike (the reference errors).
    row = await make_session(pool, seed.poisoned.user_id)
    seed.poisoned_session = row.session_id
    msg, _ = await messages.append_message(pool, row.session_id, Role.USER, "poison")
    await pool.execute("UPDATE chat_message_history SET via = 'email' WHERE id = $1", msg.id)
    for label, session_id in seed.sessions.items():
        seed.updated[label] = await pool.fetchval(
            "SELECT updated_at FROM chat_sessions WHERE session_id = $1", session_id
        )
    return seed
