"""Find, keep, forget (first part): titles from the first message, renameSession, archiving."""

from __future__ import annotations

import asyncpg

from tests.conftest import GraphQLClient, Person, make_person
from tests.graphql_api.seed import make_session

SEND = """mutation($s: String, $c: String!) {
  sendMessage(input: {sessionId: $s, content: $c}) { session { sessionId title } } }"""
RENAME = """mutation($s: String!, $t: String!) {
  renameSession(input: {sessionId: $s, title: $t}) { sessionId title } }"""
ARCHIVE = """mutation($s: String!) { archiveSession(input: {sessionId: $s}) { archivedAt } }"""
UNARCHIVE = """mutation($s: String!) { unarchiveSession(input: {sessionId: $s}) { archivedAt } }"""
LIST = """query($a: Boolean, $first: Int, $after: String) {
  sessions(archived: $a, first: $first, after: $after) {
    edges { node { sessionId } } pageInfo { endCursor } } }"""


async def test_a_session_is_named_by_its_first_message(
    graphql: GraphQLClient, person: Person
) -> None:
    long = "Plan   a\\ttrip " + "to Lisbon and Porto " * 10
    first = await graphql.ok(SEND, {"s": None, "c": long}, token=person.token)
    session = first["sendMessage"]["session"]
    assert session["title"].startswith("Plan a\\ttrip to Lisbon")
    assert len(session["title"]) == 80 and session["title"].endswith("…")
    later = await graphql.ok(
        SEND, {"s": session["sessionId"], "c": "something else"}, token=person.token
    )
    assert later["sendMessage"]["session"]["title"] == session["title"]  # the first one stays


async def test_rename_sets_a_valid_title_on_ones_own_session_only(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    mine = await make_session(pool, person.user_id)
    renamed = await graphql.ok(
        RENAME, {"s": mine.session_id, "t": "  Trip  notes "}, token=person.token
    )
    assert renamed["renameSession"]["title"] == "Trip notes"
    for bad in ("", "   ", "x" * 81):
        refused = await graphql(RENAME, {"s": mine.session_id, "t": bad}, token=person.token)
        assert refused.codes == ["BAD_USER_INPUT"], bad
    theirs = await make_session(pool, make_person().user_id)
    missing = await graphql(RENAME, {"s": theirs.session_id, "t": "mine now"}, token=person.token)
    assert missing.codes == ["NOT_FOUND"]
    other = await graphql(RENAME, {"s": "no-such-session", "t": "x"}, token=person.token)
    assert other.codes == ["NOT_FOUND"] and other.errors == missing.errors


async def test_archived_sessions_leave_the_default_list_and_come_back(
    graphql: GraphQLClient, pool: asyncpg.Pool, person: Person
) -> None:
    kept = await make_session(pool, person.user_id)
    put_away = await make_session(pool, person.user_id)
    archived = await graphql.ok(ARCHIVE, {"s": put_away.session_id}, token=person.token)
    assert archived["archiveSession"]["archivedAt"] is not None

    def ids(data: dict) -> list[str]:
        return [e["node"]["sessionId"] for e in data["sessions"]["edges"]]

    assert ids(await graphql.ok(LIST, {}, token=person.token)) == [kept.session_id]
    assert ids(await graphql.ok(LIST, {"a": True}, token=person.token)) == [put_away.session_id]
    # The two lists' cursors are not interchangeable.
    cursor = (await graphql.ok(LIST, {"a": True}, token=person.token))["sessions"]["pageInfo"][
        "endCursor"
    ]
    refused = await graphql(LIST, {"after": cursor}, token=person.token)
    assert refused.codes == ["BAD_USER_INPUT"]

    back = await graphql.ok(UNARCHIVE, {"s": put_away.session_id}, token=person.token)
    assert back["unarchiveSession"]["archivedAt"] is None
    assert set(ids(await graphql.ok(LIST, {}, token=person.token))) == {
        kept.session_id,
        put_away.session_id,
    }
    theirs = await make_session(pool, make_person().user_id)
    assert (await graphql(ARCHIVE, {"s": theirs.session_id}, token=person.token)).codes == [
        "NOT_FOUND"
    ]
