"""Validation cost grows with the document, not with the paths through its fragments."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from graphql import get_introspection_query

from graphql_api.schema.limits import (
    MAX_ALIASES,
    MAX_DEPTH,
    MAX_FIELDS,
    MAX_INTROSPECTION_FIELDS,
)
from tests.conftest import Person

# The issue asks for well under 100 ms; the test allows 1 s so that a busy machine cannot fail it.
BOUND_SECONDS = 1.0


def doubling_fragments(k: int) -> str:
    """F0 spreads F1 twice, F1 spreads F2 twice, ...: 2^k paths in about 40 bytes per fragment."""
    fragments = [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(k)]
    return " ".join(["query { ...F0 }", *fragments, f"fragment F{k} on Query {{ __typename }}"])


async def _post(http: httpx.AsyncClient, query: str, token: str) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    response = await http.post(
        "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"}
    )
    return time.perf_counter() - start, response.json()


def _codes(body: dict[str, Any]) -> set[str]:
    return {error["extensions"]["code"] for error in body.get("errors", [])}


async def test_doubling_fragments_are_answered_at_once(
    http: httpx.AsyncClient, person: Person
) -> None:
    # k=20 first: it took about 6 s with Strawberry's depth and alias rules (k=30: hours).
    for k in (20, 30):
        hostile = asyncio.create_task(_post(http, doubling_fragments(k), person.token))
        plain = asyncio.create_task(_post(http, "{ __typename }", person.token))
        (took, body), (plain_took, plain_body) = await asyncio.gather(hostile, plain)
        print(f"k={k}: {took * 1000:.1f} ms; plain request alongside: {plain_took * 1000:.1f} ms")
        assert took < BOUND_SECONDS and plain_took < BOUND_SECONDS
        assert _codes(body) == {"BAD_USER_INPUT"} or "errors" not in body, body
        assert plain_body == {"data": {"__typename": "Query"}}


async def test_limits_count_fragments_as_if_inlined(
    http: httpx.AsyncClient, person: Person
) -> None:
    # Each fragment goes one level deeper: 12 levels of fields in all, through 11 fragments.
    chain = [
        f"fragment L{i} on ChatSessionConnection {{ edges {{ node {{ sessionId }} }} "
        f"pageInfo {{ ...L{i + 1} }} }}"
        for i in range(MAX_DEPTH)
    ]
    last = f"fragment L{MAX_DEPTH} on ChatSessionConnection {{ edges {{ cursor }} }}"
    deep = "{ sessions { ...L0 } } " + " ".join([*chain, last])
    _, body = await _post(http, deep, person.token)
    assert any("exceeds maximum operation depth" in e["message"] for e in body["errors"]), body

    # 3 aliases, spread 7 times: 21 aliases once inlined.
    aliases = (
        "{ " + "...A " * 7 + "} fragment A on Query { a: __typename b: __typename c: __typename }"
    )
    _, body = await _post(http, aliases, person.token)
    assert body["errors"][0]["message"] == f"21 aliases found. Allowed: {MAX_ALIASES}"
    assert _codes(body) == {"BAD_USER_INPUT"}

    # Over MAX_FIELDS selections once inlined; the same fields spelled out once are fine.
    fields = " ".join(["__typename"] * 10)
    too_many = "{ " + "...T " * (MAX_FIELDS // 10 + 1) + "} fragment T on Query { " + fields + " }"
    _, body = await _post(http, too_many, person.token)
    assert body["errors"][0]["message"] == f"{MAX_FIELDS + 10} fields found. Allowed: {MAX_FIELDS}"
    assert _codes(body) == {"BAD_USER_INPUT"}
    _, body = await _post(http, "{ ...T } fragment T on Query { " + fields + " }", person.token)
    assert body == {"data": {"__typename": "Query"}}


async def test_fragment_cycles_are_refused_without_looping(
    http: httpx.AsyncClient, person: Person
) -> None:
    cycle = "{ ...A } fragment A on Query { __typename ...B } fragment B on Query { ...A ...B }"
    took, body = await _post(http, cycle, person.token)
    assert took < BOUND_SECONDS
    assert _codes(body) == {"BAD_USER_INPUT"}
    assert any("Cannot spread fragment" in e["message"] for e in body["errors"]), body


async def test_the_limits_keep_the_slow_field_comparisons_from_running(
    http: httpx.AsyncClient, person: Person
) -> None:
    # graphql-core compares every pair of same-named fields: about 1 s for this document alone.
    repeated = "{ " + "sessions { edges { cursor } } " * 285 + "}"
    took, body = await _post(http, repeated, person.token)
    print(f"285 repeated selections: {took * 1000:.1f} ms")
    assert took < BOUND_SECONDS
    assert body["errors"] == [
        {
            "message": f"855 fields found. Allowed: {MAX_FIELDS}",
            "extensions": {"code": "BAD_USER_INPUT"},
        }
    ]


async def test_graphiqls_schema_query_fits_and_repeated_introspection_does_not(
    http: httpx.AsyncClient, person: Person
) -> None:
    full = get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
    )
    _, body = await _post(http, full, person.token)
    assert "errors" not in body and body["data"]["__schema"]["queryType"]["name"] == "Query"

    repeated = "{ " + "__schema { types { name } } " * (MAX_INTROSPECTION_FIELDS // 3 + 1) + "}"
    took, body = await _post(http, repeated, person.token)
    assert took < BOUND_SECONDS
    assert "introspection fields found" in body["errors"][0]["message"]
    assert _codes(body) == {"BAD_USER_INPUT"}
