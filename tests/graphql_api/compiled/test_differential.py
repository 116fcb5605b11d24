"""Issue 14: every compiled document and its variants through both paths, as the owner and as
everyone else; the full JSON answers (errors included) must be identical, and the owner's
valid requests of covered documents must be answered by the compiled path."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest

from graphql_api.core.tokens import mint_token
from graphql_api.schema.types import MESSAGES
from tests.conftest import TEST_JWT_SECRET

from . import corpus as c
from .conftest import Answers, Differ
from .data import Seed, global_id, seed_data

OWNERS = ("owner", "owner_service")
Case = tuple[str, dict[str, Any] | None, str | None]  # document, variables, operationName


@pytest.fixture(scope="module")
async def seed(pool: asyncpg.Pool) -> Seed:
    return await seed_data(pool)


@dataclass
class Checker:
    """Runs requests through `differ`, collecting every mismatch (the test fails at the end
    with all of them, so one bug does not hide the next)."""

    differ: Differ
    failures: list[str] = field(default_factory=list)
    served: int = 0
    total: int = 0

    async def __call__(
        self,
        query: str,
        variables: Any = None,
        *,
        token: str | None,
        operation_name: str | None = None,
        compiled: bool | None = None,  # True/False: which path must answer; None: either
        who: str = "",
    ) -> Answers | None:
        self.total += 1
        try:
            answers = await self.differ(
                query, variables, token=token, operation_name=operation_name
            )
        except AssertionError as exc:
            self.failures.append(self.describe(query, variables, operation_name, who, str(exc)))
            return None
        self.served += answers.compiled_served
        if compiled is not None and answers.compiled_served != compiled:
            path = "the compiled path" if compiled else "the reference"
            self.failures.append(
                self.describe(query, variables, operation_name, who, f"not answered by {path}")
            )
        return answers

    @staticmethod
    def describe(query: str, variables: Any, name: str | None, who: str, what: str) -> str:
        return (
            f"--- as {who or '?'}, operationName={name!r}\n{query.strip()}\n"
            f"variables: {json.dumps(variables)}\n{what}"
        )

    def done(self) -> None:
        assert not self.failures, f"{len(self.failures)} failures:\n" + "\n\n".join(self.failures)


def cases(seed: Seed) -> list[Case]:
    s = {label: sid for label, sid in seed.sessions.items() if label != "odd_id"}
    busy, web = seed.sessions["busy"], seed.sessions["web"]
    deep, tg = seed.cursor("busy", 120), seed.messages["telegram"]
    found: list[Case] = []

    def add(query: str, *variable_sets: dict[str, Any] | None, name: str | None = None) -> None:
        found.extend((query, v, name) for v in variable_sets)

    channels = [{"channel": ch} for ch in ("WEB", "TELEGRAM", "SCHEDULED")]
    add(c.SESSIONS_QUERY, None, {}, {"first": 3}, {"archived": True}, *channels)
    add(c.SESSIONS_QUERY, {"channel": "TELEGRAM", "archived": True}, {"first": 100})
    add(c.SESSIONS_QUERY, {"first": None, "after": None, "channel": None, "archived": None})
    owned = len(seed.sessions) + 2  # more than the owner has: every size around theirs
    add(c.PAGE_EDGES, *({"first": n} for n in range(1, owned)), *channels)
    add(c.SESSION_QUERY, *({"sessionId": sid} for sid in s.values()))
    add(c.SESSION_QUERY, {"sessionId": busy, "last": 30, "before": deep}, {"sessionId": "nope"})
    add(c.SESSION_QUERY, {"sessionId": web, "last": 100}, {"sessionId": busy, "last": 1})
    add(c.OLDER_MESSAGES_QUERY, *({"sessionId": sid} for sid in s.values()))
    add(c.OLDER_MESSAGES_QUERY, {"sessionId": busy, "last": 7, "before": deep})
    add(c.MESSAGE_DELIVERIES_QUERY, *({"id": global_id("ChatMessage", m)} for m in tg))
    add(c.MESSAGE_DELIVERIES_QUERY, {"id": global_id("ChatSession", seed.ids["telegram"])})
    add(c.Q1, {"s": busy}, {"s": busy, "b": deep}, {"s": web}, {"s": s["empty"], "b": None})
    add(c.Q2, {"first": 50}, {}, {"first": 1})
    add(c.Q2T, {"first": 50}, {"first": 1})
    add(c.ALIASED_LISTS, None)
    add(c.FRAGMENTS, {"s": web, "first": 3}, {"s": s["empty"]}, {"s": "nope", "first": 100})
    add(c.NODE, *({"id": global_id("ChatSession", i)} for i in seed.ids.values()))
    add(c.NODE, *({"id": global_id("ChatMessage", m)} for m in seed.messages["web"]))
    add(c.NODE, *({"id": global_id("ChatMessage", m)} for m in tg))
    add(
        c.NODE,
        {"id": global_id("ChatSession", "not-a-uuid")},
        {"id": global_id("ChatSession", str(seed.ids["web"]).upper())},
        {"id": global_id("ChatSession", seed.other_session_uuid)},
        {"id": global_id("ChatMessage", seed.other_message)},
        {"id": global_id("ChatMessage", "99999999999999999999")},
        {"id": global_id("ChatMessage", f"0{tg[0]}")},
        {"id": global_id("ChatMessage", -1)},
    )
    add(c.TYPENAME_EVERYWHERE, {"s": busy}, {"s": s["empty"]})
    add(c.NESTED_SESSION, {"s": busy, "b": seed.cursor("busy", 100)}, {"s": busy, "last": 1})
    add(c.NESTED_SESSION, {"s": web, "b": None}, {"s": s["empty"]}, {"s": "nope"})
    add(c.SESSIONS_WITH_MESSAGES, {}, {"archived": True}, {"channel": "TELEGRAM", "first": 2})
    add(c.DEFAULTS, {}, {"first": 5, "channel": "TELEGRAM"})
    add(c.DEFAULTS, {"first": None, "channel": None, "archived": True, "s": web})
    every = {"s": web, "id": global_id("ChatSession", seed.ids["telegram"])}
    add(c.EVERY_ROOT, {**every, "m": global_id("ChatMessage", seed.messages["web"][0])})
    add(c.MERGED, None, {}, {"first": 2}, {"archived": True, "first": None})
    add(c.OPERATIONS, None, name="A")
    add(c.OPERATIONS, {"s": web}, name="B")
    add(c.literal_document(busy, 2), None)
    add(c.literal_document(web, 1), None)
    return found


async def test_the_corpus_as_everyone(differ: Differ, seed: Seed) -> None:
    check = Checker(differ)
    for query, variables, name in cases(seed):
        for who, person in seed.people.items():
            await check(
                query,
                variables,
                token=person.token if person else None,
                operation_name=name,
                compiled=True if who in OWNERS else None,
                who=who,
            )
    check.done()


async def test_values_no_enum_member_has_fall_back(differ: Differ, seed: Seed) -> None:
    check, token = Checker(differ), seed.poisoned.token
    variables = {"sessionId": seed.poisoned_session}
    await check(c.OLDER_MESSAGES_QUERY, variables, token=token, compiled=False, who="poisoned")
    await check(c.SESSION_QUERY, variables, token=token, compiled=False, who="poisoned")
    await check(c.Q2, {}, token=token, compiled=True, who="poisoned")  # no via asked
    check.done()


async def test_a_stored_session_id_outside_the_pattern(differ: Differ, seed: Seed) -> None:
    """sessions.get_session answers None for an id SESSION_ID_PATTERN refuses, even when a row
    has it (rows written by other clients); by id (node) and in lists the session is there."""
    check, token, odd = Checker(differ), seed.owner.token, {"s": seed.sessions["odd_id"]}
    await check("query($s: String!) { session(sessionId: $s) { sessionId } }", odd, token=token)
    query = "query($s: String!) { messages(sessionId: $s, last: 1) { edges { cursor } } }"
    await check(query, odd, token=token)
    await check(c.NODE, {"id": global_id("ChatSession", seed.ids["odd_id"])}, token=token)
    check.done()


def _expected(seed: Seed, channel: str | None, archived: bool) -> set[str]:
    labels = {label for label in seed.sessions if archived == label.endswith("_archived")}
    if channel is not None:
        labels = {la for la in labels if seed.channels[la] == channel}
    return {seed.sessions[la] for la in labels}


@pytest.mark.parametrize("archived", [False, True])
@pytest.mark.parametrize("channel", [None, "web", "telegram", "scheduled"])
async def test_paging_sessions_to_the_end(
    differ: Differ, seed: Seed, channel: str | None, archived: bool
) -> None:
    check, token = Checker(differ), seed.owner.token
    for first in (1, 2, 3):
        seen: list[str] = []
        after = None
        for _ in range(len(seed.sessions) + 2):
            variables: dict[str, Any] = {"first": first, "after": after, "archived": archived}
            variables["channel"] = channel.upper() if channel else None
            answers = await check(c.SESSIONS_QUERY, variables, token=token, compiled=True)
            if answers is None:
                break
            page = answers.compiled["data"]["sessions"]
            seen += [e["node"]["sessionId"] for e in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
            # The same position through the other documents (cursors in edges, start/end)
            await check(c.SESSIONS_WITH_MESSAGES, variables, token=token, compiled=True)
        assert len(seen) == len(set(seen)) and set(seen) == _expected(seed, channel, archived)
    check.done()


@pytest.mark.parametrize("last", [3, 7, 50, 100])
async def test_paging_messages_to_the_start(differ: Differ, seed: Seed, last: int) -> None:
    check, token = Checker(differ), seed.owner.token
    for label in ("busy", "web", "telegram") if last > 3 else ("web", "telegram"):
        session_id = seed.sessions[label]
        for query in (c.OLDER_MESSAGES_QUERY, c.SESSION_QUERY):
            seen: list[str] = []
            before = None
            for _ in range(len(seed.messages[label]) + 2):
                variables = {"sessionId": session_id, "last": last, "before": before}
                answers = await check(query, variables, token=token, compiled=True)
                if answers is None:
                    break
                data = answers.compiled["data"]
                page = data["messages"] if "messages" in data else data["session"]["messages"]
                seen = [e["node"]["id"] for e in page["edges"]] + seen
                if not page["pageInfo"]["hasPreviousPage"]:
                    break
                before = page["pageInfo"]["startCursor"]
                nested = {"s": session_id, "b": before, "last": min(last, 5)}
                await check(c.NESTED_SESSION, nested, token=token, compiled=True)
            expected = [global_id("ChatMessage", m) for m in seed.messages[label]]
            assert seen == expected, (label, query)
    check.done()


def bad_requests(seed: Seed) -> list[tuple[str, Any, str | None]]:
    busy, web, theirs = seed.sessions["busy"], seed.sessions["web"], seed.other_session
    cursor = seed.cursor("busy", 10)
    flipped = cursor[:-3] + ("A" if cursor[-3] != "A" else "B") + cursor[-2:]
    found: list[tuple[str, Any, str | None]] = []

    def add(query: str, *variable_sets: Any, name: str | None = None) -> None:
        found.extend((query, v, name) for v in variable_sets)

    sizes = (0, 101, -1, "x", 1.5, 2.0, None, True, 2**31, 2**40, [1], {"a": 1})
    add(c.SESSIONS_QUERY, *({"first": v} for v in sizes))
    add(c.SESSION_QUERY, *({"sessionId": busy, "last": v} for v in sizes))
    add(c.OLDER_MESSAGES_QUERY, *({"sessionId": busy, "last": v} for v in sizes))
    add(c.SESSIONS_WITH_MESSAGES, {"first": 0}, {"channel": "web"}, {"channel": "FAX"})
    add(c.NESTED_SESSION, {"s": busy, "last": 0}, {"s": busy, "last": 101})
    add(c.NESTED_SESSION, {"s": "nope", "last": 0}, {"s": theirs, "last": 0})
    # null session, its cursor never read: the reference answers null (the compiled path
    # declines: it checks the cursor against the session id first)
    add(c.NESTED_SESSION, {"s": "nope", "b": cursor}, {"s": theirs, "b": cursor})
    list_cursors = [
        "not a cursor",
        "bm90IGEgY3Vyc29y",
        "",
        "=" * 8,
        "x" * 500,
        cursor,
        seed.list_cursor("web", "*", person=seed.other),
        seed.list_cursor("web", "telegram"),
        seed.list_cursor("web_archived", "*", "archived"),
        seed.list_cursor("web", "*")[:-1],
        seed.raw_list_cursor(f"2025-01-01T00:00:00+05:00|{seed.ids['web']}", "*"),
        seed.raw_list_cursor(f"2025-01-01T00:00:00|{seed.ids['web']}", "*"),
        seed.raw_list_cursor(
            "2999-01-01T00:00:00.5+00:00|ffffffff-ffff-ffff-ffff-ffffffffffff", "*"
        ),
        seed.raw_list_cursor(f"0001-01-01T00:00:00+14:00|{seed.ids['web']}", "*"),
        seed.raw_list_cursor("x|y", "*"),
    ]
    add(c.SESSIONS_QUERY, *({"after": v} for v in list_cursors))
    add(c.SESSIONS_QUERY, {"after": seed.list_cursor("web", "*"), "channel": "WEB"})
    add(c.SESSIONS_QUERY, {"after": seed.list_cursor("web", "*"), "archived": True})
    message_cursors = [
        flipped,
        cursor + "A",
        seed.cursor("web", 1),  # another session's
        seed.list_cursor("busy", "*"),
        MESSAGES.raw_cursor((busy,), "-1"),
        MESSAGES.raw_cursor((busy,), "0"),
        MESSAGES.raw_cursor((busy,), "99999999999999999999"),
        MESSAGES.raw_cursor((busy,), "9223372036854775807"),
        MESSAGES.raw_cursor((busy,), str(seed.messages["web"][0])),  # a row of another session
        MESSAGES.raw_cursor((busy,), " 5"),
    ]
    for b in message_cursors:
        add(c.Q1, {"s": busy, "b": b})
        add(c.SESSION_QUERY, {"sessionId": busy, "before": b})
        add(c.NESTED_SESSION, {"s": busy, "b": b})
    add(c.Q1, {"s": theirs}, {"s": "nope"}, {}, {"s": None}, {"s": 5}, {"s": busy, "b": 5})
    add(c.Q1, {"s": busy, "b": MESSAGES.cursor((theirs,), seed.other_message)})
    add(c.OLDER_MESSAGES_QUERY, {"sessionId": theirs})
    add(c.SESSION_QUERY, {"sessionId": theirs}, {"sessionId": None}, {"sessionId": ["x"]})
    node_ids: list[Any] = ["%%%", "", "Q2hhdFNlc3Npb24", 5, None, "ChatSession:" + web]
    node_ids += [global_id(t, v) for t, v in [("Schedule", seed.ids["web"]), ("Node", 1)]]
    node_ids += [global_id("ChatSession", v) for v in ("not-a-uuid", "", seed.other_session)]
    node_ids += [global_id("ChatMessage", v) for v in ("99999999999999999999", "1.0", "", "\u0661")]
    add(c.NODE, *({"id": v} for v in node_ids))
    add(c.MESSAGE_DELIVERIES_QUERY, *({"id": v} for v in node_ids))
    add("{ node(id: 5) { id } }", None)
    add("{ sessions(first: 0) { edges { cursor } } }", None)
    add('{ messages(sessionId: "nope") { edges { cursor } } }', None)
    add(f'{{ messages(sessionId: "{busy}", last: 2, after: "x") {{ edges {{ cursor }} }} }}', None)
    add(f'{{ messages(sessionId: "{busy}", around: "x") {{ edges {{ cursor }} }} }}', None)
    add(c.SESSIONS_QUERY, [], "x", 5, {"first": 1, "unknown": [1, {"x": None}]}, name="Nope")
    add(c.SESSIONS_QUERY, [], "x", 5)
    add(c.OPERATIONS, None, None, name="C")
    add(c.OPERATIONS, None)  # several operations, no name
    add("{ sessions { edges { node { sessionId } } }", None)  # syntax error
    add("{ sessions { edges { node { nope } } } }", None)
    add("mutation { unlinkTelegram }", None)
    add("query ($x: Int!) { __typename }", None)
    add("{ sessions { edges { node { sessionId @include(if: true) } } } }", None)
    return found


async def test_bad_input_answers_as_the_reference(differ: Differ, seed: Seed) -> None:
    check = Checker(differ)
    for query, variables, name in bad_requests(seed):
        for who in ("owner", "other", "anonymous"):
            person = seed.people[who]
            token = person.token if person else None
            await check(query, variables, token=token, operation_name=name, who=who)
    check.done()


async def test_extra_variables_still_compile(differ: Differ, seed: Seed) -> None:
    check, token = Checker(differ), seed.owner.token
    extra = {"first": 2, "unknown": [1, {"x": None}], "b": "not used"}
    await check(c.Q2, extra, token=token, compiled=True)
    await check(c.Q1, {"s": seed.sessions["busy"], "zzz": 1}, token=token, compiled=True)
    check.done()


@pytest.mark.parametrize(
    "body", [b"{not json", b"", b"[]", b'"x"', b"null", b'{"query": 5}', b'{"variables": {}}']
)
async def test_bodies_that_are_not_requests(differ: Differ, seed: Seed, body: bytes) -> None:
    headers = {"Authorization": f"Bearer {seed.owner.token}", "Content-Type": "application/json"}
    fast = await differ.compiled.post("/graphql", content=body, headers=headers)
    slow = await differ.reference.post("/graphql", content=body, headers=headers)
    assert _answer(fast) == _answer(slow)


def _answer(response: httpx.Response) -> tuple[int, str]:
    """Status and body; a JSON body as parsed (the compiled path spaces its JSON otherwise)."""
    try:
        return response.status_code, json.dumps(response.json())
    except ValueError:
        return response.status_code, response.text


async def test_tokens_and_headers(differ: Differ, seed: Seed) -> None:
    """Bad tokens and other request shapes: the same answers; a charset still compiles."""
    body = {"query": c.Q2, "variables": {"first": 2}}
    expired = mint_token(TEST_JWT_SECRET, seed.owner.user_id, ttl=-60)
    foreign = mint_token("another-secret-" + "x" * 20, seed.owner.user_id)
    cases: list[tuple[dict[str, str], bool | None]] = [
        ({"Authorization": "Bearer garbage"}, None),
        ({"Authorization": f"Bearer {expired}"}, None),
        ({"Authorization": f"Bearer {foreign}"}, None),
        ({"Authorization": f"Basic {seed.owner.token}"}, None),
        ({"Authorization": f"bearer {seed.owner.token}"}, None),
        ({"Authorization": f"Bearer {seed.owner.token}", "Content-Type": "text/plain"}, False),
        (
            {
                "Authorization": f"Bearer {seed.owner.token}",
                "Content-Type": "application/json; charset=utf-8",
            },
            True,
        ),
    ]
    failures: list[tuple[Any, ...]] = []
    for headers, compiled in cases:
        headers = {"Content-Type": "application/json", **headers}
        before = differ.plans.served["compiled"]
        fast = await differ.compiled.post("/graphql", content=json.dumps(body), headers=headers)
        served = differ.plans.served["compiled"] > before
        slow = await differ.reference.post("/graphql", content=json.dumps(body), headers=headers)
        if _answer(fast) != _answer(slow):
            failures.append((headers, fast.status_code, fast.text, slow.status_code, slow.text))
        if compiled is not None and served != compiled:
            failures.append((headers, "served" if served else "not served"))
    params = {"query": c.Q2, "variables": json.dumps({"first": 2})}
    auth = {"Authorization": f"Bearer {seed.owner.token}"}
    fast = await differ.compiled.get("/graphql", params=params, headers=auth)
    slow = await differ.reference.get("/graphql", params=params, headers=auth)
    if _answer(fast) != _answer(slow):
        failures.append(("GET", fast.status_code, fast.text, slow.status_code, slow.text))
    assert not failures, failures
