"""Telegram accounts linked to people by one-time codes (bots/chats.py: what their chats are in)."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg

from graphql_api.core.db import Connection, Executor, lock_until_commit
from graphql_api.core.settings import SettingsError

from . import chats

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
                await chats.forget_chats(conn, old["telegram_user_id"], old["user_id"])
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
        await chats.forget_chats(conn, record["telegram_user_id"], record["user_id"])
    return _link(record)
