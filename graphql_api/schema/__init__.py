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
from strawberry.extensions.max_aliases import create_validator as aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from .errors import ErrorCodes, ReportingParserCache
from .schedules import ScheduleMutation, ScheduleQuery
from .sessions import SessionMutation, SessionQuery
from .telegram import TelegramMutation, TelegramQuery
from .types import ChatMessage, ChatSession

QUERY_PARTS: tuple[type, ...] = (SessionQuery, TelegramQuery, ScheduleQuery)
MUTATION_PARTS: tuple[type, ...] = (SessionMutation, TelegramMutation, ScheduleMutation)

MAX_DEPTH = 10
MAX_ALIASES = 20
MAX_TOKENS = 2_000


class Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: object = None) -> None:
        """Strawberry logs every error, the client's own mistakes included, at ERROR level.
        ErrorCodes logs the unexpected ones with their traceback; the rest are not ours."""


def build_schema(*, dev_tools: bool = True) -> strawberry.Schema:
    """dev_tools=False is production: no introspection and no field suggestions."""
    # Extensions are factories: a fresh one per request. The parser and validation caches are
    # module-level LRU caches inside Strawberry, shared by every request. The validation cache
    # is keyed by the rule classes too, so the limit rules are created once here and reused:
    # QueryDepthLimiter/MaxAliasesLimiter would make new rule classes on every request.
    limit_rules = [
        depth_rule(MAX_DEPTH, None, None),
        aliases_rule(MAX_ALIASES),
    ]
    extensions: list[Callable[[], SchemaExtension]] = [
        ErrorCodes,
        lambda: AddValidationRules(limit_rules),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: ReportingParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
    ]
    if not dev_tools:
        extensions.append(DisableIntrospection)
    return Schema(
        query=merge_types("Query", QUERY_PARTS),
        mutation=merge_types("Mutation", MUTATION_PARTS),
        types=[ChatSession, ChatMessage],
        extensions=extensions,
        config=StrawberryConfig(disable_field_suggestions=not dev_tools),
    )
