"""The agents' streaming: the echo agent word by word, the OpenAI-compatible one over SSE from
a chat-completions stand-in served over real HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from graphql_api.core.agent import AgentError, ChatTurn, EchoAgent, OpenAICompatibleAgent
from graphql_api.core.models import Role
from tests.conftest import running_server


def chunk(content: str | None) -> str:
    delta = {} if content is None else {"content": content}
    return "data: " + json.dumps({"choices": [{"index": 0, "delta": delta}]}) + "\n\n"


def completions_stand_in() -> tuple[Starlette, list[dict[str, object]]]:
    """POST /chat/completions as OpenAI answers it; the last message's text picks a behaviour."""
    seen: list[dict[str, object]] = []

    async def completions(request: Request) -> Response:
        body = await request.json()
        seen.append(body)
        said = body["messages"][-1]["content"]
        if said == "fail":
            return JSONResponse({"error": "nope"}, status_code=503)
        if not body.get("stream"):
            return JSONResponse({"choices": [{"message": {"content": "whole: " + said}}]})
        if said == "garbage":
            pieces = ["data: {not json\n\n"]
        elif said == "nothing":
            pieces = [chunk(None), "data: [DONE]\n\n"]
        else:
            pieces = [chunk(None), *(chunk(w) for w in ["Hel", "lo ", said]), "data: [DONE]\n\n"]

        async def events() -> AsyncIterator[str]:
            for piece in pieces:
                yield piece

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/chat/completions", completions, methods=["POST"])]), seen


async def collect(stream: AsyncIterator[str]) -> list[str]:
    return [piece async for piece in stream]


async def test_the_openai_compatible_agent_streams_the_deltas_in_order() -> None:
    app, seen = completions_stand_in()
    async with running_server(app) as url:
        agent = OpenAICompatibleAgent(base_url=url, model="m", api_key="k", timeout=5)
        try:
            history = [ChatTurn(Role.USER, "earlier"), ChatTurn(Role.ASSISTANT, "answer")]
            pieces = await collect(agent.stream(history, "world", agent_name="helper"))
            assert pieces == ["Hel", "lo ", "world"]
            assert seen[-1]["stream"] is True
            assert [m["role"] for m in seen[-1]["messages"]] == [  # type: ignore[union-attr]
                "system",
                "user",
                "assistant",
                "user",
            ]
            for said, problem in [
                ("fail", "HTTP 503"),
                ("garbage", "not chat-completion"),
                ("nothing", "empty"),
            ]:
                with pytest.raises(AgentError, match=problem):
                    await collect(agent.stream([], said, agent_name="helper"))
            assert await agent.reply([], "x", agent_name="helper") == "whole: x"
        finally:
            await agent.aclose()


async def test_the_echo_agent_streams_word_by_word_at_its_pace() -> None:
    agent = EchoAgent(word_delay=0.05)
    started = time.monotonic()
    pieces = await collect(agent.stream([], "one two", agent_name="a"))
    assert "".join(pieces) == await agent.reply([], "one two", agent_name="a")
    assert len(pieces) == len("".join(pieces).split(" "))
    assert time.monotonic() - started >= 0.05 * (len(pieces) - 1)
