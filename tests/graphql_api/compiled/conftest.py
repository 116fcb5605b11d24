"""Two servers on one database: the compiled path (the suite's `server_url`) and the reference
(COMPILED_EXECUTION off); `differ` sends one request to both and compares the answers."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from graphql_api.app import create_app
from graphql_api.compiled import CompiledQueries
from graphql_api.core.runtime import Resources
from graphql_api.core.settings import Settings
from tests.conftest import running_server


@dataclass
class Answers:
    compiled: Any
    reference: Any
    compiled_served: bool  # the compiled path answered (not its fallback)


class Differ:
    """Sends a request to both servers; the bodies and statuses must be identical, keys in
    the same order (compared as JSON text after parsing)."""

    def __init__(self, compiled: httpx.AsyncClient, reference: httpx.AsyncClient, plans: Any):
        self.compiled, self.reference, self.plans = compiled, reference, plans

    async def __call__(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        operation_name: str | None = None,
    ) -> Answers:
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        if operation_name is not None:
            body["operationName"] = operation_name
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        before = self.plans.served["compiled"]
        fast = await self.compiled.post("/graphql", json=body, headers=headers)
        served = self.plans.served["compiled"] > before
        slow = await self.reference.post("/graphql", json=body, headers=headers)
        assert fast.status_code == slow.status_code, (fast.text, slow.text)
        if not slow.headers.get("content-type", "").startswith("application/json"):
            assert fast.text == slow.text  # a refusal before GraphQL (e.g. 400 text)
            return Answers(fast.text, slow.text, served)
        a, b = fast.json(), slow.json()
        assert json.dumps(a) == json.dumps(b), f"compiled:\n{a}\nreference:\n{b}"
        return Answers(a, b, served)


@pytest.fixture(scope="session")
async def reference_url(settings: Settings, resources: Resources) -> AsyncIterator[str]:
    reference = dataclasses.replace(settings, compiled_execution=False)
    async with running_server(create_app(reference, resources)) as url:
        yield url


@pytest.fixture(scope="session")
async def compiled_app(settings: Settings, resources: Resources) -> AsyncIterator[Any]:
    app = create_app(settings, resources)
    assert isinstance(app.state.compiled, CompiledQueries)
    async with running_server(app) as url:
        yield url, app.state.compiled


@pytest.fixture
async def differ(compiled_app: Any, reference_url: str) -> AsyncIterator[Differ]:
    url, plans = compiled_app
    async with (
        httpx.AsyncClient(base_url=url, timeout=30) as fast,
        httpx.AsyncClient(base_url=reference_url, timeout=30) as slow,
    ):
        yield Differ(fast, slow, plans)
