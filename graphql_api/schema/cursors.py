"""Opaque keyset cursors: base64url of a tagged position, strictly validated when read back."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from strawberry import relay

from ..core.errors import BadInput
from ..core.sessions import SessionKey

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50
_MAX_CURSOR_LENGTH = 200


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


def encode_cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, tag: str, argument: str) -> str:
    try:
        if len(cursor) > _MAX_CURSOR_LENGTH:
            raise ValueError
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadInput(f"{argument} is not a valid cursor", field=argument) from None
    prefix = tag + ":"
    if not text.startswith(prefix):
        raise BadInput(f"{argument} is not a valid cursor", field=argument)
    return text[len(prefix) :]


def session_cursor(updated_at: datetime, session_uuid: uuid.UUID) -> str:
    return encode_cursor(f"s1:{updated_at.isoformat()}|{session_uuid}")


def read_session_cursor(cursor: str, argument: str = "after") -> SessionKey:
    body = decode_cursor(cursor, "s1", argument)
    try:
        stamp, _, raw_id = body.partition("|")
        updated_at = datetime.fromisoformat(stamp)
        if updated_at.tzinfo is None:
            raise ValueError
        # In range for PostgreSQL once normalised (0001-01-01+14:00 is not).
        updated_at = updated_at.astimezone(UTC)
        return SessionKey(updated_at=updated_at, id=uuid.UUID(raw_id))
    except (ValueError, OverflowError):
        raise BadInput(f"{argument} is not a valid cursor", field=argument) from None


def message_cursor(message_id: int) -> str:
    return encode_cursor(f"m1:{message_id}")


def read_message_cursor(cursor: str, argument: str = "before") -> int:
    body = decode_cursor(cursor, "m1", argument)
    if not (body.isascii() and body.isdigit()) or len(body) > 19 or int(body) > 2**63 - 1:
        raise BadInput(f"{argument} is not a valid cursor", field=argument)
    return int(body)
