"""Keyset pagination: opaque cursors bound to the list that issued them, and page windows.

Every connection (sessions, a session's messages, schedules, a schedule's runs) declares one
`Keyset`: a tag, its ordering, and the types of the columns its position is made of. A cursor is
base64url of `<tag>:<binding>:<position>`. The binding is a short hash of the cursor's scope: the
tag, the ordering, and whatever decides which rows the list holds (the viewer, a filter, a
session, a schedule). A cursor read back under another scope (a message cursor of session A
given to session B, a sessions cursor of one person or filter given to another) is refused
exactly like a tampered one: BAD_USER_INPUT "<argument> is not a valid cursor".

The binding is an integrity check, not a secret: access is still decided by each query's own
scoping (a cursor can only ever page through rows the viewer may read anyway). Unkeyed, so no
cursor is invalidated by rotating a key.

Queries fetch `limit + 1` rows; `window` keeps `limit` of them and says whether there were more.
Nothing here uses OFFSET: each page is an index range scan after (or before) its position.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from .errors import BadInput

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50
_MAX_CURSOR_LENGTH = 200
_BINDING_BYTES = 8
_BINDING_PERSON = b"us-cursor-v1"  # blake2b personalisation: these hashes are cursor bindings
_MAX_BIGINT = 2**63 - 1

Column = type[datetime] | type[uuid.UUID] | type[int]
T = TypeVar("T")


def page_size(value: int | None, argument: str) -> int:
    if value is None:
        return DEFAULT_PAGE_SIZE
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise BadInput(f"{argument} must be between 1 and {MAX_PAGE_SIZE}", field=argument)
    return value


def window(rows: Sequence[T], limit: int, *, newest_last: bool = False) -> tuple[list[T], bool]:
    """The page out of `limit + 1` fetched rows, and whether a further row exists. With
    `newest_last` the rows run oldest to newest and the extra row is the oldest (first)."""
    more = len(rows) > limit
    if not more:
        return list(rows), False
    return (list(rows[-limit:]) if newest_last else list(rows[:limit])), True


def bad_cursor(argument: str) -> BadInput:
    return BadInput(f"{argument} is not a valid cursor", field=argument)


@dataclass(frozen=True)
class Keyset:
    """One list's position format. `ordering` documents (and binds cursors to) the ORDER BY the
    list's query uses; `columns` are the types of the position's values, in order."""

    tag: str
    ordering: str
    columns: tuple[Column, ...]

    def cursor(self, scope: Sequence[str], *position: Any) -> str:
        """A cursor at `position` in the list bound to `scope`."""
        if len(position) != len(self.columns):
            raise ValueError(f"{self.tag}: {len(self.columns)} position values expected")
        return self.raw_cursor(scope, "|".join(_write(value) for value in position))

    def raw_cursor(self, scope: Sequence[str], body: str) -> str:
        """A cursor bound to `scope` around any position text: for tests of `read`."""
        text = f"{self.tag}:{self.binding(scope)}:{body}"
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    def read(self, cursor: str, scope: Sequence[str], argument: str) -> tuple[Any, ...]:
        """The position inside `cursor`, if it is well formed and was issued under `scope`."""
        try:
            if len(cursor) > _MAX_CURSOR_LENGTH:
                raise ValueError
            text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise bad_cursor(argument) from None
        tag, _, rest = text.partition(":")
        binding, _, body = rest.partition(":")
        expected = self.binding(scope).encode()
        if tag != self.tag or not hmac.compare_digest(binding.encode(), expected):
            raise bad_cursor(argument)
        parts = body.split("|")
        if len(parts) != len(self.columns):
            raise bad_cursor(argument)
        try:
            return tuple(_read(kind, part) for kind, part in zip(self.columns, parts, strict=True))
        except (ValueError, OverflowError):
            raise bad_cursor(argument) from None

    def cursor_head(self, scope: Sequence[str]) -> str:
        """The start every cursor of `scope` shares: base64url of `<tag>:<binding>:`, a whole
        number of 3-byte groups, so a cursor is this head followed by base64url of its position
        text alone (the compiled path encodes only the position, in SQL)."""
        prefix = f"{self.tag}:{self.binding(scope)}:".encode()
        if len(prefix) % 3:
            raise ValueError(f"{self.tag}: the cursor prefix is not a whole number of groups")
        return base64.urlsafe_b64encode(prefix).decode()

    def binding(self, scope: Sequence[str]) -> str:
        """The hash that binds this list's cursors to `scope`."""
        material = json.dumps([self.tag, self.ordering, *scope]).encode()
        digest = hashlib.blake2b(
            material, digest_size=_BINDING_BYTES, person=_BINDING_PERSON
        ).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _write(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _read(kind: Column, text: str) -> Any:
    if kind is datetime:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            raise ValueError("a cursor's moment has a time zone")
        # In range for PostgreSQL once normalised (0001-01-01+14:00 is not: OverflowError).
        return moment.astimezone(UTC)
    if kind is uuid.UUID:
        return uuid.UUID(text)
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > _MAX_BIGINT:
        raise ValueError("a cursor's id is a bigint")
    return int(text)
