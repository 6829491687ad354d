"""The GraphQL schema: one strawberry federation schema composed from per-domain query and mutation classes."""

from __future__ import annotations

import logging
from typing import Any

import strawberry
from graphql import GraphQLError, print_schema
from strawberry.extensions import SchemaExtension, max_aliases, query_depth_limiter
from strawberry.federation.schema import FederationAny
from strawberry.schema.config import StrawberryConfig

from hub.config import Settings
from hub.errors import DomainError
from hub.observability import tracing
from hub.schema.activities import ActivityMutations
from hub.schema.consent import ConsentMutations
from hub.schema.context import Info
from hub.schema.documents import prepared_documents
from hub.schema.errors import ErrorCodes
from hub.schema.limits import Limits
from hub.schema.members import MemberMutations, MemberQueries, members_by_pairwise_ids
from hub.schema.points import PointsMutations, PointsQueries
from hub.schema.purchases import PurchaseMutations
from hub.schema.retention import RetentionQueries
from hub.schema.rewards import RewardMutations, RewardQueries
from hub.schema.scalars import SCALARS
from hub.schema.viewer import ViewerQueries
from hub.schema.webhooks import WebhookMutations, WebhookQueries


@strawberry.type
class Query(ViewerQueries, MemberQueries, PointsQueries, RetentionQueries, RewardQueries, WebhookQueries):
    pass


@strawberry.type
class Mutation(
    MemberMutations,
    ConsentMutations,
    PointsMutations,
    PurchaseMutations,
    ActivityMutations,
    RewardMutations,
    WebhookMutations,
):
    pass


log = logging.getLogger("hub.graphql")
MAX_REPRESENTATIONS = 100


class HubSchema(strawberry.federation.Schema):
    """Federation's `_entities`, bounded and batched: at most 100 representations, each checked, and the members
    among them read in one statement (strawberry's default resolves them one by one and trusts their shape)."""

    async def entities_resolver(  # type: ignore[override]
        self, info: Info, representations: list[FederationAny]
    ) -> list[FederationAny]:
        if len(representations) > MAX_REPRESENTATIONS:
            raise DomainError(
                "INVALID_INPUT", f"at most {MAX_REPRESENTATIONS} representations a request", "representations"
            )
        wanted: dict[int, str] = {}
        results: list[Any] = [None] * len(representations)
        for index, representation in enumerate(representations):
            problem = _representation_problem(representation)
            if problem is not None:
                results[index] = GraphQLError(
                    f"representations[{index}]: {problem}",
                    extensions={"code": "INVALID_INPUT", "field": f"representations[{index}]"},
                )
            else:
                wanted[index] = representation["id"]  # type: ignore[index]
        found = await members_by_pairwise_ids(info, set(wanted.values()))
        for index, pairwise_id in wanted.items():
            results[index] = found.get(pairwise_id)
        return results

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Log the hub's own faults with their traceback; a client's mistakes (a bad document, a refused field, a
        domain error) are answers, not faults, and are not logged as errors."""
        for error in errors:
            if _expected(error):
                log.debug("answered with an error: %s", error.message)
            else:
                log.error("fault while executing an operation: %s", error.message, exc_info=error.original_error)


def _expected(error: GraphQLError) -> bool:
    original = error.original_error
    while isinstance(original, GraphQLError) and original.original_error is not None:
        original = original.original_error
    if original is None or isinstance(original, DomainError):
        return True
    return isinstance(original, GraphQLError) and bool((original.extensions or {}).get("code"))


def _representation_problem(representation: Any) -> str | None:
    if not isinstance(representation, dict):
        return "a representation is an object with __typename and its key fields"
    if representation.get("__typename") != "Member":
        return "Member is the only entity type"
    pairwise_id = representation.get("id")
    if (
        not isinstance(pairwise_id, str)
        or not 1 <= len(pairwise_id) <= 100
        or set(representation) != {"__typename", "id"}
    ):
        return "a Member representation has exactly __typename and id (a string)"
    return None


def client_sdl(schema: strawberry.federation.Schema) -> str:
    """The SDL partners' tools load (`/schema.graphql`, docs/schema.graphql): the executable schema as graphql-core
    prints it, every directive it uses defined. The federation SDL, with `@key`, `@shareable` and `@link` applied,
    is for routers: `_service { sdl }`, or `hub schema print --federation`."""
    return print_schema(schema._schema)


def build_schema(settings: Settings, *, traced: bool = False) -> strawberry.federation.Schema:
    if settings.graphql_max_cost:
        documents = prepared_documents(
            Limits(settings.graphql_max_depth, settings.graphql_max_aliases, settings.graphql_max_cost),
            settings.graphql_max_tokens,
        )
    else:
        # No cost analysis (HUB_GRAPHQL_MAX_COST=0, a benchmark's baseline): strawberry's depth and alias rules,
        # which walk every fragment path.
        documents = prepared_documents(
            None,
            settings.graphql_max_tokens,
            [
                query_depth_limiter.create_validator(settings.graphql_max_depth, None, None),
                max_aliases.create_validator(settings.graphql_max_aliases),
            ],
        )
    extensions: list[type[SchemaExtension] | object] = [documents, lambda: ErrorCodes(mask=not settings.development)]
    if traced:
        extensions.insert(0, tracing.schema_extension())
    return HubSchema(
        query=Query,
        mutation=Mutation,
        extensions=extensions,  # type: ignore[arg-type]
        config=StrawberryConfig(scalar_map=SCALARS),
    )
