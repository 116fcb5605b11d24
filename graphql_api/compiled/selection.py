"""A validated operation's selections, collected and merged as graphql-core's executor would.

`collect` applies the GraphQL spec's CollectFields for one concrete type: fragments inlined
where their type condition applies, fields of one response key merged (validation guarantees
they name one field with the same arguments), in first-seen order. Anything the compiled path
does not cover (directives, a selection on an abstract type other than Node) raises
NotCompilable, and the whole document goes to Strawberry's executor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphql import (
    BooleanValueNode,
    EnumValueNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    NullValueNode,
    SelectionSetNode,
    StringValueNode,
    ValueNode,
    VariableNode,
)

# Interfaces each covered object type implements (a fragment on one of them applies).
INTERFACES = {"ChatSession": {"Node"}, "ChatMessage": {"Node"}}


class NotCompilable(Exception):
    """The document is outside the compiled subset: Strawberry's executor runs it."""


@dataclass(frozen=True)
class Var:
    """An argument given by an operation variable."""

    name: str


@dataclass
class Selection:
    """One response key: the field it selects, its arguments (literal values or Var), and the
    AST of its sub-selections (collected per type by the SQL builder)."""

    key: str
    name: str
    args: dict[str, Any]
    sets: list[SelectionSetNode] = field(default_factory=list)


def literal(node: ValueNode) -> Any:
    """A literal argument's value; enums as their GraphQL name. Lists and input objects are not
    compiled (no covered field takes one)."""
    if isinstance(node, VariableNode):
        return Var(node.name.value)
    if isinstance(node, NullValueNode):
        return None
    if isinstance(node, IntValueNode):
        return int(node.value)
    if isinstance(node, StringValueNode | EnumValueNode):
        return node.value
    if isinstance(node, BooleanValueNode):
        return node.value
    raise NotCompilable("argument kind")


def _applies(condition: str | None, type_name: str) -> bool:
    return condition is None or condition == type_name or condition in INTERFACES.get(type_name, ())


def collect(
    sets: list[SelectionSetNode], type_name: str, fragments: dict[str, FragmentDefinitionNode]
) -> list[Selection]:
    found: dict[str, Selection] = {}

    def walk(selection_set: SelectionSetNode, seen: frozenset[str]) -> None:
        for node in selection_set.selections:
            if node.directives:
                raise NotCompilable("directives")
            if isinstance(node, FieldNode):
                key = node.alias.value if node.alias else node.name.value
                selection = found.get(key)
                if selection is None:
                    args = {a.name.value: literal(a.value) for a in node.arguments or ()}
                    selection = found[key] = Selection(key, node.name.value, args)
                if node.selection_set is not None:
                    selection.sets.append(node.selection_set)
            elif isinstance(node, InlineFragmentNode):
                condition = node.type_condition.name.value if node.type_condition else None
                if _applies(condition, type_name):
                    walk(node.selection_set, seen)
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                fragment = fragments.get(name)
                if fragment is None or name in seen:
                    raise NotCompilable("fragment")
                if _applies(fragment.type_condition.name.value, type_name):
                    walk(fragment.selection_set, seen | {name})

    for selection_set in sets:
        walk(selection_set, frozenset())
    return list(found.values())
