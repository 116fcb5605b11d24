"""Malformed and hostile requests get a 4xx or BAD_USER_INPUT, never a masked 500."""

from __future__ import annotations

import base64

import asyncpg
import httpx
import pytest

from tests.conftest import GraphQLClient, Person
from tests.graphql_api.seed import add_messages, make_session


async def _post_raw(http: httpx.AsyncClient, body: bytes, token: str) -> httpx.Response:
    return await http.post(
        "/graphql",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("query($f: Int) { sessions(first: $f) { edges { cursor } } }", {"f": 2147483648}),
        ("query($f: Int) { sessions(first: $f) { edges { cursor } } }", {"f": "1"}),
        ("query($f: Int) { sessions(first: $f) { edges { cursor } } }", {"f": 1.5}),
        ("query($c: Channel) { sessions(channel: $c) { edges { cursor } } }", {"c": "web"}),
        ("query($s: String!) { session(sessionId: $s) { sessionId } }", {}),
        ("query($s: String!) { session(sessionId: $s) { sessionId } }", {"s": 5}),
        ("query($i: ID!) { node(id: $i) { id } }", {"i": True}),
        (
            "mutation($u: UUID) { upsertSession(input: {userId: $u}) { id } }",
            {"u": 12},
        ),
        (
            "mutation($i: SendMessageInput!) { sendMessage(input: $i) { reply { id } } }",
            {"i": {"content": "x", "bogus": 1}},
        ),
        (
            "mutation($i: SendMessageInput!) { sendMessage(input: $i) { reply { id } } }",
            {"i": "not an object"},
        ),
    ],
)
async def test_variables_of_the_wrong_type_are_bad_input(
    graphql: GraphQLClient, person: Person, query: str, variables: dict
) -> None:
    result = await graphql(query, variables, token=person.token)
    assert result.codes and set(result.codes) == {"BAD_USER_INPUT"}, result.errors
    assert "Internal server error" not in str(result.errors)


async def test_session_ids_that_cannot_exist_are_simply_missing(
    graphql: GraphQLClient, person: Person
) -> None:
    for bad in ("a\x00b", "abc\n", "x" * 100_000):
        one = await graphql(
            "query($s: String!) { session(sessionId: $s) { sessionId } }",
            {"s": bad},
            token=person.token,
        )
        assert one.data == {"session": None} and one.errors is None
        page = await graphql(
            "query($s: String!) { messages(sessionId: $s) { edges { cursor } } }",
            {"s": bad},
            token=person.token,
        )
        assert page.codes == ["NOT_FOUND"]
        assert bad not in page.errors[0]["message"]  # ids are not echoed back
    created = await graphql(
        'mutation { upsertSession(input: {sessionId: "abc\\n"}) { id } }', token=person.token
    )
    assert created.codes == ["BAD_USER_INPUT"]


async def test_cursors_and_ids_with_non_ascii_digits_are_refused(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    session = await make_session(pool, person.user_id)
    await add_messages(pool, session.session_id, 3)
    for digits in ("²", "¹", "①", "٣"):
        cursor = base64.urlsafe_b64encode(f"m1:{digits}".encode()).decode()
        page = await graphql(
            "query($s: String!, $b: String) { messages(sessionId: $s, before: $b) { edges { cursor } } }",
            {"s": session.session_id, "b": cursor},
            token=person.token,
        )
        assert page.codes == ["BAD_USER_INPUT"], digits
        global_id = base64.b64encode(f"ChatMessage:{digits}".encode()).decode()
        node = await graphql(
            "query($i: ID!) { node(id: $i) { id } }", {"i": global_id}, token=person.token
        )
        assert node.data == {"node": None} and node.errors is None, digits


async def test_node_of_an_abstract_type_is_null(graphql: GraphQLClient, person: Person) -> None:
    for name in ("Node:1", "PageInfo:1"):
        global_id = base64.b64encode(name.encode()).decode()
        result = await graphql(
            "query($i: ID!) { node(id: $i) { id } }", {"i": global_id}, token=person.token
        )
        assert "INTERNAL_SERVER_ERROR" not in result.codes, result.errors
        assert result.data in ({"node": None}, None)


@pytest.mark.parametrize(
    "body",
    [
        b"null",
        b"5",
        b'"a string"',
        b'{"query": "\xff\xfe"}',
        b'{"query": "{ __typename }", "variables": {"s": "\\ud800"}}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=["null", "number", "string", "invalid-utf8", "lone-surrogate", "deep-nesting"],
)
async def test_malformed_bodies_are_refused_with_400(
    http: httpx.AsyncClient, person: Person, body: bytes
) -> None:
    response = await _post_raw(http, body, person.token)
    assert response.status_code == 400, response.text


async def test_bodies_over_a_mebibyte_are_refused_with_413(
    http: httpx.AsyncClient, person: Person
) -> None:
    padding = "x" * (1024 * 1024)
    body = f'{{"query": "{{ __typename }}", "variables": {{"pad": "{padding}"}}}}'.encode()
    response = await _post_raw(http, body, person.token)
    assert response.status_code == 413

    async def chunks():  # no Content-Length: counted as it streams
        for _ in range(20):
            yield b" " * 100_000

    streamed = await http.post(
        "/graphql",
        content=chunks(),
        headers={"Authorization": f"Bearer {person.token}", "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413
    fine = await _post_raw(http, b'{"query": "{ __typename }"}', person.token)
    assert fine.json() == {"data": {"__typename": "Query"}}
