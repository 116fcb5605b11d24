"""Per-request DataLoaders shared by many fields of one response."""

from __future__ import annotations

import asyncpg
import httpx

from tests.conftest import Person
from tests.graphql_api.seed import add_messages, make_session


async def test_a_nulled_field_does_not_cancel_a_key_another_field_waits_for(
    http: httpx.AsyncClient, pool: asyncpg.Pool, person: Person
) -> None:
    """`a` is nulled by its bad cursor, which cancels its pending `unreadCount`; `b` waits for
    the same loader key and still gets its count (it used to get CancelledError: HTTP 500)."""
    session = await make_session(pool, person.user_id)
    await add_messages(pool, session.session_id, 4)
    sid = session.session_id
    query = (
        f'{{ a: session(sessionId: "{sid}") {{ messages(before: "x") {{ edges {{ cursor }} }} '
        f'unreadCount }} b: session(sessionId: "{sid}") {{ unreadCount }} }}'
    )
    for _ in range(10):  # it depended on timing: 30 of 30 tries failed before
        response = await http.post(
            "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {person.token}"}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["data"] == {"a": None, "b": {"unreadCount": 2}}
        assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]
