"""Depth, alias and field limits as one graphql-core validation rule, linear in the document.

Strawberry's QueryDepthLimiter and MaxAliasesLimiter walk every path through the fragments,
so a document whose fragments each spread the next one twice takes 2^k steps. Here each
definition (operation or fragment) is read once into a summary: its own deepest level, its own
aliases and fields, and the fragments it spreads at which level. The fragments' totals are
then combined once each, in dependency order, as if every spread were inlined, without
inlining anything.

Semantics follow Strawberry's rules, so the limits mean what they meant before:
- depth: the outermost fields are at level 0, the fields inside a field's selection at the next
  level; an operation is too deep when something sits below level MAX_DEPTH. Introspection
  fields (`__schema`, `__type`, ...) do not count and nothing below them counts.
- aliases: every aliased field counts, once per time it would appear were the fragments inlined,
  summed over all operations of the document.
- fields (new): every field selection counts the same way, `__typename` included; the fields
  inside `__schema` / `__type` count separately, against MAX_INTROSPECTION_FIELDS.
A spread that closes a fragment cycle counts nothing (NoFragmentCyclesRule reports the cycle);
a spread of an unknown fragment counts nothing (KnownFragmentNamesRule reports it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from graphql.language import SKIP, VisitorAction
from graphql.validation import ASTValidationRule
from graphql.validation.validate import ValidationAbortedError

MAX_DEPTH = 10
MAX_ALIASES = 20
MAX_FIELDS = 100
# Fields inside `__schema` / `__type`, counted on their own: GraphiQL's schema query alone has
# about 220 (production refuses introspection in any case, with DisableIntrospection).
MAX_INTROSPECTION_FIELDS = 300
MAX_TOKENS = 2_000  # enforced while parsing, by Strawberry's MaxTokensLimiter
# Inlined counts grow exponentially with the fragments; they are added up to this bound only,
# so the numbers stay small. Any count at the bound is far past MAX_ALIASES and MAX_FIELDS.
COUNT_BOUND = 10_000

Definition = OperationDefinitionNode | FragmentDefinitionNode


@dataclass
class Summary:
    """What one definition holds by itself, and the fragments it spreads."""

    depth: int = 0
    aliases: int = 0
    fields: int = 0
    introspection_fields: int = 0
    # (fragment name, level of the spread or None when under an introspection field)
    spreads: list[tuple[str, int | None]] = field(default_factory=list)


@dataclass(frozen=True)
class Totals:
    """A definition's depth and counts with its fragments inlined."""

    depth: int
    aliases: int
    fields: int
    introspection_fields: int


def summarise(selection_set: SelectionSetNode) -> Summary:
    """One walk over a definition's own selections; spreads are recorded, not followed."""
    summary = Summary()
    stack: list[tuple[SelectionSetNode, int | None]] = [(selection_set, 0)]
    while stack:
        selections, level = stack.pop()
        for selection in selections.selections:
            if level is not None:
                summary.depth = max(summary.depth, level)
            if isinstance(selection, FragmentSpreadNode):
                summary.spreads.append((selection.name.value, level))
            elif isinstance(selection, InlineFragmentNode):
                stack.append((selection.selection_set, level))
            elif isinstance(selection, FieldNode):
                below = _level_below(selection, level)
                if level is None or (below is None and selection.selection_set is not None):
                    summary.introspection_fields += 1
                else:
                    summary.fields += 1
                summary.aliases += selection.alias is not None
                if selection.selection_set is not None:
                    stack.append((selection.selection_set, below))
    return summary


def _level_below(node: FieldNode, level: int | None) -> int | None:
    if level is None or node.name.value.startswith("__"):
        return None  # introspection: not counted, like Strawberry's QueryDepthLimiter
    return level + 1


def combine(summary: Summary, known: dict[str, Totals]) -> Totals:
    """A definition's totals from its summary and the totals of the fragments it spreads."""
    depth, aliases, fields = summary.depth, summary.aliases, summary.fields
    introspection_fields = summary.introspection_fields
    for name, level in summary.spreads:
        spread = known.get(name)
        if spread is None:
            continue  # unknown fragment, or a spread that closes a cycle
        if level is not None:
            depth = max(depth, level + spread.depth)
        aliases = min(aliases + spread.aliases, COUNT_BOUND)
        if level is None:  # a fragment spread inside `__schema` / `__type`
            introspection_fields += spread.fields + spread.introspection_fields
        else:
            fields += spread.fields
            introspection_fields += spread.introspection_fields
        fields, introspection_fields = (
            min(fields, COUNT_BOUND),
            min(introspection_fields, COUNT_BOUND),
        )
    return Totals(depth, aliases, fields, introspection_fields)


def fragment_totals(summaries: dict[str, Summary]) -> dict[str, Totals]:
    """Totals of every fragment, each computed once, after the fragments it spreads.

    Depth-first without recursion (fragment chains can be long); a spread of a fragment still
    being computed is a cycle and is left out.
    """
    known: dict[str, Totals] = {}
    for root in summaries:
        if root in known:
            continue
        path: list[tuple[str, Iterator[tuple[str, int | None]]]] = [
            (root, iter(summaries[root].spreads))
        ]
        on_path = {root}
        while path:
            name, spreads = path[-1]
            for spread, _level in spreads:
                if spread in summaries and spread not in known and spread not in on_path:
                    path.append((spread, iter(summaries[spread].spreads)))
                    on_path.add(spread)
                    break
            else:
                path.pop()
                on_path.discard(name)
                known[name] = combine(summaries[name], known)
    return known


@dataclass(frozen=True)
class DocumentLimits:
    operations: list[tuple[OperationDefinitionNode, Totals]]

    @classmethod
    def of(cls, document: DocumentNode) -> DocumentLimits:
        fragments = {
            definition.name.value: summarise(definition.selection_set)
            for definition in _of_type(document.definitions, FragmentDefinitionNode)
        }
        known = fragment_totals(fragments)
        operations = [
            (operation, combine(summarise(operation.selection_set), known))
            for operation in _of_type(document.definitions, OperationDefinitionNode)
        ]
        return cls(operations)

    @property
    def aliases(self) -> int:
        return min(sum(totals.aliases for _, totals in self.operations), COUNT_BOUND)

    @property
    def fields(self) -> int:
        return min(sum(totals.fields for _, totals in self.operations), COUNT_BOUND)

    @property
    def introspection_fields(self) -> int:
        total = sum(totals.introspection_fields for _, totals in self.operations)
        return min(total, COUNT_BOUND)

    def errors(
        self, max_introspection_fields: int = MAX_INTROSPECTION_FIELDS
    ) -> list[GraphQLError]:
        errors = [
            GraphQLError(
                f"'{_name(operation)}' exceeds maximum operation depth of {MAX_DEPTH}", operation
            )
            for operation, totals in self.operations
            if totals.depth > MAX_DEPTH
        ]
        if self.aliases > MAX_ALIASES:
            errors.append(
                GraphQLError(f"{_count(self.aliases)} aliases found. Allowed: {MAX_ALIASES}")
            )
        if self.fields > MAX_FIELDS:
            errors.append(
                GraphQLError(f"{_count(self.fields)} fields found. Allowed: {MAX_FIELDS}")
            )
        if self.introspection_fields > max_introspection_fields:
            count, allowed = _count(self.introspection_fields), max_introspection_fields
            message = (
                f"{count} introspection fields found. Allowed: {allowed}"
                if allowed
                else "GraphQL introspection is disabled"
            )
            errors.append(GraphQLError(message))
        return errors


def _name(operation: OperationDefinitionNode) -> str:
    return operation.name.value if operation.name else "anonymous"


def _count(count: int) -> str:
    return f"{count}" if count < COUNT_BOUND else f"{COUNT_BOUND} or more"


def _of_type(definitions: Iterable[Any], kind: type[Definition]) -> Iterator[Any]:
    return (definition for definition in definitions if isinstance(definition, kind))


class DocumentLimitsRule(ASTValidationRule):
    """Refuses operations nested deeper than MAX_DEPTH and documents with over MAX_ALIASES
    aliases (the messages of Strawberry's QueryDepthLimiter and MaxAliasesLimiter) or over
    MAX_FIELDS fields, all counted as if the fragments were inlined.

    A refused document is not validated further: graphql-core's OverlappingFieldsCanBeMergedRule
    compares every pair of fields that share a response name, which grows with the square of
    the fields (about 1 s for 2,000 tokens of `sessions { edges { cursor } }`). This rule acts
    on the document node, before any rule has entered a definition, and ends the validation
    with graphql-core's own ValidationAbortedError (public in graphql.validation.validate, the
    error validate() uses for its max_errors limit): validate() keeps the errors reported so
    far plus the one raised, and stops visiting.
    """

    max_introspection_fields: ClassVar[int] = MAX_INTROSPECTION_FIELDS

    def enter_document(self, node: DocumentNode, *_args: object) -> VisitorAction:
        errors = DocumentLimits.of(node).errors(self.max_introspection_fields)
        if errors:
            *reported, last = errors
            for error in reported:
                self.report_error(error)
            raise ValidationAbortedError(last.message, last.nodes)
        return SKIP  # the whole document has been read; nothing below needs visiting


class ProductionDocumentLimitsRule(DocumentLimitsRule):
    """The same limits with no introspection at all: `__schema` and `__type` are refused here,
    before graphql-core compares their fields (DisableIntrospection would refuse them too, but
    only alongside the other rules, after that work)."""

    max_introspection_fields: ClassVar[int] = 0
