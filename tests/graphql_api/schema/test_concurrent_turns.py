"""The pool does not bound how many turns a process runs: no connection waits on the agent.

(scripts/bench_turns.py runs the issue's figure: 1,000 turns, 2-second agent, DB_POOL_MAX=20.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

import httpx

from graphql_api.app import create_app
from graphql_api.core.agent import ChatTurn
from graphql_api.core.db import create_pool
from graphql_api.core.runtime import Resources
from graphql_api.core.settings import Settings
from tests.conftest import make_person, running_server

TURNS = 150
POOL_MAX = 5
AGENT_SECONDS = 2.0


class TwoSecondAgent:
    """Answers after AGENT_SECONDS and records how many of its calls overlap."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0

    async def reply(self, history: Sequence[ChatTurn], message: str, *, agent_name: str) -> str:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(AGENT_SECONDS)
        finally:
            self.running -= 1
        return "done: " + message

    async def aclose(self) -> None:
        return None


async def test_many_turns_in_many_sessions_run_at_once_on_a_few_connections(
    settings: Settings, resources: Resources
) -> None:
    small = replace(settings, db_pool_max=POOL_MAX)
    pool = await create_pool(small.require_database_url(), max_size=POOL_MAX)
    agent = TwoSecondAgent()
    app = create_app(small, Resources(settings=small, pool=pool, agent=agent))
    person = make_person()
    send = "mutation($c: String!) { sendMessage(input: {content: $c}) { reply { content } } }"
    try:
        async with (
            running_server(app) as url,
            httpx.AsyncClient(
                base_url=url,
                timeout=120,
                limits=httpx.Limits(max_connections=TURNS),
                headers={"Authorization": f"Bearer {person.token}"},
            ) as client,
        ):

            async def one(n: int) -> str:
                answer = await client.post(
                    "/graphql", json={"query": send, "variables": {"c": f"turn {n}"}}
                )
                return answer.json()["data"]["sendMessage"]["reply"]["content"]

            replies = await asyncio.gather(*(one(n) for n in range(TURNS)))
        assert replies == [f"done: turn {n}" for n in range(TURNS)]
        # Far more turns were waiting on the agent together than there are connections.
        assert agent.peak > 20 * POOL_MAX, agent.peak
        sessions = await pool.fetchval(
            "SELECT count(*) FROM chat_sessions WHERE user_id = $1", person.user_id
        )
        assert sessions == TURNS
    finally:
        await pool.close()
