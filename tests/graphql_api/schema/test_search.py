"""Search over GraphQL: syntax, stemming, filters, snippets, pages, scoping, opening at a hit."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import asyncpg

from graphql_api.core.models import Role, langchain_message
from tests.conftest import GraphQLClient, Person, StatementLog, make_person
from tests.graphql_api.seed import add_raw_message, make_session

SEARCH = """
query($q: String!, $channel: Channel, $since: DateTime, $until: DateTime,
      $first: Int, $after: String) {
  search(query: $q, channel: $channel, since: $since, until: $until,
         first: $first, after: $after) {
    edges { cursor node {
      snippet messageCursor
      message { id content }
      session { sessionId channel }
    } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}
"""

AROUND = """
query($s: String!, $around: String, $after: String, $before: String, $last: Int) {
  messages(sessionId: $s, around: $around, after: $after, before: $before, last: $last) {
    edges { cursor node { id content } }
    pageInfo { hasPreviousPage hasNextPage startCursor endCursor }
  }
}
"""


def _db_id(global_id: str) -> int:
    return int(base64.b64decode(global_id).decode().removeprefix("ChatMessage:"))


async def _say(pool: asyncpg.Pool, session_id: str, text: str, role: Role = Role.USER) -> int:
    return await add_raw_message(pool, session_id, langchain_message(role, text))


async def _texts(graphql: GraphQLClient, person: Person, query: str, **variables: object) -> list:
    data = await graphql.ok(SEARCH, {"q": query, **variables}, token=person.token)
    return [edge["node"]["message"]["content"] for edge in data["search"]["edges"]]


async def test_stemming_and_websearch_syntax(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    session = await make_session(pool, person.user_id)
    for text in (
        "She runs every morning",
        "the quick brown fox",
        "a brown dog sleeps",
        "quick thinking",
    ):
        await _say(pool, session.session_id, text)

    assert await _texts(graphql, person, "running") == ["She runs every morning"]
    assert await _texts(graphql, person, '"quick brown"') == ["the quick brown fox"]
    assert await _texts(graphql, person, "brown -fox") == ["a brown dog sleeps"]
    assert sorted(await _texts(graphql, person, "fox or dog")) == [
        "a brown dog sleeps",
        "the quick brown fox",
    ]
    assert await _texts(graphql, person, "the") == []  # stop words only: nothing, not everything


async def test_content_as_a_list_of_parts_is_searchable(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    session = await make_session(pool, person.user_id)
    parts = [
        {"type": "text", "text": "look at this"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        "giraffe photograph",
    ]
    await add_raw_message(pool, session.session_id, {"type": "human", "data": {"content": parts}})

    data = await graphql.ok(SEARCH, {"q": "giraffes"}, token=person.token)
    [hit] = data["search"]["edges"]
    assert "<mark>giraffe</mark>" in hit["node"]["snippet"]


async def test_channel_and_time_filters(
    graphql: GraphQLClient, pool: asyncpg.Pool, service: Person
) -> None:
    person = make_person()
    web = await make_session(pool, person.user_id)
    telegram = await make_session(pool, person.user_id, channel="telegram", session_id="tg-s-1")
    old = await _say(pool, web.session_id, "kayak trip last year")
    await _say(pool, web.session_id, "kayak trip this week")
    await _say(pool, telegram.session_id, "kayak from telegram")
    a_year_ago = datetime.now(UTC) - timedelta(days=365)
    await pool.execute(
        "UPDATE chat_message_history SET created_at = $2 WHERE id = $1", old, a_year_ago
    )

    only_telegram = await _texts(graphql, person, "kayak", channel="TELEGRAM")
    assert only_telegram == ["kayak from telegram"]
    recent = await _texts(
        graphql, person, "kayak", since=(datetime.now(UTC) - timedelta(days=30)).isoformat()
    )
    assert sorted(recent) == ["kayak from telegram", "kayak trip this week"]
    older = await _texts(
        graphql, person, "kayak", until=(datetime.now(UTC) - timedelta(days=30)).isoformat()
    )
    assert older == ["kayak trip last year"]


async def test_snippet_highlights_and_escapes(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    session = await make_session(pool, person.user_id)
    await _say(pool, session.session_id, "the volcano <script>alert(1)</script> & 1 < 2 erupted")

    data = await graphql.ok(SEARCH, {"q": "volcano"}, token=person.token)
    snippet = data["search"]["edges"][0]["node"]["snippet"]
    assert "<mark>volcano</mark>" in snippet
    # ts_headline drops what its parser reads as tags; every other "<" or "&" is escaped.
    assert "<script>" not in snippet and "&amp;" in snippet and "1 &lt; 2" in snippet
    assert snippet.replace("<mark>", "").replace("</mark>", "").count("<") == 0


async def test_snippet_of_a_long_message_is_bounded(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    session = await make_session(pool, person.user_id)
    await _say(pool, session.session_id, "filler words " * 2500 + "needle " + "more text " * 2000)

    data = await graphql.ok(SEARCH, {"q": "needle"}, token=person.token)
    snippet = data["search"]["edges"][0]["node"]["snippet"]
    assert "<mark>needle</mark>" in snippet
    assert len(snippet) < 400


async def test_pages_have_no_duplicates_and_no_gaps(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    session = await make_session(pool, person.user_id)
    ids = [await _say(pool, session.session_id, f"walrus number {n}") for n in range(23)]
    # Equal timestamps: the id breaks the tie.
    await pool.execute(
        "UPDATE chat_message_history SET created_at = now() WHERE id = ANY($1::bigint[])", ids[5:15]
    )

    seen: list[int] = []
    after = None
    pages = 0
    while True:
        data = await graphql.ok(
            SEARCH, {"q": "walrus", "first": 5, "after": after}, token=person.token
        )
        connection = data["search"]
        seen.extend(_db_id(edge["node"]["message"]["id"]) for edge in connection["edges"])
        assert connection["pageInfo"]["hasPreviousPage"] is (after is not None)
        pages += 1
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert pages == 5
    assert sorted(seen) == sorted(ids) and len(set(seen)) == len(ids)
    rows = await pool.fetch(
        "SELECT id FROM chat_message_history WHERE id = ANY($1::bigint[]) "
        "ORDER BY created_at DESC, id DESC",
        ids,
    )
    assert seen == [r["id"] for r in rows]


async def test_bad_input_is_refused(graphql: GraphQLClient, person: Person) -> None:
    for variables in (
        {"q": "   "},
        {"q": "x" * 257},
        {"q": "fine", "first": 101},
        {"q": "fine", "after": "bm90IGEgY3Vyc29y"},
        {"q": "fine", "since": "2025-02-01T00:00:00Z", "until": "2025-01-01T00:00:00Z"},
    ):
        result = await graphql(SEARCH, variables, token=person.token)
        assert result.codes == ["BAD_USER_INPUT"], variables


async def test_a_cursor_of_another_search_is_refused(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    session = await make_session(pool, person.user_id)
    for _ in range(3):
        await _say(pool, session.session_id, "marmot sighting")
    data = await graphql.ok(SEARCH, {"q": "marmot", "first": 1}, token=person.token)
    cursor = data["search"]["pageInfo"]["endCursor"]

    other_query = await graphql(SEARCH, {"q": "sighting", "after": cursor}, token=person.token)
    assert other_query.codes == ["BAD_USER_INPUT"]
    other_person = await graphql(
        SEARCH, {"q": "marmot", "after": cursor}, token=make_person().token
    )
    assert other_person.codes == ["BAD_USER_INPUT"]


async def test_another_persons_messages_are_never_found(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    someone = make_person()
    theirs = await make_session(pool, someone.user_id)
    await _say(pool, theirs.session_id, "platypus secret")
    # Even naming their owner lexeme in one's own message finds only one's own message.
    mine = await make_session(pool, person.user_id)
    await _say(pool, mine.session_id, f"platypus owner {someone.user_id}")

    hits = await _texts(graphql, person, "platypus")
    assert hits == [f"platypus owner {someone.user_id}"]
    assert await _texts(graphql, person, "secret") == []
    assert await _texts(graphql, someone, "platypus") == ["platypus secret"]
    unauthenticated = await graphql(SEARCH, {"q": "platypus"})
    assert unauthenticated.codes == ["UNAUTHENTICATED"]


async def test_message_cursor_opens_the_history_around_the_hit(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    session = await make_session(pool, person.user_id)
    ids = [await _say(pool, session.session_id, f"line {n}") for n in range(30)]
    await pool.execute(
        "UPDATE chat_message_history SET message = $2 WHERE id = $1",
        ids[12],
        langchain_message(Role.ASSISTANT, "the hidden ocelot"),
    )
    data = await graphql.ok(SEARCH, {"q": "ocelot"}, token=person.token)
    [hit] = data["search"]["edges"]
    assert hit["node"]["session"]["sessionId"] == session.session_id

    page = await graphql.ok(
        AROUND,
        {"s": session.session_id, "around": hit["node"]["messageCursor"], "last": 10},
        token=person.token,
    )
    messages = page["messages"]
    got = [_db_id(edge["node"]["id"]) for edge in messages["edges"]]
    assert got == ids[7:17]  # five older, the hit, four newer
    assert messages["pageInfo"]["hasPreviousPage"] is True
    assert messages["pageInfo"]["hasNextPage"] is True

    older = await graphql.ok(
        AROUND,
        {"s": session.session_id, "before": messages["pageInfo"]["startCursor"], "last": 10},
        token=person.token,
    )
    assert [_db_id(e["node"]["id"]) for e in older["messages"]["edges"]] == ids[0:7]
    newer = await graphql.ok(
        AROUND,
        {"s": session.session_id, "after": messages["pageInfo"]["endCursor"], "last": 10},
        token=person.token,
    )
    assert [_db_id(e["node"]["id"]) for e in newer["messages"]["edges"]] == ids[17:27]
    assert newer["messages"]["pageInfo"]["hasNextPage"] is True

    edge = await graphql.ok(
        AROUND,
        {"s": session.session_id, "around": messages["pageInfo"]["endCursor"], "last": 1},
        token=person.token,
    )
    assert [_db_id(e["node"]["id"]) for e in edge["messages"]["edges"]] == [ids[16]]


async def test_around_at_the_ends_and_bad_combinations(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    session = await make_session(pool, person.user_id)
    ids = [await _say(pool, session.session_id, f"end {n}") for n in range(4)]
    data = await graphql.ok(SEARCH, {"q": "end", "first": 4}, token=person.token)
    newest = data["search"]["edges"][0]["node"]["messageCursor"]

    page = await graphql.ok(
        AROUND, {"s": session.session_id, "around": newest, "last": 6}, token=person.token
    )
    assert [_db_id(e["node"]["id"]) for e in page["messages"]["edges"]] == ids
    assert page["messages"]["pageInfo"]["hasPreviousPage"] is False
    assert page["messages"]["pageInfo"]["hasNextPage"] is False

    both = await graphql(
        AROUND, {"s": session.session_id, "around": newest, "before": newest}, token=person.token
    )
    assert both.codes == ["BAD_USER_INPUT"]
    other = await make_session(pool, person.user_id)
    foreign = await graphql(AROUND, {"s": other.session_id, "around": newest}, token=person.token)
    assert foreign.codes == ["BAD_USER_INPUT"]


async def test_a_page_costs_two_statements_whatever_its_size(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person, statement_log: StatementLog
) -> None:
    for n in range(12):
        session = await make_session(pool, person.user_id)
        await _say(pool, session.session_id, f"heron {n}")

    with statement_log.counting() as statements:
        data = await graphql.ok(SEARCH, {"q": "heron", "first": 10}, token=person.token)
    assert len(data["search"]["edges"]) == 10
    assert len(statements) == 2, statements  # the hits, then their sessions
