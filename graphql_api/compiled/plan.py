"""A plan: a validated query operation compiled into one SQL statement per variant.

`compile_plan` walks the operation once. Each root field becomes a `Root` that, per request,
reads its arguments (literals and variables), checks them as the reference resolver would
(page sizes, cursors, global ids), and picks a variant (e.g. with or without `channel:`); the
plan joins the chosen variants' SQL into one statement, cached per variant combination.

Whenever a request would make the reference executor report an error (a bad variable, a page
size out of range, a cursor of another list, someone else's session, no viewer), `run` returns
None and the caller hands the request to Strawberry: errors are never produced here, so they
are exactly the reference's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    ListTypeNode,
    NamedTypeNode,
    NonNullTypeNode,
    OperationDefinitionNode,
    OperationType,
)
from strawberry import relay

from ..core.errors import BadInput
from ..core.models import parse_uuid
from ..core.pagination import page_size
from ..core.sessions import SESSION_ID_PATTERN, SessionKey
from ..schema.sessions import SESSIONS
from ..schema.types import MESSAGES
from .expressions import MAX_BIGINT
from .selection import NotCompilable, Selection, Var, collect, literal
from .sql import Builder, PageArgs, Statement

MISSING: Any = object()  # a variable the request did not give, or an argument left out
_INT_RANGE = range(-(2**31), 2**31)
MAX_VARIANTS = 32  # statements cached per plan (variants multiply with root fields)


class Fallback(Exception):
    """This request goes to the reference executor (it would report an error, or is not
    covered)."""


@dataclass(frozen=True)
class VariableSpec:
    name: str
    type_name: str
    required: bool
    default: Any  # MISSING, or the default's value

    def coerce(self, given: dict[str, Any], channels: dict[str, str]) -> Any:
        """The variable's value, if the request gives it in the plain form of its type; else
        Fallback (graphql-core's coercion reports the error or accepts a looser form)."""
        value = given.get(self.name, MISSING)
        if value is MISSING:
            if self.default is not MISSING:
                return self.default
            if self.required:
                raise Fallback
            return MISSING
        if value is None:
            if self.required:
                raise Fallback
            return None
        kind = self.type_name
        if kind in ("String", "ID") and type(value) is str:
            return value
        if kind == "Int" and type(value) is int and value in _INT_RANGE:
            return value
        if kind == "Boolean" and type(value) is bool:
            return value
        if kind == "Channel" and type(value) is str and value in channels:
            return value
        raise Fallback


def _variable(definition: Any) -> VariableSpec:
    type_node, required = definition.type, False
    if isinstance(type_node, NonNullTypeNode):
        type_node, required = type_node.type, True
    if isinstance(type_node, ListTypeNode) or not isinstance(type_node, NamedTypeNode):
        raise NotCompilable("list variable")
    type_name = type_node.name.value
    if type_name not in ("String", "ID", "Int", "Boolean", "Channel"):
        raise NotCompilable("variable type")
    default = MISSING if definition.default_value is None else literal(definition.default_value)
    if isinstance(default, Var):
        raise NotCompilable("variable default")
    return VariableSpec(definition.variable.name.value, type_name, required, default)


@dataclass
class Request:
    """One request's inputs as a root field reads them."""

    viewer: uuid.UUID
    variables: dict[str, Any]
    channels: dict[str, str]  # GraphQL name -> stored name
    values: dict[str, Any] = field(default_factory=dict)  # statement parameters by slot

    def arg(self, selection: Selection, name: str, default: Any = None) -> Any:
        value = selection.args.get(name, MISSING)
        if isinstance(value, Var):
            value = self.variables.get(value.name, MISSING)
        return default if value is MISSING else value


def _checked(check: Callable[[], Any]) -> Any:
    try:
        return check()
    except BadInput:
        raise Fallback from None


def _possible_session_id(session_id: str) -> str:
    """sessions.get_session finds nothing for an id no session may have (even if such a row
    was stored behind its back): the reference answers."""
    if not SESSION_ID_PATTERN.fullmatch(session_id):
        raise Fallback
    return session_id


def _read_before(cursor: str, session_id: str) -> int:
    return int(_checked(lambda: MESSAGES.read(cursor, (session_id,), "before")[0]))


def _page(request: Request, slot: str, last: Any, before: int | None) -> None:
    limit = _checked(lambda: page_size(last, "last"))
    request.values[slot + "limit"] = limit
    request.values[slot + "fetch"] = limit + 1
    request.values[slot + "before"] = before


def _nested_pages(request: Request, pages: list[PageArgs], session_id: str | None) -> None:
    """Check each ChatSession.messages under this root as load_message_page does."""
    for page in pages:
        selection = Selection("", "messages", page.args)
        before = request.arg(selection, "before")
        before_id = None
        if before is not None:
            if session_id is None:  # a cursor bound to each listed session: not compiled
                raise Fallback
            before_id = _read_before(before, session_id)
        _page(request, page.slot, request.arg(selection, "last"), before_id)
        if page.session_id is not None and session_id is not None:
            request.values[page.slot + "head"] = MESSAGES.cursor_head((session_id,))


class Root:
    """A root field: its variants' SQL, and the per-request choice of one."""

    nullable = False

    def __init__(self, selection: Selection, index: int, make: Callable[[str], Builder]) -> None:
        self.selection, self.slot, self.make = selection, f"r{index}.", make
        self.pages: dict[Any, list[PageArgs]] = {}
        self.sql: dict[Any, str] = {}
        for variant in self.variants():
            self.piece(variant)  # every variant compiles, or the document is not compiled

    def variants(self) -> list[Any]:
        return [None]

    def piece(self, variant: Any) -> str:
        found = self.sql.get(variant)
        if found is None:
            builder = self.make(self.slot)
            found = self.sql[variant] = self.build(builder, variant)
            self.pages[variant] = builder.pages
        return found

    def build(self, builder: Builder, variant: Any) -> str:
        raise NotImplementedError

    def prepare(self, request: Request) -> Any:
        """The variant for this request, with its parameters put in request.values."""
        raise NotImplementedError


class SessionsRoot(Root):
    def variants(self) -> list[Any]:
        return [(c, a, r) for c in (False, True) for a in (False, True) for r in (False, True)]

    def build(self, builder: Builder, variant: Any) -> str:
        channel, after, archived = variant
        return builder.session_page(self.selection, channel=channel, after=after, archived=archived)

    def prepare(self, request: Request) -> Any:
        arg = lambda name: request.arg(self.selection, name)  # noqa: E731
        limit = _checked(lambda: page_size(arg("first"), "first"))
        channel = request.channels[arg("channel")] if arg("channel") is not None else None
        archived = bool(request.arg(self.selection, "archived", False))
        scope: tuple[str, ...] = (str(request.viewer), channel or "*")
        if archived:
            scope += ("archived",)
        after = arg("after")
        values, slot = request.values, self.slot
        if after is not None:
            key = SessionKey(*_checked(lambda: SESSIONS.read(after, scope, "after")))
            values[slot + "after_at"], values[slot + "after_id"] = key.updated_at, key.id
        values[slot + "channel"] = channel
        values[slot + "limit"], values[slot + "fetch"] = limit, limit + 1
        values[slot + "head"] = SESSIONS.cursor_head(scope)
        variant = (channel is not None, after is not None, archived)
        _nested_pages(request, self.pages[variant], None)
        return variant


class SessionRoot(Root):
    nullable = True

    def build(self, builder: Builder, variant: Any) -> str:
        sid = builder.param("session_id", "text")
        return (
            f"SELECT {builder.session(self.selection, 's', session_id=sid)} FROM chat_sessions s "
            f"WHERE s.session_id = {sid} AND s.user_id = {builder.viewer()}"
        )

    def prepare(self, request: Request) -> Any:
        session_id = _possible_session_id(request.arg(self.selection, "sessionId"))
        request.values[self.slot + "session_id"] = session_id
        _nested_pages(request, self.pages[None], session_id)
        return None


class MessagesRoot(Root):
    """Query.messages with last/before: the ownership check folded into the page's statement
    (no row: not the viewer's session, and the reference reports it)."""

    def build(self, builder: Builder, variant: Any) -> str:
        sid = builder.param("session_id", "text")
        page = builder.message_page(
            self.selection,
            "s",
            limit=builder.param("limit", "int"),
            fetch=builder.param("fetch", "int"),
            before=builder.param("before", "bigint"),
            head=builder.param("head", "text"),
        )
        return (
            f"SELECT {page} FROM chat_sessions s "
            f"WHERE s.session_id = {sid} AND s.user_id = {builder.viewer()}"
        )

    def prepare(self, request: Request) -> Any:
        arg = lambda name: request.arg(self.selection, name)  # noqa: E731
        if arg("after") is not None or arg("around") is not None:
            raise Fallback
        session_id, before = _possible_session_id(arg("sessionId")), arg("before")
        before_id = None if before is None else _read_before(before, session_id)
        request.values[self.slot + "session_id"] = session_id
        request.values[self.slot + "head"] = MESSAGES.cursor_head((session_id,))
        _page(request, self.slot, arg("last"), before_id)
        return None


class NodeRoot(Root):
    """Query.node for a ChatSession or ChatMessage id; any other type: the reference."""

    nullable = True

    def variants(self) -> list[Any]:
        return ["ChatSession", "ChatMessage", "none"]

    def build(self, builder: Builder, variant: Any) -> str:
        viewer = builder.viewer()
        if variant == "ChatSession":
            session = builder.session(self.selection, "s")
            return (
                f"SELECT {session} FROM chat_sessions s "
                f"WHERE s.id = {builder.param('id', 'uuid')} AND s.user_id = {viewer}"
            )
        if variant == "ChatMessage":
            message = builder.message(self.selection, "m", "s.channel")
            return (
                f"SELECT {message} FROM chat_message_history m JOIN chat_sessions s "
                f"ON s.session_id = m.session_id "
                f"WHERE m.id = {builder.param('id', 'bigint')} AND s.user_id = {viewer}"
            )
        return "SELECT NULL::text"

    def prepare(self, request: Request) -> Any:
        try:
            gid = relay.GlobalID.from_id(request.arg(self.selection, "id"))
        except Exception:
            raise Fallback from None
        node_id = gid.node_id
        if gid.type_name == "ChatSession":
            found: Any = parse_uuid(node_id)
        elif gid.type_name == "ChatMessage":
            digits = node_id.isascii() and node_id.isdigit() and len(node_id) <= 18
            found = int(node_id) if digits and int(node_id) <= MAX_BIGINT else None
        else:
            raise Fallback
        if found is None:
            return "none"
        request.values[self.slot + "id"] = found
        _nested_pages(request, self.pages[gid.type_name], None)
        return gid.type_name


class TypenameRoot(Root):
    nullable = True

    def build(self, builder: Builder, variant: Any) -> str:
        return "SELECT '\"Query\"'::text"

    def prepare(self, request: Request) -> Any:
        return None


ROOTS: dict[str, type[Root]] = {
    "sessions": SessionsRoot,
    "session": SessionRoot,
    "messages": MessagesRoot,
    "node": NodeRoot,
    "__typename": TypenameRoot,
}


@dataclass
class Plan:
    variables: list[VariableSpec]
    roots: list[Root]
    keys: list[bytes]  # each root field's response key, JSON-encoded
    channels: dict[str, str]
    statements: dict[tuple[Any, ...], Statement] = field(default_factory=dict)

    def statement(self, variants: tuple[Any, ...]) -> Statement:
        found = self.statements.get(variants)
        if found is None:
            found = Statement.of(
                root.piece(v) for root, v in zip(self.roots, variants, strict=True)
            )
            if len(self.statements) < MAX_VARIANTS:
                self.statements[variants] = found
        return found

    def bind(self, viewer: uuid.UUID, variables: dict[str, Any]) -> tuple[Statement, list[Any]]:
        """The statement and its arguments for one request; Fallback if the reference would
        answer anything but data."""
        given = {v.name: v.coerce(variables, self.channels) for v in self.variables}
        request = Request(viewer, given, self.channels, {"viewer": viewer})
        statement = self.statement(tuple(root.prepare(request) for root in self.roots))
        return statement, statement.args(request.values)

    async def run(self, pool: asyncpg.Pool, viewer: uuid.UUID, variables: dict[str, Any]) -> bytes:
        """The response body: {"data": ...}, built by PostgreSQL."""
        statement, args = self.bind(viewer, variables)
        row = await pool.fetchrow(statement.sql, *args)
        parts = []
        for root, key, value in zip(self.roots, self.keys, row or (), strict=True):
            if value is None and not root.nullable:
                raise Fallback
            parts.append(key + b":" + (value if value is not None else b"null"))
        return b'{"data":{' + b",".join(parts) + b"}}"


def compile_plan(
    document: DocumentNode, operation_name: str | None, channels: tuple[str, ...]
) -> Plan:
    """The plan of a document's operation, validated beforehand; NotCompilable outside the
    compiled subset."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    if len(operations) != 1 or operations[0].operation != OperationType.QUERY:
        raise NotCompilable("operation")
    operation = operations[0]
    if operation.directives:
        raise NotCompilable("directives")
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    pairs = tuple((name, name.upper()) for name in channels)
    make = lambda slot: Builder(slot, fragments, pairs)  # noqa: E731
    roots: list[Root] = []
    for index, selection in enumerate(collect([operation.selection_set], "Query", fragments)):
        kind = ROOTS.get(selection.name)
        if kind is None:
            raise NotCompilable(f"Query.{selection.name}")
        roots.append(kind(selection, index, make))
    return Plan(
        variables=[_variable(d) for d in operation.variable_definitions or ()],
        roots=roots,
        keys=[orjson.dumps(root.selection.key) for root in roots],
        channels={name.upper(): name for name in channels},
    )
