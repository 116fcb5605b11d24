"""The Strawberry schema: the sessions part, then each channel's Query, Mutation and types."""

from __future__ import annotations

from collections.abc import Callable, Iterable

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

from ..core.channels import Channel, SchemaPart
from .errors import ErrorCodes, ReportingParserCache
from .limits import (
    MAX_ALIASES,
    MAX_DEPTH,
    MAX_TOKENS,
    DocumentLimitsRule,
    ProductionDocumentLimitsRule,
)
from .live import LiveMutation, LiveSubscription
from .search import SEARCH
from .sessions import SessionMutation, SessionQuery
from .types import ChatMessage, ChatSession

SESSIONS = SchemaPart(
    query=SessionQuery, mutation=SessionMutation, types=(ChatSession, ChatMessage)
)
LIVE = SchemaPart(mutation=LiveMutation, subscription=LiveSubscription)

__all__ = ["MAX_ALIASES", "MAX_DEPTH", "MAX_TOKENS", "build_schema"]


class Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: object = None) -> None:
        """Strawberry logs every error, the client's own mistakes included, at ERROR level.
        ErrorCodes logs the unexpected ones with their traceback; the rest are not ours."""


def build_schema(channels: Iterable[Channel], *, dev_tools: bool = True) -> strawberry.Schema:
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
    parts = [SESSIONS, LIVE, SEARCH, *(channel.schema() for channel in channels)]
    subscriptions = tuple(p.subscription for p in parts if p.subscription)
    return Schema(
        query=merge_types("Query", tuple(p.query for p in parts if p.query)),
        mutation=merge_types("Mutation", tuple(p.mutation for p in parts if p.mutation)),
        subscription=merge_types("Subscription", subscriptions) if subscriptions else None,
        types=[t for p in parts for t in p.types],
        extensions=extensions,
    )
