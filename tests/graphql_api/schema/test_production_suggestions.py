"""With GRAPHQL_DEV_TOOLS=false no error suggests a name the request did not contain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from graphql_api.app import create_app
from graphql_api.core.runtime import Resources
from graphql_api.core.settings import Settings
from tests.conftest import Person, running_server

# (document, variables, the quoted names graphql-core's "Did you mean" would reveal)
MISTAKES: list[Any] = [
    pytest.param("{ sesions { edges { cursor } } }", None, ["'sessions'"], id="field"),
    pytest.param("{ sessions(frist: 1) { edges { cursor } } }", None, ["'first'"], id="argument"),
    pytest.param(
        "{ sessions(channel: WEBB) { edges { cursor } } }", None, ["'WEB'"], id="enum-literal"
    ),
    pytest.param(
        "query($c: Channel) { sessions(channel: $c) { edges { cursor } } }",
        {"c": "WEBB"},
        ["'WEB'"],
        id="enum-variable",
    ),
    pytest.param(
        "query($c: Chanel) { sessions(channel: $c) { edges { cursor } } }",
        None,
        ["'Channel'"],
        id="variable-type",
    ),
    pytest.param(
        'mutation { upsertSession(input: {sesionId: "x"}) { id } }',
        None,
        ["'sessionId'"],
        id="input-field-literal",
    ),
    pytest.param(
        "mutation($i: SendMessageInput!) { sendMessage(input: $i) { reply { id } } }",
        {"i": {"content": "hello", "sesionId": "x"}},
        ["'sessionId'"],
        id="input-field-variable",
    ),
    pytest.param(
        "{ ...F } fragment F on Quer { __typename }", None, ["'Query'"], id="fragment-type"
    ),
    pytest.param('{ node(id: "x") { sessionId } }', None, ["'ChatSession'"], id="field-on-subtype"),
    pytest.param("{ sessions }", None, ["'sessions { ... }'"], id="missing-selection"),
]


@pytest.fixture
async def production_url(settings: Settings, resources: Resources) -> AsyncIterator[str]:
    production = replace(settings, graphql_dev_tools=False)
    async with running_server(
        create_app(production, replace(resources, settings=production))
    ) as url:
        yield url


async def _errors(
    base_url: str, query: str, variables: dict[str, Any] | None, token: str
) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        response = await http.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
        )
    errors = response.json()["errors"]
    assert {e["extensions"]["code"] for e in errors} == {"BAD_USER_INPUT"}, errors
    return errors


@pytest.mark.parametrize(("query", "variables", "hidden"), MISTAKES)
async def test_production_suggests_nothing(
    production_url: str,
    person: Person,
    query: str,
    variables: dict[str, Any] | None,
    hidden: list[str],
) -> None:
    errors = await _errors(production_url, query, variables, person.token)
    for error in errors:
        assert "Did you mean" not in error["message"], error
        for name in hidden:
            assert name not in error["message"], error


@pytest.mark.parametrize(("query", "variables", "hidden"), MISTAKES)
async def test_development_still_suggests(
    server_url: str,
    person: Person,
    query: str,
    variables: dict[str, Any] | None,
    hidden: list[str],
) -> None:
    errors = await _errors(server_url, query, variables, person.token)
    messages = " ".join(error["message"] for error in errors)
    assert "Did you mean" in messages
    assert all(name in messages for name in hidden), messages


async def test_production_refuses_introspection_before_comparing_its_fields(
    production_url: str, person: Person
) -> None:
    repeated = "{ " + "__schema { types { name } } " * 100 + "}"
    errors = await _errors(production_url, repeated, None, person.token)
    assert [error["message"] for error in errors] == ["GraphQL introspection is disabled"]
