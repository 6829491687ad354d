"""Each distinct GraphQL document is parsed (within the token limit) and validated (with the hub's limits) once.

This is strawberry's MaxTokensLimiter, AddValidationRules, ParserCache and ValidationCache as one extension keyed
by the query text. As four, they cost ~10 % of a redemption's CPU (bench/redeem.py): four hooks set up per request,
and a validation cache key that hashes the whole parsed document every time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache

from graphql import ASTValidationRule, DocumentNode, GraphQLError, GraphQLSchema, parse, specified_rules
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document


def prepared_documents(
    limits: list[type[ASTValidationRule]], max_tokens: int, maxsize: int = 512
) -> Callable[[], SchemaExtension]:
    """A factory for the schema's extension list; the caches are bounded (LRU) and shared by all requests."""
    rules = (*specified_rules, *limits)

    @lru_cache(maxsize=maxsize)
    def parsed(query: str) -> DocumentNode:
        return parse(query, max_tokens=max_tokens)  # a syntax error raises and is not cached

    @lru_cache(maxsize=maxsize)
    def errors(schema: GraphQLSchema, query: str) -> list[GraphQLError]:
        return validate_document(schema, parsed(query), rules)

    class PreparedDocuments(SchemaExtension):
        def on_parse(self) -> Iterator[None]:
            context = self.execution_context
            if context.query is not None:
                context.graphql_document = parsed(context.query)
            yield

        def on_validate(self) -> Iterator[None]:
            context = self.execution_context
            if context.query is not None:
                context.pre_execution_errors = errors(context.schema._schema, context.query)
            yield

    return PreparedDocuments
