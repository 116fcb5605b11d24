"""The Strawberry schema, assembled from one Query and one Mutation part per feature module."""

from __future__ import annotations

from collections.abc import Callable

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxTokensLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.tools import merge_types

from .errors import ErrorCodes, ReportingParserCache
from .limits import (
    MAX_ALIASES,
    MAX_DEPTH,
    MAX_TOKENS,
    DocumentLimitsRule,
    ProductionDocumentLimitsRule,
)
from .schedules import ScheduleMutation, ScheduleQuery
from .sessions import SessionMutation, SessionQuery
from .telegram import TelegramMutation, TelegramQuery
from .types import ChatMessage, ChatSession

QUERY_PARTS: tuple[type, ...] = (SessionQuery, TelegramQuery, ScheduleQuery)
MUTATION_PARTS: tuple[type, ...] = (SessionMutation, TelegramMutation, ScheduleMutation)

__all__ = ["MAX_ALIASES", "MAX_DEPTH", "MAX_TOKENS", "build_schema"]


class Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: object = None) -> None:
        """Strawberry logs every error, the client's own mistakes included, at ERROR level.
        ErrorCodes logs the unexpected ones with their traceback; the rest are not ours."""


def build_schema(*, dev_tools: bool = True) -> strawberry.Schema:
    """dev_tools=False is production: no introspection and no "Did you mean" suggestions."""
    # Extensions are factories: a fresh one per request. The parser and validation caches are
    # module-level LRU caches, shared by every request. The validation cache is keyed by the
    # rule classes too, so the limit rule is one class defined once (graphql_api.schema.limits),
    # never a class made per request.
    limits = DocumentLimitsRule if dev_tools else ProductionDocumentLimitsRule
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: ErrorCodes(hide_suggestions=not dev_tools),
        lambda: AddValidationRules([limits]),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        ReportingParserCache,
        lambda: ValidationCache(maxsize=512),
    ]
    if not dev_tools:
        extensions.append(DisableIntrospection)
    return Schema(
        query=merge_types("Query", QUERY_PARTS),
        mutation=merge_types("Mutation", MUTATION_PARTS),
        types=[ChatSession, ChatMessage],
        extensions=extensions,
    )
