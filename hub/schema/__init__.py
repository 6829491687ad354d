"""The GraphQL schema: one strawberry federation schema composed from per-domain query and mutation classes."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)

from hub.config import Settings
from hub.schema.errors import ErrorCodes
from hub.schema.members import MemberMutations, MemberQueries
from hub.schema.viewer import ViewerQueries


@strawberry.type
class Query(ViewerQueries, MemberQueries):
    pass


@strawberry.type
class Mutation(MemberMutations):
    pass


def _is_internal(error: GraphQLError) -> bool:
    """Errors we raised on purpose carry a code; anything else is a bug whose detail must not reach a partner."""
    return not (error.extensions or {}).get("code")


def build_schema(settings: Settings) -> strawberry.federation.Schema:
    extensions: list[type[SchemaExtension] | object] = [
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
        lambda: QueryDepthLimiter(max_depth=settings.graphql_max_depth),
        lambda: MaxAliasesLimiter(max_alias_count=settings.graphql_max_aliases),
        lambda: MaxTokensLimiter(max_token_count=settings.graphql_max_tokens),
    ]
    if not settings.development:
        extensions.append(lambda: MaskErrors(should_mask_error=_is_internal))
    # Last in the list so that its post-processing runs first (extensions unwind in reverse): codes are attached
    # before MaskErrors decides what to hide.
    extensions.append(ErrorCodes)
    return strawberry.federation.Schema(
        query=Query,
        mutation=Mutation,
        extensions=extensions,  # type: ignore[arg-type]
    )
