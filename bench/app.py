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
from hub.state import Hub


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


def create_bench_app() -> Starlette:
    app = create_app()
    app.router.routes.append(Route("/bench/raw-member", raw_member, methods=["GET"]))
    return app


def create_unchecked_app() -> Starlette:
    """The hub with consent checking and access logging taken out, for `bench.consent_overhead` ONLY.

    The member lookup loses its consent join (every linked member is visible with every permission), the
    per-field consent permission always passes, and the access-log extension does nothing. Never serve this.
    """
    from sqlalchemy import bindparam, literal, select

    from hub import schema
    from hub.consent.models import consent
    from hub.members.models import member, member_link
    from hub.schema import permissions

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
        permissions.ConsentPermits.has_permission = lambda self, source, info, **kwargs: True  # type: ignore[method-assign]

    async def no_logging(self: object):  # type: ignore[no-untyped-def]
        yield

    if "log" in parts:
        schema.AccessLogging.on_execute = no_logging  # type: ignore[method-assign]
    return create_app()
