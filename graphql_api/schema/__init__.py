"""The Strawberry schema, assembled from one Query and one Mutation part per feature module."""

from __future__ import annotations

from collections.abc import Callable

import strawberry
from strawberry.extensions import (
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from .errors import ErrorCodes
from .sessions import SessionMutation, SessionQuery
from .types import ChatMessage, ChatSession

QUERY_PARTS: tuple[type, ...] = (SessionQuery,)
MUTATION_PARTS: tuple[type, ...] = (SessionMutation,)

MAX_DEPTH = 10
MAX_ALIASES = 20
MAX_TOKENS = 2_000


def build_schema(*, dev_tools: bool = True) -> strawberry.Schema:
    """dev_tools=False is production: no introspection and no field suggestions."""
    # Factories: a fresh extension per request. The parser and validation caches are
    # module-level LRU caches inside Strawberry, shared by every request.
    extensions: list[Callable[[], SchemaExtension]] = [
        ErrorCodes,
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
    ]
    if not dev_tools:
        extensions.append(DisableIntrospection)
    return strawberry.Schema(
        query=merge_types("Query", QUERY_PARTS),
        mutation=merge_types("Mutation", MUTATION_PARTS),
        types=[ChatSession, ChatMessage],
        extensions=extensions,
        config=StrawberryConfig(disable_field_suggestions=not dev_tools),
    )
