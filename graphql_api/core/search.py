"""Full-text search over a person's messages of every channel (db/migrations/*_search.sql).

A search is one statement: the GIN index on `search_vector` intersects the query's lexemes with
the viewer's owner lexeme, so only the viewer's matching rows are read; they come newest first
(created_at, then id) in keyset pages. The query is PostgreSQL's `websearch_to_tsquery` syntax
("quoted phrases", -exclusion, OR), stemmed by the configured text-search configuration.

Snippets come from `ts_headline` over the matching message's text, at most `SNIPPET_FRAGMENTS`
fragments. They are HTML: the text is escaped and the matches are wrapped in <mark>...</mark>,
the only tags a snippet ever holds, so a client may insert it as HTML as it is.
"""

from __future__ import annotations

import html
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from .db import Executor
from .errors import BadInput
from .models import MESSAGE_COLUMNS, SESSION_COLUMNS, MessageRow, SessionRow
from .settings import SettingsError

log = logging.getLogger(__name__)

MAX_QUERY_LENGTH = 256
SNIPPET_FRAGMENTS = 2
SNIPPET_WORDS = 18
# A query matching much of a person's history (a common word, "-word") is answered from their
# newest messages, walked newest first (the (user_id, created_at, id) index) and matched one by
# one: when this many hold a full page of matches, those are the newest. Only a query with fewer
# matches among them goes to the GIN index (whose row estimate is poor for common words: it
# would collect and sort every match). Either way one statement, bounded work for common words.
RECENT_WALK = 2000
_HEADLINE_INPUT_CHARS = 50_000  # ts_headline reads at most this much of a message
# ts_headline marks matches with two private-use characters, removed from the text beforehand;
# escaping then turns them into the only tags.
_START, _STOP = "\ue000", "\ue001"
_HEADLINE_OPTIONS = (
    f"StartSel={_START}, StopSel={_STOP}, MaxFragments={SNIPPET_FRAGMENTS}, "
    f'MaxWords={SNIPPET_WORDS}, MinWords=5, FragmentDelimiter=" … "'
)


@dataclass(frozen=True)
class SearchFilter:
    query: str
    channel: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


@dataclass(frozen=True)
class SearchKey:
    """Keyset position in the newest-first order of hits."""

    created_at: datetime
    id: int


@dataclass(frozen=True)
class SearchHit:
    message: MessageRow
    snippet: str


def validate_filter(spec: SearchFilter) -> SearchFilter:
    query = spec.query.strip()
    if not query:
        raise BadInput("query must not be empty", field="query")
    if len(query) > MAX_QUERY_LENGTH:
        raise BadInput(f"query must be at most {MAX_QUERY_LENGTH} characters", field="query")
    if "\x00" in query:
        raise BadInput("query must not contain NUL characters", field="query")
    if spec.since is not None and spec.until is not None and spec.since >= spec.until:
        raise BadInput("until must be later than since", field="until")
    return SearchFilter(query, spec.channel, spec.since, spec.until)


def render_snippet(headline: str) -> str:
    """ts_headline's output as HTML: escaped text, matches in <mark>."""
    escaped = html.escape(headline, quote=False)
    return escaped.replace(_START, "<mark>").replace(_STOP, "</mark>")


def _search_sql(spec: SearchFilter, after: SearchKey | None) -> tuple[str, list[object]]:
    """The page query's WHERE conditions after the fixed ones ($1 config, $2 query, $3 viewer),
    only those the filter uses (so each variant keeps its own index-friendly plan)."""
    conditions: list[str] = []
    args: list[object] = []

    def arg(value: object) -> str:
        args.append(value)
        return f"${len(args) + 3}"

    if spec.channel is not None:
        conditions.append(f"s.channel = {arg(spec.channel)}")
    if spec.since is not None:
        conditions.append(f"m.created_at >= {arg(spec.since)}")
    if spec.until is not None:
        conditions.append(f"m.created_at < {arg(spec.until)}")
    if after is not None:
        conditions.append(f"(m.created_at, m.id) < ({arg(after.created_at)}, {arg(after.id)})")
    window = "".join(f" AND {c}" for c in conditions if not c.startswith("s.channel"))
    channel = "".join(f" AND {c}" for c in conditions if c.startswith("s.channel"))
    walk = arg(RECENT_WALK)
    options = arg(_HEADLINE_OPTIONS)
    limit = arg(None)  # the last argument: search_messages sets it
    columns = ", ".join("m." + c.strip() for c in MESSAGE_COLUMNS.split(","))
    # A query of stop words only has no node: without the check, `&&` would leave the owner term
    # alone, matching all of the person's messages.
    matches = (
        "m.search_vector @@ (websearch_to_tsquery($1::regconfig, $2) && us_owner_query($3)) "
        "AND numnode(websearch_to_tsquery($1::regconfig, $2)) > 0"
    )
    sql = f"""
        WITH recent AS (  -- the person's newest messages (in the window), matched one by one
            SELECT {columns}
              FROM (SELECT * FROM chat_message_history m
                     WHERE m.user_id = $3{window}
                     ORDER BY m.created_at DESC, m.id DESC
                     LIMIT {walk}) m
              JOIN chat_sessions s ON s.session_id = m.session_id AND s.user_id = $3
             WHERE {matches}{channel}
             ORDER BY m.created_at DESC, m.id DESC
             LIMIT {limit}
        ), page AS (
            SELECT * FROM recent WHERE (SELECT count(*) FROM recent) >= {limit}
            UNION ALL
            SELECT * FROM (  -- too few among them: every match, through the GIN index
                SELECT {columns}
                  FROM chat_message_history m
                  JOIN chat_sessions s ON s.session_id = m.session_id AND s.user_id = $3
                 WHERE {matches}
                   AND m.user_id = $3{window}{channel}
                 ORDER BY m.created_at DESC, m.id DESC
                 LIMIT {limit}
            ) everything
             WHERE (SELECT count(*) FROM recent) < {limit}
        )
        SELECT {MESSAGE_COLUMNS},
               ts_headline($1::regconfig,
                           translate(left(us_message_text(message), {_HEADLINE_INPUT_CHARS}),
                                     '{_START}{_STOP}', ''),
                           websearch_to_tsquery($1::regconfig, $2),
                           {options}) AS headline
          FROM page
         ORDER BY created_at DESC, id DESC
    """
    return sql, args


async def search_messages(
    db: Executor,
    user_id: uuid.UUID,
    spec: SearchFilter,
    *,
    config: str,
    limit: int,
    after: SearchKey | None = None,
) -> list[SearchHit]:
    """Up to `limit` of the person's messages matching `spec`, newest first, after `after`.
    A query of stop words only ("the") matches nothing."""
    spec = validate_filter(spec)
    sql, args = _search_sql(spec, after)
    args[-1] = limit
    records = await db.fetch(sql, config, spec.query, user_id, *args)
    return [
        SearchHit(MessageRow.from_record(r), render_snippet(r["headline"] or "")) for r in records
    ]


async def check_language(db: Executor, language: str) -> None:
    """SEARCH_LANGUAGE must exist and be the configuration the stored vectors were built with
    (search_settings): otherwise queries would be stemmed differently from the index."""
    try:
        wanted = await db.fetchval("SELECT $1::regconfig::text", language)
        built = await db.fetchval("SELECT config::regconfig::text FROM search_settings")
    except asyncpg.UndefinedObjectError:
        raise SettingsError(
            f"SEARCH_LANGUAGE {language!r} is no text-search configuration"
        ) from None
    except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError):
        # The API starts while the database is away (/healthz says so); searches will fail.
        log.warning("the database did not answer: SEARCH_LANGUAGE was not checked")
        return
    if wanted != built:
        raise SettingsError(
            f"SEARCH_LANGUAGE is {language!r} but the search index is built with "
            f"{built!r}: set SEARCH_LANGUAGE={built} or rebuild it with "
            f"SELECT us_search_reconfigure('{language}')"
        )


async def sessions_of(
    db: Executor, user_id: uuid.UUID, session_ids: Sequence[str]
) -> list[SessionRow]:
    """The person's sessions among `session_ids` (the sessions of a page of hits)."""
    records = await db.fetch(
        f"SELECT {SESSION_COLUMNS} FROM chat_sessions "
        "WHERE session_id = ANY($1::text[]) AND user_id = $2",
        list(session_ids),
        user_id,
    )
    return [SessionRow.from_record(r) for r in records]
