"""Rows as the domain functions return them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any


class Role(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL = "tool"


# LangChain's message `type` <-> our role.
_ROLE_BY_TYPE = {"human": Role.USER, "ai": Role.ASSISTANT, "system": Role.SYSTEM, "tool": Role.TOOL}
TYPE_BY_ROLE = {role: type_ for type_, role in _ROLE_BY_TYPE.items()}


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A row of chat_sessions; its fields are the columns, named alike (SESSION_COLUMNS)."""

    id: uuid.UUID
    user_id: uuid.UUID
    chat_id: uuid.UUID
    session_id: str
    channel: str  # a channel's name: graphql_api.core.channels
    agent_name: str
    is_active: bool
    created_at: datetime
    updated_at: datetime
    last_error: str | None
    last_error_at: datetime | None
    title: str | None  # from the first message, or renameSession
    archived_at: datetime | None

    @classmethod
    def from_record(cls, record: Any) -> SessionRow:
        return cls(*(record[name] for name in _SESSION_FIELDS))


_SESSION_FIELDS = tuple(f.name for f in fields(SessionRow))
SESSION_COLUMNS = ", ".join(_SESSION_FIELDS)


@dataclass(frozen=True, slots=True)
class MessageRow:
    id: int
    session_id: str
    role: Role
    content: str
    created_at: datetime
    via: str | None = None  # the door it came in by; None: its session's own channel

    @classmethod
    def from_record(cls, record: Any) -> MessageRow:
        message = record["message"]
        return cls(
            id=record["id"],
            session_id=record["session_id"],
            role=role_of(message),
            content=content_of(message),
            created_at=record["created_at"],
            via=record.get("via"),
        )


MESSAGE_COLUMNS = "id, session_id, message, created_at, via"


def parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def role_of(message: Any) -> Role:
    type_ = message.get("type") if isinstance(message, dict) else None
    return _ROLE_BY_TYPE.get(type_, Role.SYSTEM) if isinstance(type_, str) else Role.SYSTEM


def content_of(message: Any) -> str:
    """Text of a LangChain message: content is a string or a list of parts."""
    if not isinstance(message, dict):
        return ""
    data = message.get("data")
    content = data.get("content") if isinstance(data, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return "".join(texts)
    return ""


def langchain_message(role: Role, content: str) -> dict[str, Any]:
    type_ = TYPE_BY_ROLE[role]
    return {"type": type_, "data": {"type": type_, "content": content}}
