"""Every error leaves with `extensions.code`; anything unexpected leaves masked."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from graphql import DocumentNode, parse
from graphql.error import GraphQLError
from strawberry.extensions import MaskErrors, SchemaExtension
from strawberry.relay.types import GlobalIDValueError

from ..core.errors import DomainError

log = logging.getLogger("graphql_api.errors")

MASKED_MESSAGE = "Internal server error"

# graphql-core appends " Did you mean 'a', 'b', or 'c'?" (also "... the enum value 'X'?",
# "... to use an inline fragment on 'T'?", "... 'f { ... }'?") to validation and
# variable-coercion messages; a GraphQL name never holds a '?', so the sentence ends at the
# first one. graphql-core's own `hide_suggestions` switch would do this at the source, but
# Strawberry (0.341) passes it neither to validate() nor to execute(), where variables are
# coerced; rewriting every outgoing message here covers both, and field suggestions too.
SUGGESTION = re.compile(r" ?Did you mean [^?]*\?")


def _every_error(_: GraphQLError) -> bool:
    return True


class ErrorCodes(MaskErrors):
    """Rewrites every error into the form a client sees, through MaskErrors' public hooks.

    `should_mask_error` says which errors `anonymise_error` rewrites; a non-masked error
    leaves untouched, without a code. So every error is "masked", and `anonymise_error`
    decides what each one keeps: a domain error its message and code, a request error its
    graphql-core message, an unexpected one nothing.
    """

    def __init__(self, *, hide_suggestions: bool = False) -> None:
        super().__init__(should_mask_error=_every_error, error_message=MASKED_MESSAGE)
        self.hide_suggestions = hide_suggestions

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if isinstance(original, DomainError):
            extensions = {"code": original.code}
            if getattr(original, "field", None):
                extensions["field"] = original.field  # type: ignore[attr-defined]
            return _copy(error, original.message, extensions)
        if isinstance(original, GlobalIDValueError):
            return _copy(error, "id is not a valid global id", {"code": "BAD_USER_INPUT"})
        if original is None or error.path is None:
            # Parse, validation and variable-coercion errors come before any resolver runs
            # (no path): the request itself is at fault, and graphql-core's message says how.
            return _copy(error, self._public_message(error.message), {"code": "BAD_USER_INPUT"})
        log.error("unexpected error in %s", error.path, exc_info=original)
        return _copy(error, MASKED_MESSAGE, {"code": "INTERNAL_SERVER_ERROR"})

    def _public_message(self, message: str) -> str:
        return SUGGESTION.sub("", message) if self.hide_suggestions else message


def _copy(error: GraphQLError, message: str, extensions: dict[str, str]) -> GraphQLError:
    return GraphQLError(
        message=message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions=extensions,
    )


@lru_cache(maxsize=512)
def _cached_parse(query: str, options: tuple[tuple[str, Any], ...]) -> DocumentNode:
    return parse(query, **dict(options))


class ReportingParserCache(SchemaExtension):
    """An LRU cache of parsed documents that lets a syntax error reach the error codes.

    Strawberry's ParserCache raises a syntax error from inside the parsing hook, which skips
    every extension's post-processing (the error would leave without a code). On failure this
    leaves the document unset, so Strawberry parses again and reports the error normally.
    Built on public parts only: graphql-core's parse(), and the execution context's query,
    parse_options (where MaxTokensLimiter puts its limit) and graphql_document (Strawberry
    parses only when no extension has set it). Tested with strawberry-graphql 0.341.2.
    """

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query is not None and context.graphql_document is None:
            options = tuple(sorted(context.parse_options.items()))
            try:
                context.graphql_document = _cached_parse(context.query, options)
            except GraphQLError:
                context.graphql_document = None
        yield
