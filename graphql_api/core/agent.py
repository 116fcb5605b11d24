"""The agent is a plug-in point: given a session's history and the new message, return the reply.

An agent that can also `stream` yields the reply in pieces as it is written; the turn shows
those to live subscribers (REPLY_PROGRESS) and stores the whole text once it is complete.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import httpx
from httpx_sse import SSEError, aconnect_sse

from .models import Role
from .settings import Settings


class AgentError(Exception):
    """The agent could not produce a reply. The message is safe to show the session's owner."""


@dataclass(frozen=True, slots=True)
class ChatTurn:
    role: Role
    content: str


class Agent(Protocol):
    async def reply(self, history: Sequence[ChatTurn], message: str, *, agent_name: str) -> str: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class StreamingAgent(Agent, Protocol):
    def stream(
        self, history: Sequence[ChatTurn], message: str, *, agent_name: str
    ) -> AsyncIterator[str]:
        """The reply in pieces, in order; joined, they are the whole reply."""
        ...


class EchoAgent:
    """Deterministic local agent for development and tests: it repeats the message back,
    streamed word by word, `word_delay` seconds apart (ECHO_WORD_DELAY, 0 by default)."""

    word_delay = 0.0  # also for subclasses that do not call __init__

    def __init__(self, word_delay: float = 0.0) -> None:
        self.word_delay = word_delay

    async def reply(self, history: Sequence[ChatTurn], message: str, *, agent_name: str) -> str:
        earlier = sum(1 for turn in history if turn.role is Role.USER)
        return f"[{agent_name}] You said: {message} (message {earlier + 1} in this session)"

    async def stream(
        self, history: Sequence[ChatTurn], message: str, *, agent_name: str
    ) -> AsyncIterator[str]:
        text = await self.reply(history, message, agent_name=agent_name)
        words = text.split(" ")
        for n, word in enumerate(words):
            if n and self.word_delay:
                await asyncio.sleep(self.word_delay)
            yield word if n == 0 else " " + word

    async def aclose(self) -> None:
        return None


class OpenAICompatibleAgent:
    """Chat-completions client for OpenAI, Ollama, vLLM, llama.cpp server and the like."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._model = model
        self._client = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )

    def _messages(
        self, history: Sequence[ChatTurn], message: str, agent_name: str
    ) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": f"You are {agent_name}."}]
        messages += [
            {"role": turn.role.value, "content": turn.content}
            for turn in history
            if turn.role in (Role.USER, Role.ASSISTANT, Role.SYSTEM)
        ]
        messages.append({"role": "user", "content": message})
        return messages

    async def stream(
        self, history: Sequence[ChatTurn], message: str, *, agent_name: str
    ) -> AsyncIterator[str]:
        """Chat completions with `stream: true`: server-sent events of content deltas."""
        body = {
            "model": self._model,
            "messages": self._messages(history, message, agent_name),
            "stream": True,
        }
        wrote = False
        try:
            async with aconnect_sse(self._client, "POST", "/chat/completions", json=body) as sse:
                if sse.response.status_code != 200:
                    raise AgentError(f"the agent answered HTTP {sse.response.status_code}")
                async for event in sse.aiter_sse():
                    if event.data.strip() == "[DONE]":
                        break
                    piece = _delta(event.data)
                    if piece:
                        wrote = True
                        yield piece
        except (httpx.HTTPError, SSEError) as exc:
            raise AgentError(f"the agent could not be reached ({type(exc).__name__})") from exc
        if not wrote:
            raise AgentError("the agent's answer was empty")

    async def reply(self, history: Sequence[ChatTurn], message: str, *, agent_name: str) -> str:
        messages = self._messages(history, message, agent_name)
        try:
            response = await self._client.post(
                "/chat/completions", json={"model": self._model, "messages": messages}
            )
        except httpx.HTTPError as exc:
            raise AgentError(f"the agent could not be reached ({type(exc).__name__})") from exc
        if response.status_code != 200:
            raise AgentError(f"the agent answered HTTP {response.status_code}")
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise AgentError("the agent's answer was not a chat completion") from exc
        if not isinstance(content, str) or not content.strip():
            raise AgentError("the agent's answer was empty")
        return content

    async def aclose(self) -> None:
        await self._client.aclose()


def _delta(data: str) -> str | None:
    """The content piece of one streamed chat-completion chunk."""
    try:
        chunk: Any = json.loads(data)
        piece = chunk["choices"][0]["delta"].get("content")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise AgentError("the agent's stream was not chat-completion chunks") from exc
    return piece if isinstance(piece, str) else None


def build_agent(settings: Settings) -> Agent:
    if settings.agent_backend == "openai":
        return OpenAICompatibleAgent(
            base_url=settings.openai_base_url,
            model=settings.openai_model,
            api_key=str(settings.openai_api_key) if settings.openai_api_key else None,
            timeout=settings.agent_timeout,
        )
    return EchoAgent(word_delay=settings.echo_word_delay)
