"""Every GraphQL error leaves the hub with `extensions.code`, so partners can branch on it."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.extensions import SchemaExtension

from hub.errors import DomainError


def _with_code(error: GraphQLError) -> GraphQLError:
    extensions = dict(error.extensions or {})
    if "code" in extensions:
        return error
    original = error.original_error
    while isinstance(original, GraphQLError) and original.original_error is not None:
        original = original.original_error  # a scalar's refusal, wrapped by variable coercion
    if isinstance(original, DomainError):
        extensions["code"] = original.code
        if original.field:
            extensions["field"] = original.field
        message = original.message if error.path is not None else error.message
    elif isinstance(error, GraphQLSyntaxError):
        extensions["code"] = "GRAPHQL_PARSE_FAILED"
        message = error.message
    elif error.path is None:
        # Raised before any field ran: the document or its variables do not fit the schema.
        extensions["code"] = "GRAPHQL_VALIDATION_FAILED"
        message = error.message
    else:
        return error  # an unexpected exception in a resolver: MaskErrors hides it in production
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=original,
        extensions=extensions,
    )


class ErrorCodes(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and result.errors:
            result.errors = [_with_code(e) for e in result.errors]
