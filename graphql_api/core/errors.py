"""Domain errors. Each carries the GraphQL `extensions.code` it is reported with."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import MessageRow


class DomainError(Exception):
    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


class Forbidden(DomainError):
    code = "FORBIDDEN"


class NotFound(DomainError):
    code = "NOT_FOUND"


class BadInput(DomainError):
    code = "BAD_USER_INPUT"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ServiceUnavailable(DomainError):
    """A server the request needs (Redis, for runScheduleNow) did not answer. Nothing was done;
    the same request can be sent again."""

    code = "SERVICE_UNAVAILABLE"


class AgentFailed(DomainError):
    """The agent could not answer. The person's message is stored and the failure recorded."""

    code = "AGENT_FAILED"

    def __init__(self, message: str, *, user_message: MessageRow | None = None) -> None:
        super().__init__(message)
        self.user_message = user_message  # the person's stored message
