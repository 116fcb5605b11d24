"""Hostile probes of the compiled path (a review's): odd data (a NULL sessionId, moments Python
cannot hold, a message id at the top of bigint), HTTP and body variants, documents, variables,
node ids, the plan cache and the service key. Each sends the same request to the compiled and
the reference server and compares the raw bytes and status, not only the parsed JSON."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import asyncpg
import pytest

from tests.conftest import Person, make_person
from tests.graphql_api.seed import add_messages, add_raw_message, make_session

from .conftest import Differ


async def both(
    differ: Differ,
    body: Any,
    *,
    token: str | None = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The raw answers of both servers, and whether the compiled path answered."""
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    if content is None:
        content = json.dumps(body).encode()
        h.setdefault("content-type", "application/json")
    before = differ.plans.served["compiled"]
    t0 = time.perf_counter()
    fast = await differ.compiled.post("/graphql", content=content, headers=h)
    t1 = time.perf_counter()
    served = differ.plans.served["compiled"] > before
    slow = await differ.reference.post("/graphql", content=content, headers=h)
    t2 = time.perf_counter()
    return {
        "served": served,
        "compiled": (fast.status_code, fast.content),
        "reference": (slow.status_code, slow.content),
        "compiled_headers": dict(fast.headers),
        "reference_headers": dict(slow.headers),
        "compiled_s": t1 - t0,
        "reference_s": t2 - t1,
    }


def show(answers: dict[str, Any]) -> str:
    return (
        f"served by compiled: {answers['served']}\n"
        f"compiled:  {answers['compiled'][0]} {answers['compiled'][1][:3000]!r}\n"
        f"reference: {answers['reference'][0]} {answers['reference'][1][:3000]!r}"
    )


def assert_same(answers: dict[str, Any]) -> None:
    assert answers["compiled"] == answers["reference"], show(answers)


# --- 1. a session row with a NULL session_id (legal: "NULL ids stay allowed") ----------------


async def _null_session_id_person(pool: asyncpg.Pool) -> tuple[Person, uuid.UUID]:
    who = make_person()
    row_id = await pool.fetchval(
        "INSERT INTO chat_sessions (user_id, chat_id) VALUES ($1, gen_random_uuid()) RETURNING id",
        who.user_id,
    )
    return who, row_id


async def test_null_session_id_in_list(differ: Differ, pool: asyncpg.Pool) -> None:
    who, _ = await _null_session_id_person(pool)
    query = "{ sessions { edges { node { id sessionId agentName } } } }"
    answers = await both(differ, {"query": query}, token=who.token)
    assert_same(answers)


async def test_null_session_id_by_node(differ: Differ, pool: asyncpg.Pool) -> None:
    import base64

    who, row_id = await _null_session_id_person(pool)
    gid = base64.b64encode(f"ChatSession:{row_id}".encode()).decode()
    query = "query($id: ID!) { node(id: $id) { id ... on ChatSession { sessionId } } }"
    answers = await both(differ, {"query": query, "variables": {"id": gid}}, token=who.token)
    assert_same(answers)


# --- 2. timestamps Python cannot represent ---------------------------------------------------


@pytest.mark.parametrize(
    "moment", ["infinity", "-infinity", "10000-01-01 00:00:00+00", "0044-03-15 00:00:00+00 BC"]
)
async def test_out_of_python_range_timestamps(
    differ: Differ, pool: asyncpg.Pool, moment: str
) -> None:
    who = make_person()
    session = await make_session(pool, who.user_id)
    await add_messages(pool, session.session_id, 1)
    await pool.execute(
        "UPDATE chat_sessions SET archived_at = NULL, last_error_at = $2::text::timestamptz "
        "WHERE session_id = $1",
        session.session_id,
        moment,
    )
    query = "{ sessions { edges { node { sessionId lastErrorAt } } } }"
    answers = await both(differ, {"query": query}, token=who.token)
    assert_same(answers)


@pytest.mark.parametrize("moment", ["infinity", "10000-01-01 00:00:00+00"])
async def test_out_of_range_message_created_at(
    differ: Differ, pool: asyncpg.Pool, moment: str
) -> None:
    who = make_person()
    session = await make_session(pool, who.user_id)
    await add_messages(pool, session.session_id, 2)
    await pool.execute(
        "UPDATE chat_message_history SET created_at = $2::text::timestamptz WHERE session_id = $1",
        session.session_id,
        moment,
    )
    query = (
        "query($s: String!) { messages(sessionId: $s, last: 5) { edges { node { content "
        "createdAt } } } }"
    )
    body = {"query": query, "variables": {"s": session.session_id}}
    answers = await both(differ, body, token=who.token)
    assert_same(answers)


# --- 3. bytes of escaped text ----------------------------------------------------------------

ESCAPES = "".join(chr(c) for c in range(1, 0x20)) + '\x7f"\\/\u2028\u2029\ufeff\U0001f600é'


async def test_escaping_bytes(differ: Differ, pool: asyncpg.Pool) -> None:
    who = make_person()
    session = await make_session(pool, who.user_id, agent_name=ESCAPES[:90])
    await add_raw_message(pool, session.session_id, {"type": "ai", "data": {"content": ESCAPES}})
    await add_raw_message(
        pool, session.session_id, {"type": "ai", "data": {"content": [ESCAPES, {"text": ESCAPES}]}}
    )
    await pool.execute(
        "UPDATE chat_sessions SET title = $2, last_error = $2 WHERE session_id = $1",
        session.session_id,
        ESCAPES,
    )
    query = (
        "query($s: String!) { session(sessionId: $s) { agentName title lastError "
        "messages { edges { node { content } } } } }"
    )
    body = {"query": query, "variables": {"s": session.session_id}}
    answers = await both(differ, body, token=who.token)
    assert answers["served"]
    assert_same(answers)


# --- 4. a message id at the top of bigint --------------------------------------------------


async def test_last_message_at_max_bigint(differ: Differ, pool: asyncpg.Pool) -> None:
    who = make_person()
    session = await make_session(pool, who.user_id)
    await add_messages(pool, session.session_id, 1)
    await pool.execute(
        "INSERT INTO chat_message_history (id, session_id, message) VALUES "
        '(9223372036854775807, $1, \'{"type": "ai", "data": {"content": "top"}}\')',
        session.session_id,
    )
    try:
        query = (
            "query($s: String!) { session(sessionId: $s) { lastMessage { content } "
            "messages(last: 5) { edges { node { content } } } } }"
        )
        body = {"query": query, "variables": {"s": session.session_id}}
        answers = await both(differ, body, token=who.token)
        assert_same(answers)
    finally:
        await pool.execute("DELETE FROM chat_message_history WHERE id = 9223372036854775807")


# --- 5. HTTP-level variants ------------------------------------------------------------------


@pytest.fixture
async def owned(pool: asyncpg.Pool) -> tuple[Person, str]:
    who = make_person()
    session = await make_session(pool, who.user_id)
    await add_messages(pool, session.session_id, 3)
    return who, session.session_id


SIMPLE = "query($s: String!) { session(sessionId: $s) { sessionId lastMessage { content } } }"


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "application/json", "accept": 'multipart/mixed;subscriptionSpec="1.0"'},
        {"content-type": "application/json", "accept": "text/event-stream"},
        {"content-type": "application/json; charset=utf-8"},
        {"content-type": "APPLICATION/JSON"},
        {"content-type": "application/json", "authorization": "bearer   {token}"},
        {"content-type": "Application/Json"},
        {"content-type": "application/json ; charset=latin-1"},
        {"content-type": "application/json", "accept": "application/graphql-response+json"},
    ],
)
async def test_http_variants(differ: Differ, owned: tuple[Person, str], headers: dict) -> None:
    who, sid = owned
    headers = {k: v.replace("{token}", who.token) for k, v in headers.items()}
    token = None if "authorization" in headers else who.token
    body = {"query": SIMPLE, "variables": {"s": sid}}
    answers = await both(differ, body, token=token, headers=headers)
    assert_same(answers)
    for h in ("content-type",):
        assert answers["compiled_headers"].get(h) == answers["reference_headers"].get(h)


@pytest.mark.parametrize(
    "body",
    [
        {"query": SIMPLE, "variables": {"s": "{sid}", "extra": [1, {"x": None}]}},
        {"query": SIMPLE, "variables": {"s": "{sid}"}, "operationName": None},
        {"query": SIMPLE + "\n# trailing comment", "variables": {"s": "{sid}"}},
        {
            "query": SIMPLE.replace("query(", "query Q("),
            "variables": {"s": "{sid}"},
            "operationName": "Q",
        },
        {"query": SIMPLE, "variables": {"s": "{sid}"}, "operationName": "Nope"},
    ],
)
async def test_body_variants(differ: Differ, owned: tuple[Person, str], body: dict) -> None:
    who, sid = owned
    text = json.dumps(body).replace("{sid}", sid)
    answers = await both(
        differ,
        None,
        token=who.token,
        content=text.encode(),
        headers={"content-type": "application/json"},
    )
    assert_same(answers)


async def test_headers_of_a_compiled_answer(differ: Differ, owned: tuple[Person, str]) -> None:
    who, sid = owned
    answers = await both(differ, {"query": SIMPLE, "variables": {"s": sid}}, token=who.token)
    assert answers["served"]
    strip = lambda h: {k: v for k, v in h.items() if k not in ("date",)}  # noqa: E731
    assert strip(answers["compiled_headers"]) == strip(answers["reference_headers"])


# --- 6. documents ----------------------------------------------------------------------------


DOCS = [
    # alias onto __typename / __typename onto a field name
    "query($s: String!) { session(sessionId: $s) { __typename: sessionId id: __typename } }",
    "query($s: String!) { __typename: session(sessionId: $s) { sessionId } }",
    "query($s: String!) { session: __typename s: session(sessionId: $s) { sessionId } }",
    # the same field through fragments with different sub-selections, key order by first sight
    """query($s: String!) { ...A session(sessionId: $s) { lastMessage { id } } ...B }
       fragment A on Query { session(sessionId: $s) { sessionId lastMessage { content } } }
       fragment B on Query { session(sessionId: $s) { lastMessage { role id } title } }""",
    # repeated spreads of the same fragment
    """query($s: String!) { ...A ...A session(sessionId: $s) { ...C ...C } }
       fragment A on Query { __typename }
       fragment C on ChatSession { sessionId ... on Node { id ...C2 } }
       fragment C2 on Node { __typename ... on ChatSession { title } }""",
    # interface fragments on session
    """query($s: String!) { session(sessionId: $s) { ... on Node { id __typename }
       ... { sessionId } ... on ChatSession { ... on Node { id } } } }""",
    # nested messages with default variables
    """query($s: String!, $l: Int = 2) { session(sessionId: $s) { messages(last: $l) {
       edges { cursor node { content } } pageInfo { startCursor endCursor } } } }""",
    # block string literal of the session id
    'query($s: String!) { session(sessionId: $s) { sessionId } x: session(sessionId: """nope""") { id } }',
]


@pytest.mark.parametrize("doc", DOCS)
async def test_documents(differ: Differ, owned: tuple[Person, str], doc: str) -> None:
    who, sid = owned
    answers = await both(differ, {"query": doc, "variables": {"s": sid}}, token=who.token)
    assert_same(answers)


VARIABLE_CASES = [
    ("query($n: Int) { sessions(first: $n) { edges { cursor } } }", {"n": 2147483647}),
    ("query($n: Int) { sessions(first: $n) { edges { cursor } } }", {"n": -2147483648}),
    ("query($n: Int) { sessions(first: $n) { edges { cursor } } }", {"n": 2147483648}),
    ("query($n: Int) { sessions(first: $n) { edges { cursor } } }", {"n": 1.0}),
    ("query($n: Int) { sessions(first: $n) { edges { cursor } } }", {"n": True}),
    ("query($n: Int) { sessions(first: $n) { edges { cursor } } }", {"n": "1"}),
    ("query($n: Int = 0) { sessions(first: $n) { edges { cursor } } }", {}),
    ("query($n: Int = 0) { sessions(first: $n) { edges { cursor } } }", {"n": None}),
    ('query($s: String = "x") { session(sessionId: $s) { id } }', {"s": None}),
    ('query($s: String = "x") { messages(sessionId: $s) { edges { cursor } } }', {"s": None}),
    ('query($i: ID = "x") { node(id: $i) { id } }', {"i": None}),
    ("query($i: ID!) { node(id: $i) { id } }", {"i": 5}),
    ("query($c: Channel) { sessions(channel: $c) { edges { cursor } } }", {"c": "web"}),
    ("query($c: Channel) { sessions(channel: $c) { edges { cursor } } }", {"c": "EMAIL"}),
    ("query($a: Boolean) { sessions(archived: $a) { edges { cursor } } }", {"a": 0}),
    ("query($a: Boolean = true) { sessions(archived: $a) { edges { cursor } } }", {"a": None}),
]


@pytest.mark.parametrize(("doc", "variables"), VARIABLE_CASES)
async def test_variables(
    differ: Differ, owned: tuple[Person, str], doc: str, variables: dict
) -> None:
    who, _ = owned
    answers = await both(differ, {"query": doc, "variables": variables}, token=who.token)
    assert_same(answers)


# --- 7. the plan cache keeps unbounded operationName strings (anonymous) -----------------------


async def test_plan_cache_holds_huge_operation_names(differ: Differ) -> None:
    plans = differ.plans
    before = sum(len(name or "") for _, name in plans._plans)
    for n in range(8):
        body = {"query": "{ __typename }", "operationName": f"{n}" + "x" * 1_000_000}
        answers = await both(differ, body)  # no token at all
        assert_same(answers)
    held = sum(len(name or "") for _, name in plans._plans) - before
    assert held < 100_000, f"the plan cache holds {held:,} characters of operation names"


NODE_DOCS = [
    """query($i: ID!) { node(id: $i) { ... on ChatSession { x: sessionId }
       ... on ChatMessage { x: content } __typename } }""",
    """query($i: ID!) { node(id: $i) { __typename ... on ChatMessage { content } id
       ... on Node { __typename } } }""",
    """query($i: ID!) { a: node(id: $i) { id } b: node(id: $i) { __typename } }""",
]


async def test_node_documents(differ: Differ, pool: asyncpg.Pool) -> None:
    import base64

    who = make_person()
    other = make_person()
    session = await make_session(pool, who.user_id)
    ids = await add_messages(pool, session.session_id, 2)
    theirs = await make_session(pool, other.user_id)
    their_ids = await add_messages(pool, theirs.session_id, 1)

    def gid(t: str, i: object) -> str:
        return base64.b64encode(f"{t}:{i}".encode()).decode()

    node_ids = [
        gid("ChatSession", session.id),
        gid("ChatMessage", ids[0]),
        gid("ChatSession", theirs.id),
        gid("ChatMessage", their_ids[0]),
        gid("ChatSession", ""),
        gid("ChatMessage", ""),
        gid("ChatMessage", f"0{ids[0]}"),
        gid("ChatSession", "{" + str(session.id) + "}"),
        gid("ChatSession", "urn:uuid:" + str(session.id)),
        gid("ChatSession", session.id.hex),
        gid("ChatMessage", "\u0661"),
        gid("Node", "1"),
        gid("Delivery", "1"),
        gid("Query", "x"),
        gid("ChatSession", str(session.id) + "\n"),
        "not base64!",
        "",
    ]
    failures = []
    for doc in NODE_DOCS:
        for node_id in node_ids:
            answers = await both(
                differ, {"query": doc, "variables": {"i": node_id}}, token=who.token
            )
            if answers["compiled"] != answers["reference"]:
                failures.append(f"{node_id!r}\n{show(answers)}")
    assert not failures, "\n\n".join(failures)


async def test_infinite_updated_at_cursor(differ: Differ, pool: asyncpg.Pool) -> None:
    who = make_person()
    session = await make_session(pool, who.user_id)
    await pool.execute(
        "UPDATE chat_sessions SET updated_at = 'infinity' WHERE session_id = $1", session.session_id
    )
    query = "{ sessions { edges { cursor node { updatedAt } } pageInfo { endCursor } } }"
    answers = await both(differ, {"query": query}, token=who.token)
    assert_same(answers)


async def test_service_key_without_sub_logs_a_warning(
    differ: Differ, caplog: pytest.LogCaptureFixture
) -> None:
    """The service key names no person: viewer.user_id raises inside the compiled path's
    catch-all, which logs a traceback at WARNING for every such request."""
    import jwt

    from tests.conftest import TEST_JWT_SECRET

    now = int(time.time())
    claims = {"iss": "supabase", "ref": "x", "role": "service_role", "iat": now, "exp": now + 600}
    key = jwt.encode(claims, TEST_JWT_SECRET, algorithm="HS256")
    with caplog.at_level("WARNING", logger="graphql_api.compiled.front"):
        answers = await both(differ, {"query": "{ sessions { edges { cursor } } }"}, token=key)
    assert_same(answers)
    warned = [r for r in caplog.records if r.name == "graphql_api.compiled.front"]
    assert not warned, [r.getMessage() for r in warned]


async def test_unread_count_asked_twice_is_counted_once_by_the_reference(
    differ: Differ, owned: tuple[Person, str]
) -> None:
    """Compiled, every alias of unreadCount would count the session's messages again; the
    reference's loader counts once, so such a document is left to it."""
    who, _ = owned
    query = "{ sessions { edges { node { a: unreadCount b: unreadCount } } } }"
    answers = await both(differ, {"query": query}, token=who.token)
    assert not answers["served"]
    assert_same(answers)
    once = await both(
        differ, {"query": "{ sessions { edges { node { unreadCount } } } }"}, token=who.token
    )
    assert once["served"]


async def test_an_anonymous_request_compiles_nothing(differ: Differ) -> None:
    query = "{ sessions(first: 7) { edges { cursor } } __typename }"
    answers = await both(differ, {"query": query})  # no token
    assert_same(answers)
    assert (query, None) not in differ.plans._plans
