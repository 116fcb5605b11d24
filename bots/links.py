"""Telegram accounts linked to people by one-time codes, each chat's current session, and the
session each Telegram message was filed under."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import asyncpg

from graphql_api.core import sessions
from graphql_api.core.db import Connection, Executor, lock_until_commit
from graphql_api.core.models import SESSION_COLUMNS, SessionRow
from graphql_api.core.settings import SettingsError

from .channel import SESSION_ID_PREFIX

# Telegram's deep-link `start` parameter allows 1-64 of these characters.
CODE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CODE_BYTES = 16  # 128 bits: 22 characters of URL-safe base64
MAX_OPEN_CODES = 5  # a person's unused, unexpired codes; asking for more retires the oldest
MAX_TTL_SECONDS = 24 * 3600


@dataclass(frozen=True, slots=True)
class LinkCode:
    code: str  # shown once to the person; only its hash is stored
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class TelegramLink:
    telegram_user_id: int
    user_id: uuid.UUID
    telegram_username: str | None
    linked_at: datetime


class RedeemOutcome(StrEnum):
    LINKED = "linked"
    ALREADY_LINKED = "already_linked"  # the same Telegram user sent the same code again
    LINKED_ELSEWHERE = "linked_elsewhere"  # linked to another person: /unlink first; code unused
    USED = "used"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Redeemed:
    outcome: RedeemOutcome
    link: TelegramLink | None = None


def hash_code(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()


def _link(record: asyncpg.Record) -> TelegramLink:
    return TelegramLink(
        telegram_user_id=record["telegram_user_id"],
        user_id=record["user_id"],
        telegram_username=record["telegram_username"],
        linked_at=record["linked_at"],
    )


_LINK_COLUMNS = "telegram_user_id, user_id, telegram_username, linked_at"


async def create_link_code(pool: asyncpg.Pool, user_id: uuid.UUID, *, ttl_seconds: int) -> LinkCode:
    """A new one-time code for the person, valid for ttl_seconds."""
    if not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
        raise SettingsError(f"LINK_CODE_TTL_SECONDS must be 1-{MAX_TTL_SECONDS}, not {ttl_seconds}")
    code = secrets.token_urlsafe(CODE_BYTES)
    async with pool.acquire() as conn, conn.transaction():
        # One code request per person at a time, or concurrent ones would each trim, then each
        # insert, and pass the cap together. (Its own key: redeeming never waits on it.)
        await _lock(conn, f"codes:{user_id}")
        # Forget codes that expired or were used more than a day ago, and keep only the newest
        # MAX_OPEN_CODES - 1 open ones, so with the new one at most MAX_OPEN_CODES are open and
        # asking repeatedly never grows the table.
        await conn.execute(
            """
            DELETE FROM telegram_link_codes
             WHERE user_id = $1
               AND (coalesce(used_at, expires_at) < now() - interval '1 day'
                    OR (used_at IS NULL AND expires_at > now()
                        AND code_hash NOT IN (SELECT code_hash FROM telegram_link_codes
                                               WHERE user_id = $1 AND used_at IS NULL
                                                 AND expires_at > now()
                                               ORDER BY created_at DESC, code_hash DESC
                                               LIMIT $2)))
            """,
            user_id,
            MAX_OPEN_CODES - 1,
        )
        # clock_timestamp(), not now() (the transaction's start, before the lock was granted):
        # the code created last is the newest, so the next trim keeps it.
        expires_at = await conn.fetchval(
            "INSERT INTO telegram_link_codes (code_hash, user_id, created_at, expires_at) "
            "VALUES ($1, $2, clock_timestamp(), clock_timestamp() + make_interval(secs => $3)) "
            "RETURNING expires_at",
            hash_code(code),
            user_id,
            float(ttl_seconds),
        )
    return LinkCode(code=code, expires_at=expires_at)


_CLAIM = """
UPDATE telegram_link_codes SET used_at = now(), used_by = $2
 WHERE code_hash = $1 AND used_at IS NULL AND expires_at > now()
   AND ($3::uuid IS NULL OR user_id = $3)
RETURNING user_id
"""


async def redeem_link_code(
    pool: asyncpg.Pool, code: str, *, telegram_user_id: int, telegram_username: str | None
) -> Redeemed:
    """Link the Telegram user to the code's person. One statement decides who gets a code.

    A Telegram user linked to another person is refused and the code stays unused: a code
    proves only who created it, so redeeming one must not take a linked account away (an
    attacker could send their own code to a victim as a deep link). /unlink comes first.
    """
    if not CODE_PATTERN.match(code):
        return Redeemed(RedeemOutcome.UNKNOWN)
    code_hash = hash_code(code)
    async with pool.acquire() as conn, conn.transaction():
        # Serialise link changes for this Telegram user and this person (always in this order).
        await _lock(conn, f"tg:{telegram_user_id}")
        current = await find_link(conn, telegram_user_id)
        owner = current.user_id if current else None
        user_id = await conn.fetchval(_CLAIM, code_hash, telegram_user_id, owner)
        if user_id is None:
            return await _explain(conn, code_hash, telegram_user_id, current)
        await _lock(conn, f"user:{user_id}")
        # The person's previous Telegram account, if any, is replaced: one per person.
        replaced = await conn.fetch(
            f"DELETE FROM telegram_links WHERE telegram_user_id = $1 OR user_id = $2 "
            f"RETURNING {_LINK_COLUMNS}",
            telegram_user_id,
            user_id,
        )
        for old in replaced:
            if (old["telegram_user_id"], old["user_id"]) != (telegram_user_id, user_id):
                await _forget_chats(conn, old["telegram_user_id"], old["user_id"])
        record = await conn.fetchrow(
            f"INSERT INTO telegram_links (telegram_user_id, user_id, telegram_username) "
            f"VALUES ($1, $2, $3) RETURNING {_LINK_COLUMNS}",
            telegram_user_id,
            user_id,
            telegram_username,
        )
    assert record is not None  # INSERT ... RETURNING returns the row it inserted
    return Redeemed(RedeemOutcome.LINKED, link=_link(record))


async def _explain(
    conn: Connection,
    code_hash: bytes,
    telegram_user_id: int,
    current: TelegramLink | None,
) -> Redeemed:
    row = await conn.fetchrow(
        "SELECT user_id, used_at, used_by, expires_at <= now() AS expired "
        "FROM telegram_link_codes WHERE code_hash = $1",
        code_hash,
    )
    if row is None:
        return Redeemed(RedeemOutcome.UNKNOWN)
    if row["used_at"] is not None:
        if row["used_by"] == telegram_user_id and current and current.user_id == row["user_id"]:
            return Redeemed(RedeemOutcome.ALREADY_LINKED, link=current)
        return Redeemed(RedeemOutcome.USED)
    if row["expired"]:
        return Redeemed(RedeemOutcome.EXPIRED)
    # Open and unexpired, so the claim refused it for its owner: linked to someone else.
    return Redeemed(RedeemOutcome.LINKED_ELSEWHERE)


async def _lock(conn: Connection, key: str) -> None:
    await lock_until_commit(conn, "tg-link:" + key)


async def find_link(db: Executor, telegram_user_id: int) -> TelegramLink | None:
    record = await db.fetchrow(
        f"SELECT {_LINK_COLUMNS} FROM telegram_links WHERE telegram_user_id = $1",
        telegram_user_id,
    )
    return _link(record) if record else None


async def find_link_for_user(db: Executor, user_id: uuid.UUID) -> TelegramLink | None:
    record = await db.fetchrow(
        f"SELECT {_LINK_COLUMNS} FROM telegram_links WHERE user_id = $1", user_id
    )
    return _link(record) if record else None


async def unlink(
    pool: asyncpg.Pool, *, telegram_user_id: int | None = None, user_id: uuid.UUID | None = None
) -> TelegramLink | None:
    """Remove the link of that Telegram user or that person; return it (None: there was none).

    The chats' current sessions stay in the registry, marked inactive.
    """
    if (telegram_user_id is None) == (user_id is None):
        raise ValueError("give exactly one of telegram_user_id and user_id")
    async with pool.acquire() as conn, conn.transaction():
        record = await conn.fetchrow(
            f"DELETE FROM telegram_links WHERE telegram_user_id = $1 OR user_id = $2 "
            f"RETURNING {_LINK_COLUMNS}",
            telegram_user_id,
            user_id,
        )
        if record is None:
            return None
        await _forget_chats(conn, record["telegram_user_id"], record["user_id"])
    return _link(record)


async def _forget_chats(conn: Connection, telegram_user_id: int, user_id: uuid.UUID) -> None:
    ended = await conn.fetch(
        "DELETE FROM telegram_chats WHERE telegram_user_id = $1 AND user_id = $2 "
        "RETURNING session_id",
        telegram_user_id,
        user_id,
    )
    for row in ended:
        await sessions.set_active(conn, row["session_id"], False)


def session_id_for(telegram_chat_id: int, message_id: int) -> str:
    """Derived from the message that started it, so a redelivered message starts nothing new."""
    chat = str(telegram_chat_id) if telegram_chat_id >= 0 else f"n{-telegram_chat_id}"
    return f"{SESSION_ID_PREFIX}{chat}-{message_id}"


_SESSION_ID = re.compile(re.escape(SESSION_ID_PREFIX) + r"(n?)([0-9]{1,19})-[0-9]{1,19}")


def chat_of_session(session_id: str) -> int | None:
    """The Telegram chat a session_id_for() id was made for; None for any other id."""
    matched = _SESSION_ID.fullmatch(session_id)
    if matched is None:
        return None
    chat = int(matched.group(2))
    return -chat if matched.group(1) else chat


async def current_session_id(
    db: Executor,
    *,
    telegram_chat_id: int,
    telegram_user_id: int,
    user_id: uuid.UUID,
    message_id: int,
) -> str:
    """The session the person is in from this chat; the first message starts one."""
    select = "SELECT session_id FROM telegram_chats WHERE telegram_chat_id = $1 AND user_id = $2"
    found = await db.fetchval(select, telegram_chat_id, user_id)
    if found is not None:
        return found
    inserted = await db.fetchval(
        "INSERT INTO telegram_chats (telegram_chat_id, user_id, telegram_user_id, session_id) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING session_id",
        telegram_chat_id,
        user_id,
        telegram_user_id,
        session_id_for(telegram_chat_id, message_id),
    )
    # None: a concurrent message started it first (committed, so this new statement sees it).
    return inserted or await db.fetchval(select, telegram_chat_id, user_id)


@dataclass(frozen=True, slots=True)
class HandledMessage:
    """What a Telegram message is filed under: the session it belongs to, whether this is the
    first time it is seen (False: Telegram redelivered it), and whether nothing is left to do
    (its answer was delivered, or it was another person's: sent before the account was
    unlinked and linked to someone else)."""

    session_id: str
    first_time: bool
    done: bool
    # The person's own session row of that id, read in the same statement (file_message only):
    # None if it does not exist yet, or is not theirs, or was not looked up.
    session: SessionRow | None = None


# Telegram keeps an update it could not deliver for 24 hours; its record is kept a while longer.
KEEP_HANDLED = timedelta(days=7)


async def _handled(
    conn: Connection, telegram_chat_id: int, message_id: int, user_id: uuid.UUID
) -> HandledMessage | None:
    record = await conn.fetchrow(
        "SELECT session_id, answered_at IS NOT NULL OR user_id <> $3 AS done "
        "FROM telegram_messages WHERE telegram_chat_id = $1 AND message_id = $2",
        telegram_chat_id,
        message_id,
        user_id,
    )
    if record is None:
        return None
    return HandledMessage(record["session_id"], first_time=False, done=record["done"])


async def _record(
    conn: Connection,
    telegram_chat_id: int,
    message_id: int,
    user_id: uuid.UUID,
    session_id: str,
    text: str | None = None,
) -> bool:
    """File the message under the session; False if it was filed already (a concurrent copy).
    With `text` it is a turn, waiting for the worker from now (bots/turns.py). The chat's
    answered records older than KEEP_HANDLED are pruned in the same statement."""
    inserted = await conn.fetchval(
        "WITH pruned AS (DELETE FROM telegram_messages "
        "WHERE telegram_chat_id = $1 AND received_at < now() - $5::interval "
        "AND (queued_at IS NULL OR answered_at IS NOT NULL)) "
        "INSERT INTO telegram_messages "
        "(telegram_chat_id, message_id, user_id, session_id, text, queued_at) "
        "VALUES ($1, $2, $3, $4, $6, CASE WHEN $6::text IS NOT NULL THEN now() END) "
        "ON CONFLICT DO NOTHING RETURNING true",
        telegram_chat_id,
        message_id,
        user_id,
        session_id,
        KEEP_HANDLED,
        text,
    )
    return bool(inserted)


# Where a message goes, in one statement: how it was filed before (if it was), the chat's
# current session (if it has one), and the person's own session row of whichever applies.
_WHERE_FILED = f"""
SELECT m.message_id IS NOT NULL AS filed,  -- with no session_id once its session was deleted
       m.session_id AS filed_session_id, m.answered_at IS NOT NULL OR m.user_id <> $3 AS done,
       c.session_id AS current_session_id,
       {", ".join("s." + c.strip() for c in SESSION_COLUMNS.split(","))}
  FROM (SELECT) AS one
  LEFT JOIN telegram_messages m ON m.telegram_chat_id = $1 AND m.message_id = $2
  LEFT JOIN telegram_chats c ON c.telegram_chat_id = $1 AND c.user_id = $3
  LEFT JOIN chat_sessions s ON s.session_id = coalesce(m.session_id, c.session_id)
                           AND s.user_id = $3
"""


async def file_message(
    pool: asyncpg.Pool,
    *,
    telegram_chat_id: int,
    telegram_user_id: int,
    user_id: uuid.UUID,
    message_id: int,
    text: str | None = None,
) -> HandledMessage:
    """The session a message belongs to: the chat's current one when it is first seen, and the
    same one on every redelivery, whatever /new did in between. With it, the person's session
    row of that id, if there is one yet. `text`: the turn the worker is to answer."""
    async with pool.acquire() as conn:
        found = await conn.fetchrow(_WHERE_FILED, telegram_chat_id, message_id, user_id)
        assert found is not None  # the statement always yields its one row
        session = SessionRow.from_record(found) if found["id"] is not None else None
        if found["filed"]:  # a redelivery (of a deleted session's message: done, answered_at)
            if text is not None and not found["done"]:  # a turn not answered: it waits again
                await _wait_again(conn, telegram_chat_id, message_id, text)
            return HandledMessage(
                found["filed_session_id"], first_time=False, done=found["done"], session=session
            )
        session_id = found["current_session_id"]
        if session_id is None:  # the chat's first message starts its session
            session_id = await current_session_id(
                conn,
                telegram_chat_id=telegram_chat_id,
                telegram_user_id=telegram_user_id,
                user_id=user_id,
                message_id=message_id,
            )
            session = None
        if await _record(conn, telegram_chat_id, message_id, user_id, session_id, text):
            return HandledMessage(session_id, first_time=True, done=False, session=session)
        seen = await _handled(conn, telegram_chat_id, message_id, user_id)
        assert seen is not None  # filed by a concurrent copy, committed before our insert saw it
        return seen


async def _wait_again(conn: Connection, telegram_chat_id: int, message_id: int, text: str) -> None:
    await conn.execute(
        "UPDATE telegram_messages SET queued_at = coalesce(queued_at, now()), text = $3 "
        "WHERE telegram_chat_id = $1 AND message_id = $2 AND answered_at IS NULL",
        telegram_chat_id,
        message_id,
        text,
    )


async def mark_answered(db: Executor, *, telegram_chat_id: int, message_id: int) -> None:
    """The message's answer was delivered: a redelivery of it sends nothing again."""
    await db.execute(
        "UPDATE telegram_messages SET answered_at = now() "
        "WHERE telegram_chat_id = $1 AND message_id = $2",
        telegram_chat_id,
        message_id,
    )


async def start_new_session(
    pool: asyncpg.Pool,
    *,
    telegram_chat_id: int,
    telegram_user_id: int,
    user_id: uuid.UUID,
    message_id: int,
) -> HandledMessage:
    """Point the chat at a fresh session (named after the /new message).

    The previous session stays in the registry, marked inactive. A redelivered /new changes
    nothing, even after later messages or another /new.
    """
    new_id = session_id_for(telegram_chat_id, message_id)
    async with pool.acquire() as conn, conn.transaction():
        previous = await conn.fetchval(
            "SELECT session_id FROM telegram_chats WHERE telegram_chat_id = $1 AND user_id = $2 "
            "FOR UPDATE",
            telegram_chat_id,
            user_id,
        )
        if not await _record(conn, telegram_chat_id, message_id, user_id, new_id):
            seen = await _handled(conn, telegram_chat_id, message_id, user_id)
            assert seen is not None
            return seen
        await set_current_session(
            conn,
            telegram_chat_id=telegram_chat_id,
            telegram_user_id=telegram_user_id,
            user_id=user_id,
            session_id=new_id,
        )
        if previous is not None and previous != new_id:
            await sessions.set_active(conn, previous, False)
    return HandledMessage(new_id, first_time=True, done=False)


async def set_current_session(
    db: Executor,
    *,
    telegram_chat_id: int,
    telegram_user_id: int,
    user_id: uuid.UUID,
    session_id: str,
) -> None:
    """Make one of the person's sessions, of any channel, the chat's current one: the chat's
    next messages are turns in it (/new's fresh session; /resume's web conversation)."""
    await db.execute(
        """
        INSERT INTO telegram_chats (telegram_chat_id, user_id, telegram_user_id, session_id)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (telegram_chat_id, user_id) DO UPDATE
           SET session_id = EXCLUDED.session_id, telegram_user_id = EXCLUDED.telegram_user_id,
               started_at = now()
        """,
        telegram_chat_id,
        user_id,
        telegram_user_id,
        session_id,
    )
