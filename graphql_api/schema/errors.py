"""Every error leaves with `extensions.code`; anything unexpected leaves masked."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql.error import GraphQLError
from strawberry.extensions import MaskErrors, ParserCache
from strawberry.relay.types import GlobalIDValueError

from ..core.errors import DomainError

log = logging.getLogger("graphql_api.errors")

MASKED_MESSAGE = "Internal server error"


class ErrorCodes(MaskErrors):
    def __init__(self) -> None:
        super().__init__(error_message=MASKED_MESSAGE)

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return [self._with_code(error) for error in errors]

    def _with_code(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if isinstance(original, DomainError):
            extensions = {"code": original.code}
            if getattr(original, "field", None):
                extensions["field"] = original.field  # type: ignore[attr-defined]
            return self._copy(error, original.message, extensions)
        if isinstance(original, GlobalIDValueError):
            return self._copy(error, "id is not a valid global id", {"code": "BAD_USER_INPUT"})
        if original is None or error.path is None:
            # Parse, validation and variable-coercion errors come before any resolver runs
            # (no path): the request itself is at fault, and graphql-core's message says how.
            return self._copy(error, error.message, {"code": "BAD_USER_INPUT"})
        log.error("unexpected error in %s", error.path, exc_info=original)
        return self._copy(error, MASKED_MESSAGE, {"code": "INTERNAL_SERVER_ERROR"})

    @staticmethod
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


class ReportingParserCache(ParserCache):
    """ParserCache that lets a syntax error reach the error codes.

    Strawberry's ParserCache raises a syntax error from inside the parsing hook, which skips
    every extension's post-processing (the error would leave without a code). On failure this
    leaves the document unset, so Strawberry parses again and reports the error normally.
    """

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        try:
            context.graphql_document = self.cached_parse_document(
                context.query, **context.parse_options
            )
        except GraphQLError:
            context.graphql_document = None
        yield
