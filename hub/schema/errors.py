"""Errors, mapped once. Every GraphQL error leaves the hub with `extensions.code`, so partners can branch on it;
a mutation's domain errors answer in its payload's `errors` (`mutation()` below), with a code from its enum."""

from __future__ import annotations

import logging
import typing
from collections.abc import Awaitable, Callable, Iterator
from enum import Enum
from typing import Any, TypeVar

import strawberry
from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.extensions import FieldExtension, SchemaExtension
from strawberry.types.field import StrawberryField

from hub.errors import DomainError

E = TypeVar("E")


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
        return error  # an unexpected exception in a resolver: hidden in production (ErrorCodes.mask)
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
    """Every error leaves with a code. An error without one after that is a bug: with `mask` (production) its
    message, which may carry internals, is replaced and it goes out as INTERNAL_SERVER_ERROR."""

    def __init__(self, *, mask: bool = False) -> None:
        self.mask = mask

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and result.errors:
            result.errors = [self._public(_with_code(e)) for e in result.errors]

    def _public(self, error: GraphQLError) -> GraphQLError:
        if not self.mask or (error.extensions or {}).get("code"):
            return error
        return GraphQLError(
            "Unexpected error.",
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR"},
        )


# -- mutation payloads -------------------------------------------------------------------------------------------
log = logging.getLogger("hub.schema.errors")


class UnmappedErrorCode(Exception):
    """A domain error whose code the payload's error enum lacks: a bug (tests fail on it), masked in production."""


_CODES: dict[type[Any], type[Enum]] = {}


def error_of(error_type: type[E], error: DomainError) -> E:
    """The payload's error for a domain error, by the code enum its `code` field declares."""
    codes = _CODES.get(error_type)
    if codes is None:
        codes = _CODES[error_type] = typing.get_type_hints(error_type)["code"]
    try:
        code = codes[error.code]
    except KeyError:
        log.error("%s is not in %s", error.code, codes.__name__)
        raise UnmappedErrorCode(f"{error.code} is not in {codes.__name__}") from error
    return error_type(field=error.field, message=error.message, code=code)  # type: ignore[call-arg]


class ErrorsInPayload(FieldExtension):
    """Saleor's base mutation, as a field extension: a domain error raised anywhere in a mutation becomes its
    payload's `errors` (every other field of the payload at its default), mapped here and nowhere else."""

    payload: type[Any]
    error_type: type[Any]

    def apply(self, field: StrawberryField) -> None:
        payload = typing.cast(type[Any], field.type)
        [errors] = [f for f in payload.__strawberry_definition__.fields if f.python_name == "errors"]
        self.payload = payload
        self.error_type = errors.type.of_type

    async def resolve_async(self, next_: Callable[..., Awaitable[Any]], source: Any, info: Any, **kwargs: Any) -> Any:
        try:
            return await next_(source, info, **kwargs)
        except DomainError as error:
            return self.payload(errors=[error_of(self.error_type, error)])


def mutation(*, extensions: list[FieldExtension], description: str) -> Any:
    """A mutation whose domain errors answer in its payload (whose other fields must have defaults)."""
    return strawberry.mutation(extensions=[*extensions, ErrorsInPayload()], description=description)
