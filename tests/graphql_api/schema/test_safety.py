"""Limits, masking, identity and the production switch, checked over real HTTP."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import jwt
import pytest

from graphql_api.app import create_app
from graphql_api.core.db import create_pool
from graphql_api.core.runtime import Resources
from graphql_api.core.settings import Settings
from tests.conftest import TEST_JWT_SECRET, GraphQLClient, Person, running_server

# Depth is checked on the document itself, before (and besides) type validation.
TOO_DEEP = "{ sessions { edges { node { messages { edges { node { a { b { c { d { e { f { g } } } } } } } } } } } } }"


async def _post(http: httpx.AsyncClient, body: object, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await http.post("/graphql", json=body, headers=headers)


async def test_query_depth_aliases_and_tokens_are_limited(
    http: httpx.AsyncClient, person: Person
) -> None:
    deep = (await _post(http, {"query": TOO_DEEP}, person.token)).json()
    assert any("exceeds maximum operation depth" in e["message"] for e in deep["errors"])
    assert {e["extensions"]["code"] for e in deep["errors"]} == {"BAD_USER_INPUT"}

    aliases = " ".join(f"a{n}: __typename" for n in range(21))
    too_many = (await _post(http, {"query": "{ " + aliases + " }"})).json()
    assert "aliases" in too_many["errors"][0]["message"]

    tokens = (await _post(http, {"query": "{ " + "__typename " * 2100 + "}"})).json()
    assert "token" in tokens["errors"][0]["message"].lower()

    fine = (await _post(http, {"query": "{ __typename }"})).json()
    assert fine == {"data": {"__typename": "Query"}}


async def test_batched_requests_are_refused(http: httpx.AsyncClient, person: Person) -> None:
    response = await _post(
        http, [{"query": "{ __typename }"}, {"query": "{ __typename }"}], person.token
    )
    assert response.status_code == 400


async def test_document_errors_carry_a_code(http: httpx.AsyncClient, person: Person) -> None:
    for query in ("{ sessions {", "{ noSuchField }", 'query { sessions(first: "x") { edges } }'):
        body = (await _post(http, {"query": query}, person.token)).json()
        assert body["errors"], query
        assert all(e["extensions"]["code"] == "BAD_USER_INPUT" for e in body["errors"]), body


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda user: "not.a.jwt", id="garbage"),
        pytest.param(
            lambda user: jwt.encode(
                {
                    "sub": user,
                    "role": "authenticated",
                    "aud": "authenticated",
                    "exp": int(time.time()) - 10,
                },
                TEST_JWT_SECRET,
                algorithm="HS256",
            ),
            id="expired",
        ),
        pytest.param(
            lambda user: jwt.encode(
                {
                    "sub": user,
                    "role": "authenticated",
                    "aud": "authenticated",
                    "exp": int(time.time()) + 60,
                },
                "another-secret-entirely-0123456789",
                algorithm="HS256",
            ),
            id="wrong-secret",
        ),
        pytest.param(
            lambda user: jwt.encode(
                {
                    "sub": user,
                    "role": "authenticated",
                    "aud": "somebody-else",
                    "exp": int(time.time()) + 60,
                },
                TEST_JWT_SECRET,
                algorithm="HS256",
            ),
            id="wrong-audience",
        ),
        pytest.param(
            lambda user: jwt.encode(
                {
                    "sub": user,
                    "role": "superuser",
                    "aud": "authenticated",
                    "exp": int(time.time()) + 60,
                },
                TEST_JWT_SECRET,
                algorithm="HS256",
            ),
            id="unknown-role",
        ),
        pytest.param(
            lambda user: (
                base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
                + "."
                + base64.urlsafe_b64encode(
                    f'{{"sub":"{user}","role":"service_role","aud":"authenticated",'
                    f'"exp":{int(time.time()) + 60}}}'.encode()
                )
                .decode()
                .rstrip("=")
                + "."
            ),
            id="alg-none",
        ),
    ],
)
async def test_bad_tokens_are_unauthenticated(graphql: GraphQLClient, make_token) -> None:
    result = await graphql("{ sessions { edges { cursor } } }", token=make_token(str(uuid.uuid4())))
    assert result.codes == ["UNAUTHENTICATED"]


async def test_a_malformed_authorization_header_is_unauthenticated(
    http: httpx.AsyncClient, person: Person
) -> None:
    response = await http.post(
        "/graphql",
        json={"query": "{ sessions { edges { cursor } } }"},
        headers={"Authorization": f"Token {person.token}"},
    )
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.fixture
async def app_without_database(settings: Settings, resources: Resources) -> AsyncIterator[str]:
    """The app whose pool has gone away: every database call fails unexpectedly."""
    dead_pool = await create_pool(settings.require_database_url(), min_size=0, max_size=1)
    await dead_pool.close()
    async with running_server(create_app(settings, replace(resources, pool=dead_pool))) as url:
        yield url


async def test_unexpected_errors_are_masked(app_without_database: str, person: Person) -> None:
    async with httpx.AsyncClient(base_url=app_without_database) as http:
        response = await _post(http, {"query": "{ sessions { edges { cursor } } }"}, person.token)
        health = await http.get("/healthz")
    body = response.json()
    assert body["errors"][0]["message"] == "Internal server error"
    assert body["errors"][0]["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    text = response.text.lower()
    for leak in ("pool", "asyncpg", "select", "traceback", "chat_sessions"):
        assert leak not in text
    assert health.status_code == 503
    assert health.json()["database"] == "unreachable"


async def test_introspection_and_graphiql_are_on_for_development(
    http: httpx.AsyncClient,
) -> None:
    ide = await http.get("/graphql", headers={"Accept": "text/html"})
    assert ide.status_code == 200 and "graphiql" in ide.text.lower()
    schema = (await _post(http, {"query": "{ __schema { queryType { name } } }"})).json()
    assert schema == {"data": {"__schema": {"queryType": {"name": "Query"}}}}


@pytest.fixture
async def production_url(settings: Settings, resources: Resources) -> AsyncIterator[str]:
    production = replace(settings, graphql_dev_tools=False)
    async with running_server(
        create_app(production, replace(resources, settings=production))
    ) as url:
        yield url


async def test_one_setting_turns_introspection_graphiql_and_suggestions_off(
    production_url: str, person: Person
) -> None:
    async with httpx.AsyncClient(base_url=production_url) as http:
        ide = await http.get("/graphql", headers={"Accept": "text/html"})
        schema = (await _post(http, {"query": "{ __schema { queryType { name } } }"})).json()
        typo = (
            await _post(http, {"query": "{ sesions { edges { cursor } } }"}, person.token)
        ).json()
        works = (
            await _post(http, {"query": "{ sessions { edges { cursor } } }"}, person.token)
        ).json()
    assert "graphiql" not in ide.text.lower()
    assert schema["errors"] and schema.get("data") is None
    assert "Did you mean" not in typo["errors"][0]["message"]
    assert works == {"data": {"sessions": {"edges": []}}}
