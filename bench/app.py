"""The hub app plus the benchmark's baseline route: the same authentication, SQL and access-log write as
`member(id:)`, no GraphQL."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.app import create_app
from hub.auth.principal import authenticate
from hub.auth.tokens import InvalidToken
from hub.consent.access_log import Access
from hub.members import service as members
from hub.points import queries as points
from hub.state import Hub
from hub.tiers import service as tiers


async def raw_member(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    raw = request.headers.get("authorization", "").removeprefix("Bearer ")
    now = hub.clock.now()
    try:
        principal = await authenticate(
            hub.db,
            raw,
            settings=hub.settings,
            keys=hub.keys,
            token_states=hub.token_states,
            now=int(now.timestamp()),
        )
    except InvalidToken as exc:
        return JSONResponse({"error": "invalid_token", "error_description": str(exc)}, status_code=401)
    if not principal.has("member:read"):
        return JSONResponse({"error": "insufficient_scope"}, status_code=403)
    async with hub.db.read() as conn:
        view = await members.by_pairwise_id(conn, principal.partner.id, request.query_params["id"], now)
    if view is None:
        return JSONResponse({"data": {"member": None}})
    consented = "member:read" in view.permissions
    if consented:  # the same access-log write the GraphQL path makes for the name and birthday it returns
        access = Access(view.member_id, principal.partner.id, view.consent_pk, frozenset({"member:read"}), now)
        await hub.access_log.record([access])
    return JSONResponse(
        {
            "data": {
                "member": {
                    "id": view.pairwise_id,
                    "externalId": view.external_id,
                    "name": view.name if consented else None,
                    "birthday": view.birthday.isoformat() if consented and view.birthday else None,
                    "memberSince": view.member_since.isoformat(),
                }
            }
        }
    )


async def raw_page(request: Request) -> Response:
    """`members(first: N) { edges { node { id externalId points { available pending } tier { level name benefits
    { discountRate } } } } }` without GraphQL: the same authentication, the same batched domain reads (the page,
    balances, tier standings) and the same access-log rows, the same JSON."""
    hub: Hub = request.app.state.hub
    now = hub.clock.now()
    try:
        principal = await authenticate(
            hub.db,
            request.headers.get("authorization", "").removeprefix("Bearer "),
            settings=hub.settings,
            keys=hub.keys,
            token_states=hub.token_states,
            now=int(now.timestamp()),
        )
    except InvalidToken as exc:
        return JSONResponse({"error": "invalid_token", "error_description": str(exc)}, status_code=401)
    if not {"member:read", "points:read"} <= principal.scopes:
        return JSONResponse({"error": "insufficient_scope"}, status_code=403)
    version = hub.settings.programme.at(now)
    async with hub.db.read() as conn:
        page = await members.page(conn, principal.partner.id, now, first=int(request.query_params["first"]), after=None)
    views = page.members
    async with hub.db.read() as conn:
        balances = await points.balances_of(conn, views)
    async with hub.db.read() as conn:
        standings = await tiers.standings_of(conn, views, version, now, hub.settings.points_policy.zone)
    nodes = []
    for view, balance, standing in zip(views, balances, standings, strict=True):
        assert isinstance(balance, points.Balances) and isinstance(standing, tiers.Standing)
        level = version.tiers.by_number(standing.state.level)
        nodes.append(
            {
                "node": {
                    "id": view.pairwise_id,
                    "externalId": view.external_id,
                    "points": {"available": balance.available, "pending": balance.pending},
                    "tier": {
                        "level": level.level,
                        "name": level.name,
                        "benefits": {"discountRate": str(level.discount_rate)},
                    },
                }
            }
        )
    await hub.access_log.record(
        [
            Access(v.member_id, principal.partner.id, v.consent_pk, frozenset({"member:read", "points:read"}), now)
            for v in views
        ]
    )
    return JSONResponse({"data": {"members": {"edges": nodes}}})


def create_bench_app() -> Starlette:
    app = create_app()
    app.router.routes.append(Route("/bench/raw-member", raw_member, methods=["GET"]))
    app.router.routes.append(Route("/bench/raw-page", raw_page, methods=["GET"]))
    return app


def create_unchecked_app() -> Starlette:
    """The hub with consent checking and access logging taken out, for `bench.consent_overhead` ONLY.

    The member lookup loses its consent join (every linked member is visible with every permission), the
    per-field consent permission always passes, and the access-log extension does nothing. Never serve this.
    """
    from sqlalchemy import bindparam, literal, select

    from hub.consent.models import consent
    from hub.consent.rule import MemberView
    from hub.graphql_http import GraphQLEndpoint
    from hub.members.models import member, member_link

    everything = sorted({"member:read", "points:read"})
    unchecked = (
        select(
            member.c.id.label("member_id"),
            member_link.c.pairwise_id,
            member_link.c.external_id,
            member.c.name,
            member.c.birthday,
            member_link.c.created_at.label("member_since"),
            literal(everything, type_=consent.c.permissions.type).label("permissions"),
            literal(0).label("consent_pk"),
            literal(None).label("data_window_from"),
        )
        .select_from(member_link)
        .join(member, member.c.id == member_link.c.member_id)
        .where(
            member_link.c.partner_id == bindparam("partner_id"),
            member.c.status == "active",
            member_link.c.pairwise_id == bindparam("pairwise_id"),
        )
    )
    parts = os.environ.get("HUB_BENCH_UNCHECKED", "consent log").split()
    if "consent" in parts:
        members._BY_PAIRWISE_ID = unchecked  # type: ignore[assignment]
        MemberView.permits = lambda self, permission: True  # type: ignore[method-assign]
        MemberView.require = lambda self, permission: None  # type: ignore[method-assign]

    async def no_logging(self: object, context: object) -> bool:
        return True

    if "log" in parts:
        GraphQLEndpoint.log_access = no_logging  # type: ignore[method-assign,assignment]
    return create_app()


def create_unobserved_app() -> Starlette:
    """The hub with its observability taken out, for `bench.observability_overhead` ONLY: no request-id/metrics/log
    middleware, and the metrics the endpoints count made inert. Never serve this."""
    from hub.observability import metrics
    from hub.observability.middleware import Observed

    class Inert:
        def labels(self, *args: object) -> Inert:
            return self

        def inc(self, *args: object) -> None:
            pass

        def observe(self, *args: object) -> None:
            pass

    for name in ("GRAPHQL_OPERATIONS", "GRAPHQL_ERRORS", "GRAPHQL_LATENCY", "LEDGER_COMMANDS", "BEARER_REFUSED"):
        setattr(metrics, name, Inert())
    app = create_app()
    app.user_middleware = [m for m in app.user_middleware if m.cls is not Observed]
    return app
