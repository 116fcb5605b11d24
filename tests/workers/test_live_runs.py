"""A scheduled run, written by a real arq worker, reaches the person's live subscriptions."""

from __future__ import annotations

import asyncio

from graphql_api.core.agent import EchoAgent
from tests.conftest import GraphQLClient, make_person
from tests.graphql_api.schema.test_live import MESSAGE_EVENTS, SESSION_EVENTS, Subscription

from .conftest import Workers, unreachable_agent


def ws_of(api: GraphQLClient) -> str:
    return api.url.replace("http://", "ws://")


async def test_a_scheduled_run_appears_live_with_its_messages(
    workers: Workers, schedules_api: GraphQLClient
) -> None:
    owner = make_person()
    schedule = await workers.create(owner.user_id, prompt="Morning briefing")
    await workers.make_due(schedule.id)
    sessions = Subscription(ws_of(schedules_api), owner.token, SESSION_EVENTS, {"c": "SCHEDULED"})
    task = asyncio.create_task(sessions.run())
    try:
        await asyncio.sleep(0.3)
        await workers.burst(EchoAgent())
        created = (await sessions.next())["sessionEvents"]
        assert created["kind"] == "CREATED"
        assert created["session"]["channel"] == "SCHEDULED"
        [row] = await workers.sessions_of(schedule.agent_name)
        assert created["sessionId"] == row["session_id"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    # A subscriber of this run's session hears nothing of another schedule's run.
    history = Subscription(
        ws_of(schedules_api), owner.token, MESSAGE_EVENTS, {"s": row["session_id"]}
    )
    task = asyncio.create_task(history.run())
    try:
        await asyncio.sleep(0.3)
        failing = await workers.create(owner.user_id)  # a second run: new rows in another session
        await workers.make_due(failing.id)
        await workers.burst(unreachable_agent())
        await asyncio.sleep(0.5)
        assert history.received.empty()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
