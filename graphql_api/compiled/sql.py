"""SQL that builds a GraphQL response in PostgreSQL, field for field as the reference resolvers
(graphql_api/schema/types.py, sessions.py) answer.

Each covered type has one builder that turns its collected selections into a `json_build_object`
over a row alias; nested fields are correlated subqueries over the same indexes the resolvers'
statements use. Values the database cannot compute (cursor bindings: blake2b; page sizes and
positions: validated in Python first) arrive as parameters, written here as named markers that
`Statement` numbers ($1, $2, ...) when a root field's pieces are joined.

Formats match Strawberry's output exactly:
- DateTime: `datetime.isoformat()` of the UTC value (microseconds only when non-zero);
- Relay ids: standard base64 of "<Type>:<id>"; cursors: pagination.Keyset's base64url text;
- enums: the GraphQL name; a stored value no enum member has raises a runtime error in the
  statement (division by zero), so the request falls back to the reference executor, which
  reports it the way it reports any unexpected value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from graphql import FragmentDefinitionNode

from ..core.models import Role
from ..core.reads import UNREAD_CAP
from .selection import NotCompilable, Selection, collect

MAX_BIGINT = 2**63 - 1
MAX_KEYS = 50  # json_build_object takes at most 100 arguments
_MARKER = re.compile(r"\x00([^\x00]+)\x00")


def quote(text: str) -> str:
    """A SQL string literal of a GraphQL name or a fixed word (no quotes inside)."""
    if "'" in text or "\\" in text or "\x00" in text:
        raise NotCompilable("literal")
    return f"'{text}'"


def iso(value: str) -> str:
    """`datetime.isoformat()` of a timestamptz, as Python prints the UTC value: six digits of
    fraction, none when the microseconds are 0 (one `to_char`, then the empty fraction cut)."""
    utc = f"({value} AT TIME ZONE 'UTC')"
    return f"(replace(to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), '.000000', '') || '+00:00')"


def global_id(type_name: str, node_id: str) -> str:
    text = f"convert_to({quote(type_name + ':')} || {node_id}, 'UTF8')"
    return f"replace(encode({text}, 'base64'), E'\\n', '')"


def base64url(text: str) -> str:
    return f"rtrim(translate(encode(convert_to({text}, 'UTF8'), 'base64'), E'+/\\n', '-_'), '=')"


def enum(value: str, names: Iterable[tuple[str, str]]) -> str:
    """The GraphQL name of a stored enum value; an unknown one fails the statement."""
    cases = " ".join(f"WHEN {quote(stored)} THEN {quote(name)}" for stored, name in names)
    return f"(CASE {value} {cases} ELSE (1 / (length({value}) - length({value})))::text END)"


def role(message: str) -> str:
    """models.role_of: LangChain's `type`; anything else is SYSTEM."""
    types = {"human": Role.USER, "ai": Role.ASSISTANT, "system": Role.SYSTEM, "tool": Role.TOOL}
    cases = " ".join(f"WHEN {quote(t)} THEN {quote(r.name)}" for t, r in types.items())
    return f"(CASE {message} ->> 'type' {cases} ELSE 'SYSTEM' END)"


def content(message: str) -> str:
    """models.content_of: data.content when a string, else its parts' texts joined."""
    value = f"({message} -> 'data' -> 'content')"
    return (
        f"(CASE jsonb_typeof({value}) WHEN 'string' THEN {value} #>> '{{}}' "
        f"WHEN 'array' THEN coalesce((SELECT string_agg(CASE WHEN jsonb_typeof(p) = 'string' "
        f"THEN p #>> '{{}}' WHEN jsonb_typeof(p -> 'text') = 'string' THEN p ->> 'text' END, '' "
        f"ORDER BY n) FROM jsonb_array_elements({value}) WITH ORDINALITY AS e(p, n)), '') "
        f"ELSE '' END)"
    )


def obj(pairs: list[tuple[str, str]]) -> str:
    if len(pairs) > MAX_KEYS:
        raise NotCompilable("too many keys")
    return "json_build_object(" + ", ".join(f"{quote(k)}, {v}" for k, v in pairs) + ")"


@dataclass(frozen=True)
class PageArgs:
    """A `ChatSession.messages` selection: its arguments are checked per request. `session_id`
    names the parameter holding its session's id when that is known before the statement runs
    (the root `session(sessionId:)`), else None: then it may not ask for cursors."""

    slot: str
    args: dict[str, Any]
    session_id: str | None


@dataclass
class Builder:
    """Builds one root field's SQL; records the nested pages whose arguments need checking."""

    slot: str  # this root field's parameter prefix
    fragments: dict[str, FragmentDefinitionNode]
    channels: tuple[tuple[str, str], ...]  # (stored name, GraphQL name)
    pages: list[PageArgs] = field(default_factory=list)
    _aliases: int = 0

    def alias(self, prefix: str) -> str:
        self._aliases += 1
        return f"{prefix}{self._aliases}"

    def param(self, name: str, pgtype: str) -> str:
        return f"\x00{self.slot}{name}\x00::{pgtype}"

    def viewer(self) -> str:
        return "\x00viewer\x00::uuid"

    def fields(self, selection: Selection, type_name: str) -> list[Selection]:
        if not selection.sets:
            raise NotCompilable("object without selections")
        return collect(selection.sets, type_name, self.fragments)

    def each(
        self,
        selections: list[Selection],
        type_name: str,
        columns: dict[str, str],
        nested: dict[str, Callable[[Selection], str]],
    ) -> str:
        pairs = []
        for s in selections:
            if s.name == "__typename":
                pairs.append((s.key, quote(type_name)))
            elif s.name in columns:
                pairs.append((s.key, columns[s.name]))
            elif s.name in nested:
                pairs.append((s.key, nested[s.name](s)))
            else:
                raise NotCompilable(f"{type_name}.{s.name}")
        return obj(pairs)

    # --- ChatSession -----------------------------------------------------------------------

    def session(self, selection: Selection, s: str, *, session_id: str | None = None) -> str:
        columns = {
            "id": global_id("ChatSession", f"{s}.id::text"),
            "sessionId": f"{s}.session_id",
            "channel": enum(f"{s}.channel", self.channels),
            "agentName": f"{s}.agent_name",
            "isActive": f"{s}.is_active",
            "createdAt": iso(f"{s}.created_at"),
            "updatedAt": iso(f"{s}.updated_at"),
            "lastError": f"{s}.last_error",
            "lastErrorAt": iso(f"{s}.last_error_at"),
            "title": f"{s}.title",
            "archivedAt": iso(f"{s}.archived_at"),
            "unreadCount": self.unread_count(s),
        }
        nested = {
            "lastMessage": lambda f: self.last_message(f, s),
            "messages": lambda f: self.session_messages(f, s, session_id),
        }
        return self.each(self.fields(selection, "ChatSession"), "ChatSession", columns, nested)

    def unread_count(self, s: str) -> str:
        """reads.unread_counts for one session."""
        return (
            f"(SELECT count(*) FROM (SELECT 1 FROM chat_message_history h WHERE h.session_id = "
            f"{s}.session_id AND h.id > coalesce((SELECT r.last_read_id FROM session_read_marks r "
            f"WHERE r.user_id = {self.viewer()} AND r.session_id = {s}.session_id), 0) AND "
            f"h.message ->> 'type' IS DISTINCT FROM 'human' LIMIT {UNREAD_CAP}) AS unread)"
        )

    def last_message(self, selection: Selection, s: str) -> str:
        m = self.alias("m")
        return (
            f"(SELECT {self.message(selection, m, f'{s}.channel')} FROM chat_message_history {m} "
            f"WHERE {m}.session_id = {s}.session_id ORDER BY {m}.id DESC LIMIT 1)"
        )

    def session_messages(self, selection: Selection, s: str, session_id: str | None) -> str:
        slot = f"p{len(self.pages)}."
        self.pages.append(PageArgs(self.slot + slot, selection.args, session_id))
        binding = self.param(slot + "binding", "text") if session_id is not None else None
        return self.message_page(
            selection,
            s,
            limit=self.param(slot + "limit", "int"),
            fetch=self.param(slot + "fetch", "int"),
            before=self.param(slot + "before", "bigint"),
            binding=binding,
        )

    # --- ChatMessage and its page ------------------------------------------------------------

    def message(self, selection: Selection, m: str, session_channel: str) -> str:
        columns = {
            "id": global_id("ChatMessage", f"{m}.id::text"),
            "role": role(f"{m}.message"),
            "content": content(f"{m}.message"),
            "createdAt": iso(f"{m}.created_at"),
            "via": enum(f"coalesce({m}.via, {session_channel})", self.channels),
        }
        nested = {"deliveries": lambda f: self.deliveries(f, m)}
        return self.each(self.fields(selection, "ChatMessage"), "ChatMessage", columns, nested)

    def deliveries(self, selection: Selection, m: str) -> str:
        d = self.alias("d")
        statuses = (("pending", "PENDING"), ("sent", "SENT"), ("failed", "FAILED"))
        columns = {
            "channel": enum(f"{d}.channel", self.channels),
            "status": enum(f"{d}.status", statuses),
            "attempts": f"{d}.attempts",
            "lastError": f"{d}.last_error",
            "sentAt": iso(f"{d}.sent_at"),
        }
        item = self.each(self.fields(selection, "Delivery"), "Delivery", columns, {})
        return (
            f"(SELECT coalesce(json_agg({item} ORDER BY {d}.id), '[]'::json) "
            f"FROM message_deliveries {d} WHERE {d}.message_id = {m}.id)"
        )

    def message_page(
        self,
        selection: Selection,
        s: str,
        *,
        limit: str,
        fetch: str,
        before: str,
        binding: str | None,
    ) -> str:
        """ChatMessageConnection.from_page: `limit` messages older than `before` (NULL: the
        newest), oldest to newest, fetched as `fetch` = limit + 1 newest-first rows."""
        p = self.alias("p")
        kept = f"FILTER (WHERE {p}.rn <= {limit})"

        def cursor(message_id: str) -> str:
            if binding is None:
                raise NotCompilable("message cursors outside session(sessionId:)")
            return base64url(f"'m1:' || {binding} || ':' || ({message_id})::text")

        def edges(f: Selection) -> str:
            edge = self.each(
                self.fields(f, "ChatMessageEdge"),
                "ChatMessageEdge",
                {},
                {
                    "cursor": lambda _: cursor(f"{p}.id"),
                    "node": lambda n: self.message(n, p, f"{s}.channel"),
                },
            )
            return f"coalesce(json_agg({edge} ORDER BY {p}.id) {kept}, '[]'::json)"

        page_info = {
            "hasNextPage": f"({before} IS NOT NULL)",
            "hasPreviousPage": f"(count(*) > {limit})",
        }
        cursors = {
            "startCursor": lambda _: cursor(f"min({p}.id) {kept}"),
            "endCursor": lambda _: cursor(f"max({p}.id) {kept}"),
        }
        connection = self.each(
            self.fields(selection, "ChatMessageConnection"),
            "ChatMessageConnection",
            {},
            {
                "edges": edges,
                "pageInfo": lambda f: self.each(
                    self.fields(f, "PageInfo"), "PageInfo", page_info, cursors
                ),
            },
        )
        # GROUP BY (): one row, aggregates or not, rows or not.
        return (
            f"(SELECT {connection} FROM (SELECT h.id, h.message, h.created_at, h.via, "
            f"row_number() OVER (ORDER BY h.id DESC) AS rn FROM chat_message_history h "
            f"WHERE h.session_id = {s}.session_id AND h.id < coalesce({before}, {MAX_BIGINT}) "
            f"ORDER BY h.id DESC LIMIT {fetch}) AS {p} GROUP BY ())"
        )

    # --- the viewer's sessions ---------------------------------------------------------------

    def session_page(
        self, selection: Selection, *, channel: bool, after: bool, archived: bool
    ) -> str:
        """Query.sessions: sessions.list_sessions' statement, one row more than the page."""
        conditions = [
            f"s.user_id = {self.viewer()}",
            f"s.archived_at IS {'NOT ' if archived else ''}NULL",
        ]
        if channel:
            conditions.append(f"s.channel = {self.param('channel', 'text')}")
        if after:
            conditions.append(
                f"(s.updated_at, s.id) < ({self.param('after_at', 'timestamptz')}, "
                f"{self.param('after_id', 'uuid')})"
            )
        limit, binding = self.param("limit", "int"), self.param("binding", "text")
        p = self.alias("e")
        kept = f"FILTER (WHERE {p}.rn <= {limit})"
        # Each row's cursor, computed once in the page's rows (PostgreSQL drops it when unused).
        row_cursor = base64url(
            f"'s1:' || {binding} || ':' || {iso('s.updated_at')} || '|' || s.id::text"
        )
        cursor = f"{p}.cursor"

        def edges(f: Selection) -> str:
            edge = self.each(
                self.fields(f, "ChatSessionEdge"),
                "ChatSessionEdge",
                {"cursor": cursor},
                {"node": lambda n: self.session(n, p)},
            )
            return f"coalesce(json_agg({edge} ORDER BY {p}.rn) {kept}, '[]'::json)"

        page_info = {
            "hasNextPage": f"(count(*) > {limit})",
            "hasPreviousPage": "true" if after else "false",
            "startCursor": f"(array_agg({cursor} ORDER BY {p}.rn) {kept})[1]",
            "endCursor": f"(array_agg({cursor} ORDER BY {p}.rn DESC) {kept})[1]",
        }
        connection = self.each(
            self.fields(selection, "ChatSessionConnection"),
            "ChatSessionConnection",
            {},
            {
                "edges": edges,
                "pageInfo": lambda f: self.each(
                    self.fields(f, "PageInfo"), "PageInfo", page_info, {}
                ),
            },
        )
        return (
            f"(SELECT {connection} FROM (SELECT s.*, {row_cursor} AS cursor, row_number() OVER "
            f"(ORDER BY s.updated_at DESC, s.id DESC) AS rn FROM (SELECT * FROM chat_sessions s "
            f"WHERE {' AND '.join(conditions)} ORDER BY s.updated_at DESC, s.id DESC LIMIT "
            f"{self.param('fetch', 'int')}) AS s) AS {p} GROUP BY ())"
        )


@dataclass(frozen=True)
class Statement:
    """One statement: the root fields' pieces as columns, markers numbered in order."""

    sql: str
    slots: tuple[str, ...]

    @classmethod
    def of(cls, pieces: Iterable[str]) -> Statement:
        slots: dict[str, int] = {}

        def number(match: re.Match[str]) -> str:
            return f"${slots.setdefault(match[1], len(slots) + 1)}"

        columns = ", ".join(f"({piece})::text" for piece in pieces)
        return cls(_MARKER.sub(number, f"SELECT {columns}"), tuple(slots))

    def args(self, values: dict[str, Any]) -> list[Any]:
        return [values[slot] for slot in self.slots]
