"""A cursor is its scope's head followed by its position: what the compiled path relies on when
it encodes only the position in SQL."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import pytest

from graphql_api.core.pagination import Keyset
from graphql_api.schema.search import HITS
from graphql_api.schema.sessions import SESSIONS
from graphql_api.schema.types import MESSAGES
from workers.schema import RUNS, SCHEDULES

AT = datetime(2026, 12, 2, 17, 0, 0, 123456, tzinfo=UTC)
POSITIONS = {
    SESSIONS: (AT, uuid.UUID(int=7)),
    HITS: (AT, 42),
    MESSAGES: (9_007_199_254_740_993,),
    SCHEDULES: (AT.replace(microsecond=0), uuid.UUID(int=2**128 - 1)),
    RUNS: (AT,),
}


def _base64url(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("keyset", POSITIONS, ids=lambda k: k.tag)
@pytest.mark.parametrize("scope", [("a",), ("person", "telegram", "archived"), ("é\"'",)])
def test_a_cursor_is_its_head_and_its_position(keyset: Keyset, scope: tuple[str, ...]) -> None:
    position = POSITIONS[keyset]
    body = "|".join(v.isoformat() if isinstance(v, datetime) else str(v) for v in position)
    cursor = keyset.cursor(scope, *position)
    assert cursor == keyset.cursor_head(scope) + _base64url(body)
    assert keyset.read(cursor, scope, "after") == position


def test_a_head_that_is_no_whole_number_of_groups_is_refused() -> None:
    with pytest.raises(ValueError, match="whole number"):
        Keyset("long", "id", (int,)).cursor_head(("a",))
