"""What one GraphQL operation may ask for: depth, aliases and cost, computed in one linear pass.

A naive limiter walks every path through the fragments, so a few hundred bytes of fragments that each spread
the previous one twice cost seconds of the event loop. Here each fragment is measured once, in dependency order,
and a spread adds the fragment's figures without walking it again: the work is linear in the document's size,
and the figures themselves (which may be astronomically large) are plain integers.

Cost: every field costs 1, plus the cost of its selection times its multiplier: the `first` a paged field was
given (its default otherwise), or the number of `_entities` representations. The cost of the operation that will
run is checked against the maximum and reported in the response's `extensions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    ListValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
    parse,
    value_from_ast_untyped,
)
from graphql.language import DocumentNode

DEFAULT_MULTIPLIER = 50  # a paged field asked without `first` and with no default of its own
MAX_NESTING = 40  # selection sets inside each other, introspection included (GraphiQL's own query nests ~13)


class LimitError(Exception):
    def __init__(self, code: str, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.extensions = code, message, extensions


@dataclass(frozen=True)
class Measure:
    depth: int
    aliases: int
    cost: int
    # False: the figures hold for any variables, so they may be kept with the document.
    depends_on_variables: bool = False


@dataclass(frozen=True)
class Limits:
    max_depth: int
    max_aliases: int
    max_cost: int


class _Walk:
    """One pass over one operation's selections, with the fragments it uses measured once each."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
        limits: Limits,
    ) -> None:
        self.schema, self.fragments, self.variables, self.limits = schema, fragments, variables, limits
        self.measured: dict[str, Measure] = {}
        self.used_variables = False  # did a figure depend on the request's variables?

    def fragment(self, name: str) -> Measure:
        """Fragments are measured dependencies first, without recursion over the spread graph."""
        if name in self.measured:
            return self.measured[name]
        order: list[str] = []
        state: dict[str, int] = {}  # 1 visiting, 2 done
        stack: list[tuple[str, bool]] = [(name, False)]
        while stack:
            current, expanded = stack.pop()
            if current in self.measured or state.get(current) == 2:
                continue
            if expanded:
                state[current] = 2
                order.append(current)
                continue
            if state.get(current) == 1:
                raise LimitError("GRAPHQL_VALIDATION_FAILED", f"fragment {current!r} spreads itself")
            definition = self.fragments.get(current)
            if definition is None:
                raise LimitError("GRAPHQL_VALIDATION_FAILED", f"unknown fragment {current!r}")
            state[current] = 1
            stack.append((current, True))
            for spread in _spreads(definition.selection_set, self.limits.max_depth + 1):
                if state.get(spread) == 1:
                    raise LimitError("GRAPHQL_VALIDATION_FAILED", f"fragment {spread!r} spreads itself")
                if spread not in self.measured and state.get(spread) != 2:
                    stack.append((spread, False))
        for current in order:
            definition = self.fragments[current]
            condition = definition.type_condition.name.value
            # A fragment on an introspection type (__Type, __Field, ...) is introspection: its depth is uncounted.
            start = -1 if condition.startswith("__") else 0
            self.measured[current] = self.selections(definition.selection_set, self.schema.get_type(condition), start)
        return self.measured[name]

    def selections(self, selection_set: SelectionSetNode | None, parent: Any, level: int, nesting: int = 0) -> Measure:
        """`level` counts toward the depth limit; `nesting` is the real nesting, which introspection (whose
        depth does not count, as in strawberry's limiter) may not push past `MAX_NESTING` either."""
        if selection_set is None:
            return Measure(0, 0, 0)
        if level > self.limits.max_depth or nesting > MAX_NESTING:
            raise _too_deep(self.limits.max_depth)
        depth = aliases = cost = 0
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                measure = self.field(node, parent, level, nesting)
            elif isinstance(node, InlineFragmentNode):
                condition = node.type_condition
                inner = self.schema.get_type(condition.name.value) if condition is not None else parent
                measure = self.selections(node.selection_set, inner, level, nesting)
            elif isinstance(node, FragmentSpreadNode):
                inner_measure = self.fragment(node.name.value)
                reached = max(level, 0) + inner_measure.depth if inner_measure.depth else 0
                measure = Measure(reached, inner_measure.aliases, inner_measure.cost)
            else:  # pragma: no cover - the grammar has no other selection
                continue
            depth, aliases, cost = max(depth, measure.depth), aliases + measure.aliases, cost + measure.cost
        return Measure(depth, aliases, cost)

    def field(self, node: FieldNode, parent: Any, level: int, nesting: int) -> Measure:
        name = node.name.value
        definition = parent.fields.get(name) if isinstance(parent, GraphQLObjectType) else None
        child_type = get_named_type(definition.type) if definition is not None else None
        introspection = name.startswith("__") or level < 0
        below = -1 if introspection else level + 1  # inside introspection the depth stays uncounted
        inner = self.selections(node.selection_set, child_type, below, nesting + 1)
        aliases = (1 if node.alias is not None else 0) + inner.aliases
        cost = 1 + self.multiplier(node, definition) * inner.cost
        return Measure(0 if introspection else max(level + 1, inner.depth), aliases, cost)

    def multiplier(self, node: FieldNode, definition: Any) -> int:
        arguments = {argument.name.value: argument.value for argument in node.arguments or ()}
        if "representations" in arguments:
            given = self.value(arguments["representations"])
            return len(given) if isinstance(given, list) else 1
        if definition is None or "first" not in definition.args:
            return 1
        if "first" in arguments:
            given = self.value(arguments["first"])
            if isinstance(given, int) and given >= 0:
                return given
        default = definition.args["first"].default_value
        return default if isinstance(default, int) and default > 0 else DEFAULT_MULTIPLIER

    def value(self, node: ValueNode) -> Any:
        if isinstance(node, VariableNode):
            self.used_variables = True
            return self.variables.get(node.name.value)
        if isinstance(node, ListValueNode):
            return node.values
        return value_from_ast_untyped(node, dict(self.variables))


def _spreads(selection_set: SelectionSetNode | None, budget: int) -> list[str]:
    """The fragment names a selection set spreads, to `budget` levels of nesting (deeper fails when measured)."""
    found: list[str] = []
    pending = [(selection_set, 0)]
    while pending:
        current, level = pending.pop()
        if current is None or level > budget:
            continue
        for node in current.selections:
            if isinstance(node, FragmentSpreadNode):
                found.append(node.name.value)
            elif isinstance(node, FieldNode | InlineFragmentNode):
                pending.append((node.selection_set, level + 1))
    return found


def _too_deep(max_depth: int) -> LimitError:
    return LimitError(
        "GRAPHQL_VALIDATION_FAILED",
        f"the query is nested more than {max_depth} levels deep",
        limit="depth",
        maximum=max_depth,
    )


def operation_of(document: DocumentNode, operation_name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name is not None and o.name.value == operation_name), None)


def measure(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    limits: Limits,
) -> Measure:
    """The figures of the operation that will run; LimitError if one exceeds its maximum."""
    operation = operation_of(document, operation_name)
    if operation is None:
        return Measure(0, 0, 0)  # execution reports the missing or ambiguous operation
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    root = {
        OperationType.QUERY: schema.query_type,
        OperationType.MUTATION: schema.mutation_type,
        OperationType.SUBSCRIPTION: schema.subscription_type,
    }[operation.operation]
    walk = _Walk(schema, fragments, variables or {}, limits)
    measured = walk.selections(operation.selection_set, root, 0)
    result = Measure(measured.depth, measured.aliases, measured.cost, walk.used_variables)
    if result.depth > limits.max_depth:
        raise _too_deep(limits.max_depth)
    if result.aliases > limits.max_aliases:
        raise LimitError(
            "GRAPHQL_VALIDATION_FAILED",
            f"the query uses more than {limits.max_aliases} aliases",
            limit="aliases",
            maximum=limits.max_aliases,
        )
    if result.cost > limits.max_cost:
        raise LimitError(
            "QUERY_COST_EXCEEDED",
            f"the query would cost {result.cost}, more than the maximum of {limits.max_cost}",
            cost=result.cost,
            maximum=limits.max_cost,
        )
    return result


def is_introspection(query: str | None) -> bool:
    """Does the document only ask about the schema itself (`__schema`, `__type`, `__typename` at the root)?"""
    if not query:
        return False
    try:
        document = parse(query, max_tokens=20_000)
    except (GraphQLError, RecursionError):
        return False
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            for node in definition.selection_set.selections:
                if not isinstance(node, FieldNode) or not node.name.value.startswith("__"):
                    return False
    return True
