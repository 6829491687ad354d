"""The GraphQL schema: one strawberry federation schema composed from per-domain query and mutation classes."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, SchemaExtension
from strawberry.schema.config import StrawberryConfig

from hub.config import Settings
from hub.consent.access_log import Access
from hub.schema.documents import prepared_documents
from hub.schema.errors import ErrorCodes
from hub.schema.limits import Limits
from hub.schema.members import MemberMutations, MemberQueries
from hub.schema.points import PointsMutations, PointsQueries
from hub.schema.purchases import PurchaseMutations
from hub.schema.scalars import SCALARS
from hub.schema.viewer import ViewerQueries


@strawberry.type
class Query(ViewerQueries, MemberQueries, PointsQueries):
    pass


@strawberry.type
class Mutation(MemberMutations, PointsMutations, PurchaseMutations):
    pass


class AccessLogging(SchemaExtension):
    """Writes the access log for the member data a request read, before its response can leave the hub."""

    async def on_execute(self):
        yield
        ctx = self.execution_context.context
        if not ctx.accessed or ctx.principal is None:
            return
        accesses = [
            Access(member_id, ctx.principal.partner.id, consent_pk, frozenset(permissions), ctx.now)
            for (member_id, consent_pk), permissions in ctx.accessed.items()
        ]
        await ctx.hub.access_log.record(accesses)


def _is_internal(error: GraphQLError) -> bool:
    """Errors we raised on purpose carry a code; anything else is a bug whose detail must not reach a partner."""
    return not (error.extensions or {}).get("code")


def build_schema(settings: Settings) -> strawberry.federation.Schema:
    limits = Limits(settings.graphql_max_depth, settings.graphql_max_aliases, settings.graphql_max_cost)
    extensions: list[type[SchemaExtension] | object] = [
        prepared_documents(limits, settings.graphql_max_tokens),
        AccessLogging,
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
        config=StrawberryConfig(scalar_map=SCALARS),
    )
