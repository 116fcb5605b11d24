"""SQL expressions that print JSON text, each exactly as Strawberry prints the same value.

Every value is JSON text built by concatenation (`||`), not by `json_build_object`/`json_agg`:
those look each argument's type up in the catalog caches on every call (about four lookups per
key and per value, a third of the statement's time in a profile of the message page). Text
that cannot need escaping (base64, digits, timestamps, enum names, GraphQL names) is quoted as
it is; any other text goes through `to_json`, and a string inside a jsonb document is printed by
jsonb's own output, escaped. A SQL NULL anywhere stands for JSON null (`obj` coalesces).

Formats match Strawberry's output exactly:
- DateTime: `datetime.isoformat()` of the UTC value (microseconds only when non-zero);
- Relay ids: standard base64 of "<Type>:<id>"; cursors: pagination.Keyset's base64url text;
- enums: the GraphQL name; a stored value no enum member has raises a runtime error in the
  statement (division by zero), so the request falls back to the reference executor, which
  reports it the way it reports any unexpected value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..core.models import Role
from .selection import NotCompilable

MAX_BIGINT = 2**63 - 1
MAX_KEYS = 50  # keys per object: bounds the depth of its concatenation
NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")


def quote(text: str) -> str:
    """A SQL string literal of a GraphQL name or a fixed word (no quotes inside)."""
    if "'" in text or "\\" in text or "\x00" in text:
        raise NotCompilable("literal")
    return f"'{text}'"


def plain(text: str) -> str:
    """A JSON string of text that needs no escaping (NULL stays NULL)."""
    return f"('\"' || {text} || '\"')"


def string(text: str) -> str:
    """A JSON string of any text, escaped (NULL stays NULL)."""
    return f"to_json({text})::text"


def boolean(value: str) -> str:
    return f"({value})::text"


def fail(witness: str) -> str:
    """A text expression that fails the statement (division by zero) when evaluated, so the
    reference executor answers: `witness` is any text that is not NULL there. Not a constant,
    which PostgreSQL would fold (and raise) while planning."""
    return f"(1 / (length({witness}) - length({witness})))::text"


def required(value: str, witness: str) -> str:
    """`value`, of a field the schema says is never null: a NULL fails the statement."""
    return f"coalesce({value}, {fail(witness)})"


# The moments Python's datetime holds (the reference's asyncpg decodes infinity to its ends).
_FIRST = "'0001-01-01 00:00:00+00'::timestamptz"
_LAST = "'9999-12-31 23:59:59.999999+00'::timestamptz"


def iso(value: str) -> str:
    """`datetime.isoformat()` of a timestamptz, as Python prints the UTC value: six digits of
    fraction, none when the microseconds are 0 (one `to_char`, then the empty fraction cut).
    A moment outside Python's range (infinity, five-digit years, BC) fails the statement."""
    utc = f"({value} AT TIME ZONE 'UTC')"
    text = f"(replace(to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), '.000000', '') || '+00:00')"
    return (
        f"(CASE WHEN {value} BETWEEN {_FIRST} AND {_LAST} THEN {text} "
        f"WHEN {value} IS NOT NULL THEN {fail(f'{value}::text')} END)"
    )


def global_id(type_name: str, node_id: str) -> str:
    text = f"convert_to({quote(type_name + ':')} || {node_id}, 'UTF8')"
    return f"replace(encode({text}, 'base64'), E'\\n', '')"


def base64url(text: str) -> str:
    """Unpadded base64url of text. Three `replace`s, not one `translate`: translate reads its
    input a multibyte character at a time and took 3 of a session cursor's 5 microseconds."""
    encoded = f"encode(convert_to({text}, 'UTF8'), 'base64')"
    return f"rtrim(replace(replace(replace({encoded}, E'\\n', ''), '+', '-'), '/', '_'), '=')"


def base64url_digits(number: str) -> str:
    """Unpadded base64url of a non-negative integer's digits: standard base64 is already
    URL-safe there (each 3-digit group 0011xxxx 0011yyyy 0011zzzz gives sextets of at most 15,
    51, 36 and 57, never 62 `+` or 63 `/`) and has no line break under 57 bytes."""
    return f"rtrim(encode(convert_to(({number})::text, 'UTF8'), 'base64'), '=')"


def cursor(head: str, position: str) -> str:
    """A cursor as JSON: its head (a parameter) and the base64url of its position."""
    return plain(f"{head} || {position}")


def enum(value: str, names: Iterable[tuple[str, str]]) -> str:
    """The GraphQL name of a stored enum value, as JSON; an unknown one fails the statement."""
    cases = " ".join(f"WHEN {quote(stored)} THEN {quote(json_name(n))}" for stored, n in names)
    return f"(CASE {value} {cases} ELSE {fail(value)} END)"


def role(message: str) -> str:
    """models.role_of: LangChain's `type`; anything else is SYSTEM."""
    types = {"human": Role.USER, "ai": Role.ASSISTANT, "system": Role.SYSTEM, "tool": Role.TOOL}
    cases = " ".join(f"WHEN {quote(t)} THEN {quote(json_name(r.name))}" for t, r in types.items())
    return f"(CASE {message} ->> 'type' {cases} ELSE {quote(json_name(Role.SYSTEM.name))} END)"


def content(message: str) -> str:
    """models.content_of, as JSON: data.content when a string (printed by jsonb, escaped), else
    its parts' texts joined."""
    value = f"({message} -> 'data' -> 'content')"
    return (
        f"(CASE jsonb_typeof({value}) WHEN 'string' THEN {value}::text "
        f"WHEN 'array' THEN to_json(coalesce((SELECT string_agg(CASE WHEN jsonb_typeof(p) = "
        f"'string' THEN p #>> '{{}}' WHEN jsonb_typeof(p -> 'text') = 'string' THEN p ->> 'text' "
        f"END, '' ORDER BY n) FROM jsonb_array_elements({value}) WITH ORDINALITY AS e(p, n)), "
        f"''))::text ELSE '\"\"' END)"
    )


def json_name(name: str) -> str:
    """A GraphQL name (a key, an enum value, a type) as a JSON string: it needs no escaping."""
    if not NAME.fullmatch(name):
        raise NotCompilable("name")
    return f'"{name}"'


def obj(pairs: list[tuple[str, str]]) -> str:
    """The JSON text of an object; a value that is NULL is written as null."""
    if len(pairs) > MAX_KEYS:
        raise NotCompilable("too many keys")
    if not pairs:
        return "'{}'"
    parts = [
        f"{quote(('{' if i == 0 else ',') + json_name(k) + ':')} || coalesce({v}, 'null')"
        for i, (k, v) in enumerate(pairs)
    ]
    return "(" + " || ".join(parts) + " || '}')"


def array(item: str, order: str, rows: str = "") -> str:
    """The JSON text of an array of `item` over the rows aggregated (`rows`: a FILTER)."""
    return f"('[' || coalesce(string_agg({item}, ',' ORDER BY {order}) {rows}, '') || ']')"
