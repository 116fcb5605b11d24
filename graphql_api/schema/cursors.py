"""Opaque keyset cursors, each bound to the list that issued it, strictly validated when read.

A cursor is base64url of `<tag>:<binding>:<position>`. The binding is a short hash of the
cursor's scope: its kind (tag), the list's ordering, and whatever determines which rows the list
holds (the viewer, a filter, a session or a schedule). A cursor read back under another scope (a
message cursor of session A given to session B, a sessions cursor of one person or channel filter
given to another) is refused exactly like a tampered one: BAD_USER_INPUT "<argument> is not a
valid cursor". One encode/decode pair does this for every connection; a connection only says
what its scope is.

The binding is an integrity check, not a secret: access is still decided by each query's own
scoping (a cursor can only ever page through rows the viewer may read anyway). Unkeyed, so no
cursor is invalidated by rotating a key.
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
from typing import Any

from strawberry import relay

from ..core.errors import BadInput
from ..core.sessions import SessionKey

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50
_MAX_CURSOR_LENGTH = 200
_BINDING_BYTES = 8
_BINDING_PERSON = b"us-cursor-v1"  # blake2b personalisation: these hashes are cursor bindings


@dataclass(frozen=True)
class CursorScope:
    """What a cursor's position is a position in.

    `tag` names the kind of position, `ordering` the list's order, `bound_to` what decides the
    list's rows. A connection that gains a filter must add it to `bound_to`.
    """

    tag: str
    ordering: str
    bound_to: tuple[str, ...]

    def binding(self) -> str:
        material = json.dumps([self.tag, self.ordering, *self.bound_to]).encode()
        digest = hashlib.blake2b(
            material, digest_size=_BINDING_BYTES, person=_BINDING_PERSON
        ).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sessions_scope(user_id: uuid.UUID, channel: str | None) -> CursorScope:
    """`sessions(channel:)`: the list is the viewer's (a person, or the person a service token
    acts as) sessions, optionally one channel's."""
    return CursorScope("s1", "updated_at desc, id desc", (str(user_id), channel or "*"))


def messages_scope(session_id: str) -> CursorScope:
    """A session's history, wherever it is paged (`messages`, `ChatSession.messages`): bound to
    the session, not the viewer, so the same cursor stays valid for any view of that session."""
    return CursorScope("m1", "id", (session_id,))


def page_info(
    edges: Sequence[relay.Edge[Any]], *, has_next: bool, has_previous: bool
) -> relay.PageInfo:
    return relay.PageInfo(
        has_next_page=has_next,
        has_previous_page=has_previous,
        start_cursor=edges[0].cursor if edges else None,
        end_cursor=edges[-1].cursor if edges else None,
    )


def page_size(value: int | None, argument: str) -> int:
    if value is None:
        return DEFAULT_PAGE_SIZE
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise BadInput(f"{argument} must be between 1 and {MAX_PAGE_SIZE}", field=argument)
    return value


def bad_cursor(argument: str) -> BadInput:
    return BadInput(f"{argument} is not a valid cursor", field=argument)


def encode_cursor(scope: CursorScope, position: str) -> str:
    text = f"{scope.tag}:{scope.binding()}:{position}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, scope: CursorScope, argument: str) -> str:
    """The position inside `cursor`, if it is well formed and was issued under `scope`."""
    try:
        if len(cursor) > _MAX_CURSOR_LENGTH:
            raise ValueError
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise bad_cursor(argument) from None
    tag, _, rest = text.partition(":")
    binding, _, position = rest.partition(":")
    if tag != scope.tag or not hmac.compare_digest(binding.encode(), scope.binding().encode()):
        raise bad_cursor(argument)
    return position


def session_cursor(scope: CursorScope, updated_at: datetime, session_uuid: uuid.UUID) -> str:
    return encode_cursor(scope, f"{updated_at.isoformat()}|{session_uuid}")


def read_session_cursor(cursor: str, scope: CursorScope, argument: str = "after") -> SessionKey:
    body = decode_cursor(cursor, scope, argument)
    try:
        stamp, _, raw_id = body.partition("|")
        updated_at = datetime.fromisoformat(stamp)
        if updated_at.tzinfo is None:
            raise ValueError
        # In range for PostgreSQL once normalised (0001-01-01+14:00 is not).
        updated_at = updated_at.astimezone(UTC)
        return SessionKey(updated_at=updated_at, id=uuid.UUID(raw_id))
    except (ValueError, OverflowError):
        raise bad_cursor(argument) from None


def message_cursor(session_id: str, message_id: int) -> str:
    return encode_cursor(messages_scope(session_id), str(message_id))


def read_message_cursor(cursor: str, session_id: str, argument: str = "before") -> int:
    body = decode_cursor(cursor, messages_scope(session_id), argument)
    if not (body.isascii() and body.isdigit()) or len(body) > 19 or int(body) > 2**63 - 1:
        raise bad_cursor(argument)
    return int(body)
