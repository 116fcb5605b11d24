"""The compiled path's door: POST /graphql requests whose document has a plan are answered by
one SQL statement; every other request goes on to Strawberry, unchanged.

A document is looked at once: parsed with the reference's token limit, validated with the
reference's rules, compiled (or marked as not compilable), and the outcome cached by
(document, operationName). On a request whose plan exists, the body is read here; if the plan
declines the request (Fallback: it would be an error, or a variant not compiled) or anything
unexpected happens, the request is replayed to Strawberry with the body already read.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable

import orjson
import strawberry
from graphql import GraphQLError, parse, specified_rules, validate
from graphql.validation import ASTValidationRule
from starlette.types import Message, Receive, Scope, Send

from ..core.runtime import RESOURCES, Resources
from ..limits import MAX_REQUEST_BYTES
from ..schema.context import authenticate
from ..schema.limits import MAX_TOKENS
from .plan import Fallback, Plan, compile_plan
from .selection import NotCompilable

log = logging.getLogger(__name__)

MAX_PLANS = 512
MAX_DOCUMENT_LENGTH = 16_384  # longer documents are not compiled (nor kept as cache keys)
NOT_COMPILABLE = None
_JSON = (b"content-type", b"application/json")
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class CompiledQueries:
    """Plans by document, and counts of the requests each path served (tests, benches)."""

    def __init__(
        self,
        schema: strawberry.Schema,
        channels: tuple[str, ...],
        limits_rule: type[ASTValidationRule],
    ) -> None:
        # Strawberry keeps graphql-core's schema in `_schema` (0.341; no public accessor):
        # validation here must be against the very schema Strawberry executes.
        self._schema = schema._schema
        self._rules = [*specified_rules, limits_rule]
        self._channels = channels
        self._plans: OrderedDict[tuple[str, str | None], Plan | None] = OrderedDict()
        self.served: Counter[str] = Counter()

    def plan_for(self, query: str, operation_name: str | None) -> Plan | None:
        key = (query, operation_name)
        if key in self._plans:
            self._plans.move_to_end(key)
            return self._plans[key]
        plan = self._compile(query, operation_name)
        self._plans[key] = plan
        if len(self._plans) > MAX_PLANS:
            self._plans.popitem(last=False)
        return plan

    def _compile(self, query: str, operation_name: str | None) -> Plan | None:
        try:
            document = parse(query, max_tokens=MAX_TOKENS)
        except GraphQLError:
            return NOT_COMPILABLE
        if validate(self._schema, document, self._rules):
            return NOT_COMPILABLE
        try:
            return compile_plan(document, operation_name, self._channels)
        except NotCompilable as exc:
            log.debug("not compiled (%s): %s", exc, operation_name)
            return NOT_COMPILABLE

    async def handle(self, scope: Scope, receive: Receive, send: Send, reference: ASGIApp) -> None:
        """Answer the request here, or pass it to `reference` (Strawberry) as it came."""
        if scope["type"] != "http" or scope["method"] != "POST" or not _is_json(scope):
            return await reference(scope, receive, send)
        messages, body = await _read_body(receive)
        answer = None if body is None else await self._answer(scope, body)
        if answer is None:
            self.served["reference"] += 1
            return await reference(scope, _replay(messages, receive), send)
        self.served["compiled"] += 1
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [_JSON, (b"content-length", str(len(answer)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    async def _answer(self, scope: Scope, body: bytes) -> bytes | None:
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(request, dict) or not request.keys() <= _REQUEST_KEYS:
            return None
        query, name = request.get("query"), request.get("operationName")
        variables = request.get("variables")
        variables = {} if variables is None else variables
        if not isinstance(query, str) or len(query) > MAX_DOCUMENT_LENGTH:
            return None
        if not isinstance(name, str | None) or not isinstance(variables, dict):
            return None
        if name is not None and len(name) > len(query):  # no operation of the document: not
            return None  # compiled, and not kept as a cache key (up to a MiB each)
        # Who first: an anonymous request never costs a compilation or a plan-cache entry.
        resources: Resources = scope["state"][RESOURCES]
        viewer, _ = await authenticate(resources.verifier, _header(scope, b"authorization"))
        if viewer is None or viewer.subject is None:  # no one, or the service key: no person
            return None
        plan = self.plan_for(query, name)
        if plan is None:
            return None
        try:
            return await plan.run(resources.pool, viewer.subject, variables)
        except Fallback:
            return None
        except Exception:  # the reference answers (and reports whatever this was)
            log.warning("compiled plan failed; the reference executor answers", exc_info=True)
            return None


_REQUEST_KEYS = {"query", "variables", "operationName"}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _is_json(scope: Scope) -> bool:
    kind = _header(scope, b"content-type")
    # As written: Strawberry's own test is case-sensitive (a substring of the media type), so
    # any other spelling goes to it and gets its answer.
    return kind is not None and kind.split(";", 1)[0].strip() == "application/json"


async def _read_body(receive: Receive) -> tuple[list[Message], bytes | None]:
    """The messages read and the body; body None past MAX_REQUEST_BYTES or on a disconnect
    (the reference then answers from the replayed messages, with its own limits)."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        size += len(message.get("body", b""))
        if size > MAX_REQUEST_BYTES:
            return messages, None
        if not message.get("more_body", False):
            return messages, b"".join(m.get("body", b"") for m in messages)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
