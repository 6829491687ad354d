"""Each distinct GraphQL document is parsed (within the token limit) and validated once; every request's
operation is then measured (depth, aliases, cost: schema/limits.py) against the hub's limits.

This is strawberry's MaxTokensLimiter, ParserCache and ValidationCache as one extension keyed by the query text.
As separate extensions they cost ~10 % of a redemption's CPU (bench/redeem.py): a hook set up per request each,
and a validation cache key that hashes the whole parsed document every time. The measure depends on the
variables (a page's `first`), so it runs per request, in one linear pass; for a document whose measure uses no
variables it is kept with the document.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    StringValueNode,
    parse,
    specified_rules,
)
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from hub import text
from hub.auth.rate_limits import RateLimited
from hub.schema.limits import LimitError, Limits, Measure, measure


class TextLiterals(ASTValidationRule):
    """String literals in the document obey the same text rule as variables (hub/text.py)."""

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        problem = text.problem(node.value)
        if problem is not None:
            self.report_error(GraphQLError(f"a string holds {problem}", node, extensions={"code": "INVALID_INPUT"}))


def prepared_documents(
    limits: Limits | None, max_tokens: int, rules: Sequence[type[ASTValidationRule]] = (), maxsize: int = 512
) -> Callable[[], SchemaExtension]:
    """A factory for the schema's extension list; the caches are bounded (LRU) and shared by all requests.

    `limits` None: no measure, the operator's choice for a benchmark baseline; `rules` then carry depth and
    aliases (strawberry's limiters, as before the measure existed).
    """

    @lru_cache(maxsize=maxsize)
    def parsed(query: str) -> DocumentNode:
        try:
            return parse(query, max_tokens=max_tokens)  # a syntax error raises and is not cached
        except RecursionError:
            raise GraphQLError(
                "Syntax Error: the document is nested too deeply", extensions={"code": "GRAPHQL_PARSE_FAILED"}
            ) from None

    # Figures of operations that hold whatever the variables (most: only a page's `first` varies them).
    constant: dict[tuple[str, str | None], Measure] = {}

    @lru_cache(maxsize=maxsize)
    def errors(schema: GraphQLSchema, query: str) -> list[GraphQLError]:
        return validate_document(schema, parsed(query), (*specified_rules, TextLiterals, *rules))

    class PreparedDocuments(SchemaExtension):
        def on_parse(self) -> Iterator[None]:
            context = self.execution_context
            if context.query is not None:
                context.graphql_document = parsed(context.query)
            yield

        async def on_validate(self) -> AsyncIterator[None]:
            context = self.execution_context
            # The operation's name as the document has it (partners may leave `operationName` out): for the
            # request's metrics and log line.
            context.context.operation_name = context.operation_name
            if context.query is not None:
                found = errors(context.schema._schema, context.query)
                if not found and limits is not None:
                    found = await self._measure(context, limits)
                context.pre_execution_errors = found
            yield

        async def _measure(self, context: Any, limits: Limits) -> list[GraphQLError]:
            assert context.graphql_document is not None
            key = (context.query, context.operation_name)
            figures = constant.get(key)
            if figures is None:
                try:
                    figures = measure(
                        context.schema._schema,
                        context.graphql_document,
                        context.operation_name,
                        context.variables,
                        limits,
                    )
                except LimitError as refused:
                    return [GraphQLError(refused.message, extensions={"code": refused.code, **refused.extensions})]
                if not figures.depends_on_variables:
                    if len(constant) >= maxsize:
                        constant.pop(next(iter(constant)))
                    constant[key] = figures
            ctx = context.context
            ctx.cost = figures.cost
            principal = ctx.principal
            if principal is not None:
                try:
                    await ctx.hub.rate_limits.cost(principal.client_id, figures.cost, principal.cost_per_minute)
                except RateLimited as refused:
                    ctx.retry_after = refused.retry_after
                    extensions = {"code": "RATE_LIMITED", "retryAfter": refused.retry_after}
                    return [GraphQLError(str(refused), extensions=extensions)]
            return []

        def get_results(self) -> dict[str, Any]:
            cost = getattr(self.execution_context.context, "cost", None)
            if cost is None or limits is None:
                return {}
            return {"cost": {"requested": cost, "maximum": limits.max_cost}}

    return PreparedDocuments
