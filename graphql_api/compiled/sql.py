"""SQL that builds a GraphQL response in PostgreSQL, field for field as the reference resolvers
(graphql_api/schema/types.py, sessions.py) answer.

Each covered type has one builder that turns its collected selections into the JSON text of an
object over a row alias (its values printed by `expressions`); nested fields are correlated
subqueries over the same indexes the resolvers' statements use.

Values the database cannot compute (a cursor's head, `Keyset.cursor_head`: its binding is a
blake2b hash; page sizes and positions: validated in Python first) arrive as parameters, written
here as named markers that `Statement` numbers ($1, $2, ...) when a root field's pieces are
joined.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from graphql import FragmentDefinitionNode

from ..core.reads import UNREAD_CAP
from .expressions import (
    MAX_BIGINT,
    array,
    base64url,
    base64url_digits,
    boolean,
    content,
    cursor,
    enum,
    global_id,
    iso,
    json_name,
    obj,
    plain,
    quote,
    required,
    role,
    string,
)
from .selection import NotCompilable, Selection, collect

_MARKER = re.compile(r"\x00([^\x00]+)\x00")


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
                pairs.append((s.key, quote(json_name(type_name))))
            elif s.name in columns:
                pairs.append((s.key, columns[s.name]))
            elif s.name in nested:
                pairs.append((s.key, nested[s.name](s)))
            else:
                raise NotCompilable(f"{type_name}.{s.name}")
        return obj(pairs)

    # --- ChatSession -----------------------------------------------------------------------

    def session(
        self,
        selection: Selection,
        s: str,
        *,
        session_id: str | None = None,
        updated_at: str | None = None,
    ) -> str:
        """`updated_at`: the row's updatedAt text when the row source has it already."""
        columns = {
            "id": plain(global_id("ChatSession", f"{s}.id::text")),
            "sessionId": required(string(f"{s}.session_id"), f"{s}.id::text"),  # may be NULL
            "channel": enum(f"{s}.channel", self.channels),
            "agentName": string(f"{s}.agent_name"),
            "isActive": boolean(f"{s}.is_active"),
            "createdAt": plain(iso(f"{s}.created_at")),
            "updatedAt": plain(updated_at or iso(f"{s}.updated_at")),
            "lastError": string(f"{s}.last_error"),
            "lastErrorAt": plain(iso(f"{s}.last_error_at")),
            "title": string(f"{s}.title"),
            "archivedAt": plain(iso(f"{s}.archived_at")),
            "unreadCount": self.unread_count(s),
        }
        nested = {
            "lastMessage": lambda f: self.last_message(f, s),
            "messages": lambda f: self.session_messages(f, s, session_id),
        }
        selections = self.fields(selection, "ChatSession")
        if sum(f.name == "unreadCount" for f in selections) > 1:
            # Each alias would count again (the reference's loader counts once per session).
            raise NotCompilable("unreadCount asked for twice")
        return self.each(selections, "ChatSession", columns, nested)

    def unread_count(self, s: str) -> str:
        """reads.unread_counts for one session."""
        return (
            f"(SELECT count(*)::text FROM (SELECT 1 FROM chat_message_history h WHERE "
            f"h.session_id = {s}.session_id AND h.id > coalesce((SELECT r.last_read_id FROM "
            f"session_read_marks r WHERE r.user_id = {self.viewer()} AND "
            f"r.session_id = {s}.session_id), 0) AND "
            f"h.message ->> 'type' IS DISTINCT FROM 'human' LIMIT {UNREAD_CAP}) AS unread)"
        )

    def last_message(self, selection: Selection, s: str) -> str:
        m = self.alias("m")
        return (
            f"(SELECT {self.message(selection, m, f'{s}.channel')} FROM chat_message_history {m} "
            f"WHERE {m}.session_id = {s}.session_id AND {m}.id < {MAX_BIGINT} "
            f"ORDER BY {m}.id DESC LIMIT 1)"
        )

    def session_messages(self, selection: Selection, s: str, session_id: str | None) -> str:
        slot = f"p{len(self.pages)}."
        self.pages.append(PageArgs(self.slot + slot, selection.args, session_id))
        head = self.param(slot + "head", "text") if session_id is not None else None
        return self.message_page(
            selection,
            s,
            limit=self.param(slot + "limit", "int"),
            fetch=self.param(slot + "fetch", "int"),
            before=self.param(slot + "before", "bigint"),
            head=head,
        )

    # --- ChatMessage and its page ------------------------------------------------------------

    def message(self, selection: Selection, m: str, session_channel: str) -> str:
        columns = {
            "id": plain(global_id("ChatMessage", f"{m}.id::text")),
            "role": role(f"{m}.message"),
            "content": content(f"{m}.message"),
            "createdAt": plain(iso(f"{m}.created_at")),
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
            "attempts": f"({d}.attempts)::text",
            "lastError": string(f"{d}.last_error"),
            "sentAt": plain(iso(f"{d}.sent_at")),
        }
        item = self.each(self.fields(selection, "Delivery"), "Delivery", columns, {})
        return (
            f"(SELECT {array(item, f'{d}.id')} FROM message_deliveries {d} "
            f"WHERE {d}.message_id = {m}.id)"
        )

    def message_page(
        self,
        selection: Selection,
        s: str,
        *,
        limit: str,
        fetch: str,
        before: str,
        head: str | None,
    ) -> str:
        """ChatMessageConnection.from_page: `limit` messages older than `before` (NULL: the
        newest), oldest to newest, fetched as `fetch` = limit + 1 newest-first rows."""
        p = self.alias("p")
        kept = f"FILTER (WHERE {p}.rn <= {limit})"

        def message_cursor(message_id: str) -> str:
            if head is None:
                raise NotCompilable("message cursors outside session(sessionId:)")
            return cursor(head, base64url_digits(message_id))

        def edges(f: Selection) -> str:
            edge = self.each(
                self.fields(f, "ChatMessageEdge"),
                "ChatMessageEdge",
                {},
                {
                    "cursor": lambda _: message_cursor(f"{p}.id"),
                    "node": lambda n: self.message(n, p, f"{s}.channel"),
                },
            )
            return array(edge, f"{p}.id", kept)

        page_info = {
            "hasNextPage": boolean(f"{before} IS NOT NULL"),
            "hasPreviousPage": boolean(f"count(*) > {limit}"),
        }
        cursors = {
            "startCursor": lambda _: message_cursor(f"min({p}.id) {kept}"),
            "endCursor": lambda _: message_cursor(f"max({p}.id) {kept}"),
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
        limit, head = self.param("limit", "int"), self.param("head", "text")
        p = self.alias("e")
        kept = f"FILTER (WHERE {p}.rn <= {limit})"
        # Each row's updatedAt text and cursor, computed once in the page's rows (PostgreSQL
        # drops them when unused).
        row_cursor = cursor(head, base64url("s.updated_iso || '|' || s.id::text"))
        edge_cursor = f"{p}.cursor"

        def edges(f: Selection) -> str:
            edge = self.each(
                self.fields(f, "ChatSessionEdge"),
                "ChatSessionEdge",
                {"cursor": edge_cursor},
                {"node": lambda n: self.session(n, p, updated_at=f"{p}.updated_iso")},
            )
            return array(edge, f"{p}.rn", kept)

        page_info = {
            "hasNextPage": boolean(f"count(*) > {limit}"),
            "hasPreviousPage": "'true'" if after else "'false'",
            # The first and the last kept row's cursor, picked without sorting (max of one).
            "startCursor": f"max({edge_cursor}) FILTER (WHERE {p}.rn = 1)",
            "endCursor": f"max({edge_cursor}) FILTER (WHERE {p}.rn = {limit} "
            f"OR ({p}.rn < {limit} AND {p}.last_row))",
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
            f"(SELECT {connection} FROM (SELECT s.*, {row_cursor} AS cursor, row_number() OVER w "
            f"AS rn, lead(s.id) OVER w IS NULL AS last_row FROM (SELECT *, "
            f"{iso('s.updated_at')} AS updated_iso FROM chat_sessions s WHERE "
            f"{' AND '.join(conditions)} ORDER BY s.updated_at DESC, s.id DESC LIMIT "
            f"{self.param('fetch', 'int')}) AS s "
            f"WINDOW w AS (ORDER BY s.updated_at DESC, s.id DESC)) AS {p} GROUP BY ())"
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

        # As UTF-8 bytes (bytea): the response is sent as it comes, not decoded into a str and
        # encoded again (~40 us for 40 KB of Cyrillic text).
        columns = ", ".join(f"convert_to(({piece})::text, 'UTF8')" for piece in pieces)
        return cls(_MARKER.sub(number, f"SELECT {columns}"), tuple(slots))

    def args(self, values: dict[str, Any]) -> list[Any]:
        return [values[slot] for slot in self.slots]
