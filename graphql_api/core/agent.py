"""The agent is a plug-in point: given a session's history and the new message, return the reply."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx

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


class EchoAgent:
    """Deterministic local agent for development and tests: it repeats the message back."""

    async def reply(self, history: Sequence[ChatTurn], message: str, *, agent_name: str) -> str:
        earlier = sum(1 for turn in history if turn.role is Role.USER)
        return f"[{agent_name}] You said: {message} (message {earlier + 1} in this session)"

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

    async def reply(self, history: Sequence[ChatTurn], message: str, *, agent_name: str) -> str:
        messages = [{"role": "system", "content": f"You are {agent_name}."}]
        messages += [
            {"role": turn.role.value, "content": turn.content}
            for turn in history
            if turn.role in (Role.USER, Role.ASSISTANT, Role.SYSTEM)
        ]
        messages.append({"role": "user", "content": message})
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


def build_agent(settings: Settings) -> Agent:
    if settings.agent_backend == "openai":
        return OpenAICompatibleAgent(
            base_url=settings.openai_base_url,
            model=settings.openai_model,
            api_key=str(settings.openai_api_key) if settings.openai_api_key else None,
            timeout=settings.agent_timeout,
        )
    return EchoAgent()
