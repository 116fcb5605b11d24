"""Every compiled document, its variants and bad input through both paths: the compiled
answers must be the reference's, byte for byte once parsed (key order included)."""

from __future__ import annotations

import base64
import re
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import queries

from graphql_api.schema.export import SCHEMA_FILE
from graphql_api.schema.sessions import SESSIONS as SESSIONS_KEYSET
from graphql_api.schema.types import message_cursor
from tests.conftest import make_person

from .conftest import Differ
from .registry import Registry, seed

SESSION_FIELDS = """sessionId channel agentName title archivedAt isActive updatedAt lastError
  unreadCount lastMessage { id role content createdAt }"""
DELIVERY_FIELDS = "channel status attempts lastError sentAt"
MESSAGE_FIELDS = f"id role content createdAt via deliveries {{ {DELIVERY_FIELDS} }}"
# The web app's documents (web/api.js), fields expanded.
WEB_SESSIONS = f"""query Sessions($channel: Channel, $archived: Boolean, $first: Int, $after: String) {{
  sessions(channel: $channel, archived: $archived, first: $first, after: $after) {{
    edges {{ node {{ {SESSION_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"""
WEB_SESSION = f"""query Session($sessionId: String!, $last: Int, $before: String) {{
  session(sessionId: $sessionId) {{ {SESSION_FIELDS}
    messages(last: $last, before: $before) {{
      edges {{ cursor node {{ {MESSAGE_FIELDS} }} }} pageInfo {{ hasPreviousPage startCursor }} }}
  }} }}"""
WEB_OLDER = f"""query OlderMessages($sessionId: String!, $last: Int, $before: String) {{
  messages(sessionId: $sessionId, last: $last, before: $before) {{
    edges {{ cursor node {{ {MESSAGE_FIELDS} }} }} pageInfo {{ hasPreviousPage startCursor }} }} }}"""
WEB_DELIVERIES = f"""query MessageDeliveries($id: ID!) {{
  node(id: $id) {{ ... on ChatMessage {{ id deliveries {{ {DELIVERY_FIELDS} }} }} }} }}"""
Q1 = """query Q1($s: String!, $b: String) { messages(sessionId: $s, last: 50, before: $b) {
  edges { cursor node { id role content createdAt via } } pageInfo { hasPreviousPage startCursor } } }"""
Q2 = """query Q2($first: Int) { sessions(first: $first) { edges { cursor node { id sessionId channel
  agentName title isActive updatedAt lastMessage { id role content createdAt } } }
  pageInfo { hasNextPage endCursor } } }"""
Q2T = Q2.replace("sessions(first: $first)", "sessions(first: $first, channel: TELEGRAM)")
EVERYTHING = """
fragment S on ChatSession { __typename id sessionId channel agentName isActive createdAt
  updatedAt lastError lastErrorAt title archivedAt unreadCount }
fragment M on ChatMessage { __typename id role content createdAt via
  deliveries { __typename channel status attempts lastError sentAt } }
query Everything($s: String!, $first: Int = 2, $web: Channel = WEB) {
  __typename
  a: sessions(first: $first) { __typename edges { __typename cursor node { ...S
     lastMessage { id content } messages(last: 2) { edges { node { role } } pageInfo { hasNextPage
     hasPreviousPage } } } } pageInfo { __typename hasNextPage hasPreviousPage startCursor
     endCursor } }
  b: sessions(channel: $web, archived: true, first: 5) { edges { node { sessionId archivedAt } } }
  c: sessions(channel: TELEGRAM) { edges { cursor } pageInfo { endCursor } }
  session(sessionId: $s) { ...S ... on Node { id } messages(last: 3) { __typename
     edges { cursor node { ... on ChatMessage { ...M } } } pageInfo { startCursor endCursor
     hasPreviousPage hasNextPage } } same: messages(last: 3) { edges { cursor } } }
  messages(sessionId: $s, last: 4) { pageInfo { startCursor } edges { node { id } } }
}"""
# One failing root field per document: with two, which error the reference reports first
# depends on which resolver fails first (its own nondeterminism, not the compiled path's).
ALIASED = """query($s: String!) { newest: messages(sessionId: $s, last: 1) {
  edges { node { content } } } }"""
NODE = """query($id: ID!) { node(id: $id) { __typename id ... on ChatSession { sessionId
  messages(last: 2) { edges { node { content } } } lastMessage { content } }
  ... on ChatMessage { content via deliveries { status } } } }"""


@pytest.fixture(scope="module")
async def registry(pool: asyncpg.Pool) -> Registry:
    return await seed(pool)


def _cases(r: Registry) -> list[tuple[str, dict[str, Any]]]:
    assert r.busy is not None
    busy, ids = r.busy.session_id, r.message_ids
    deep = message_cursor(busy, ids[120])
    return [
        (WEB_SESSIONS, {"first": 3}),
        (WEB_SESSIONS, {"archived": True}),
        (WEB_SESSIONS, {"channel": "SCHEDULED", "archived": False, "first": 100}),
        (WEB_SESSION, {"sessionId": busy, "last": 30}),
        (WEB_SESSION, {"sessionId": busy, "last": 30, "before": deep}),
        (WEB_SESSION, {"sessionId": r.sessions[1].session_id}),  # odd stored messages
        (WEB_SESSION, {"sessionId": "no-such-session"}),  # null, no error
        (WEB_OLDER, {"sessionId": busy, "last": 7, "before": deep}),
        (WEB_OLDER, {"sessionId": r.sessions[5].session_id}),  # whole seconds, via set
        (WEB_DELIVERIES, {"id": _gid("ChatMessage", ids[-1])}),
        (Q1, {"s": busy, "b": deep}),
        (Q1, {"s": busy}),
        (Q2, {"first": 50}),
        (Q2T, {"first": 50}),
        (EVERYTHING, {"s": busy}),
        (EVERYTHING, {"s": r.sessions[0].session_id, "first": 100, "web": "WEB"}),
        (ALIASED, {"s": busy}),
        (NODE, {"id": _gid("ChatSession", r.sessions[2].id)}),
        (NODE, {"id": _gid("ChatMessage", ids[3])}),
        (NODE, {"id": _gid("ChatSession", "not-a-uuid")}),  # null
        (NODE, {"id": _gid("ChatMessage", "12x")}),  # null
        (NODE, {"id": _gid("ChatSession", r.stranger_session.id)}),  # null: not the viewer's
    ]


def _gid(type_name: str, value: object) -> str:
    return base64.b64encode(f"{type_name}:{value}".encode()).decode()


async def test_the_corpus_is_compiled_and_answers_as_the_reference(
    differ: Differ, registry: Registry
) -> None:
    for query, variables in _cases(registry):
        answers = await differ(query, variables, token=registry.owner.token)
        assert answers.compiled_served, (query, variables, answers.compiled)
        assert "errors" not in answers.compiled


async def test_the_corpus_as_someone_else_anonymous_and_a_service(
    differ: Differ, registry: Registry
) -> None:
    service = make_person(service=True)
    for query, variables in _cases(registry):
        for token in (registry.stranger.token, None, service.token):
            await differ(query, variables, token=token)


async def test_paging_to_the_end_with_the_returned_cursors(
    differ: Differ, registry: Registry
) -> None:
    token, after, seen = registry.owner.token, None, 0
    while True:
        page = (await differ(WEB_SESSIONS, {"first": 2, "after": after}, token=token)).compiled
        seen += len(page["data"]["sessions"]["edges"])
        info = page["data"]["sessions"]["pageInfo"]
        if not info["hasNextPage"]:
            break
        after = info["endCursor"]
    assert seen == 7  # 9 sessions, 2 archived
    assert registry.busy is not None
    before, count = None, 0
    while True:
        variables = {"sessionId": registry.busy.session_id, "last": 60, "before": before}
        page = (await differ(WEB_OLDER, variables, token=token)).compiled["data"]["messages"]
        count += len(page["edges"])
        if not page["pageInfo"]["hasPreviousPage"]:
            break
        before = page["pageInfo"]["startCursor"]
    assert count == 250


def _bad_requests(r: Registry) -> list[tuple[str, Any]]:
    assert r.busy is not None and r.stranger_session is not None
    busy, theirs = r.busy.session_id, r.stranger_session.session_id
    other_list = SESSIONS_KEYSET.cursor(
        (str(r.stranger.user_id), "*"), r.busy.updated_at, r.busy.id
    )
    return [
        *((WEB_SESSIONS, {"first": v}) for v in (0, 101, -1, "x", 1.5, 2**40, True)),
        (WEB_SESSIONS, {"after": "bm90IGEgY3Vyc29y"}),
        (WEB_SESSIONS, {"after": other_list}),
        (WEB_SESSIONS, {"after": message_cursor(busy, 5)}),
        (WEB_SESSIONS, {"channel": "FAX"}),
        (WEB_SESSIONS, {"channel": "web"}),
        (WEB_SESSIONS, []),
        (WEB_SESSIONS, "x"),
        (Q1, {"s": theirs}),
        (Q1, {}),
        (Q1, {"s": busy, "b": message_cursor(theirs, 3)}),
        (Q1, {"s": busy, "b": message_cursor(busy, 3)[:-2]}),
        (Q1, {"s": 5}),
        (WEB_OLDER, {"sessionId": busy, "last": 0}),
        (WEB_SESSION, {"sessionId": busy, "before": "garbage"}),
        (WEB_SESSION, {"sessionId": busy, "last": 1000}),
        (NODE, {"id": "%%%"}),
        (NODE, {"id": _gid("Schedule", r.busy.id)}),
        (NODE, {"id": _gid("Nope", 1)}),
        (NODE, {"id": _gid("ChatMessage", "99999999999999999999")}),
        (NODE, {"id": 5}),
        ("{ sessions { edges { node { sessionId } } }", None),  # syntax error
        ("{ sessions { edges { node { nope } } } }", None),
        ("mutation { unlinkTelegram }", None),
        ("query A { __typename } query B { __typename }", None),
    ]


async def test_bad_input_answers_as_the_reference(differ: Differ, registry: Registry) -> None:
    for query, variables in _bad_requests(registry):
        await differ(query, variables, token=registry.owner.token)  # type: ignore[arg-type]
    for name in ("Nope", "", "Sessions"):
        await differ(WEB_SESSIONS, {}, token=registry.owner.token, operation_name=name)


async def test_unknown_variables_are_ignored_and_still_compiled(
    differ: Differ, registry: Registry
) -> None:
    answers = await differ(Q2, {"first": 3, "extra": [1, 2]}, token=registry.owner.token)
    assert answers.compiled_served


STRING = r'"(?:[^"\\]|\\.)*"'  # a GraphQL string literal as print_ast writes it
SESSION_ID = re.compile(rf"sessionId: {STRING}")
NODE_ID = re.compile(rf"\bid: (?:{STRING}|-?\d+)")
PAGE_SIZE = re.compile(r"\b(first|last): -?\d+")
POSITION = re.compile(rf"\b(after|before|around): {STRING}")
GENERATED = queries(SCHEMA_FILE.read_text(), fields=["sessions", "session", "messages", "node"])
generated_served: list[bool] = []


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(query=GENERATED, realistic=st.booleans(), size=st.integers(1, 100))
async def test_generated_documents_answer_as_the_reference(
    differ: Differ, registry: Registry, query: str, realistic: bool, size: int
) -> None:
    """Half the documents as generated (random ids, cursors and sizes: mostly declined and
    answered by the reference), half pointed at real rows with valid sizes and no positions."""
    assert registry.busy is not None
    if realistic:
        query = SESSION_ID.sub(f'sessionId: "{registry.busy.session_id}"', query)
        query = NODE_ID.sub(f'id: "{_gid("ChatSession", registry.busy.id)}"', query)
        query = PAGE_SIZE.sub(lambda m: f"{m[1]}: {size}", query)
        query = POSITION.sub(lambda m: f"{m[1]}: null", query)
    answers = await differ(query, None, token=registry.owner.token)
    generated_served.append(answers.compiled_served)


def test_generated_documents_mostly_compile() -> None:
    """Guards the generator: most generated documents must take the compiled path."""
    if not generated_served:
        pytest.skip("the generated test did not run in this session")
    share = sum(generated_served) / len(generated_served)
    assert share > 0.1, share  # about 0.2: a document compiles only when all its roots do
