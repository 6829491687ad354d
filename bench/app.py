"""The hub app plus the benchmark's baseline route: the same authentication and SQL as `member(id:)`, no GraphQL."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.app import create_app
from hub.auth.principal import authenticate
from hub.auth.tokens import InvalidToken
from hub.members import service as members
from hub.state import Hub


async def raw_member(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    raw = request.headers.get("authorization", "").removeprefix("Bearer ")
    now = hub.clock.now()
    try:
        async with hub.db.read() as conn:
            principal = await authenticate(conn, raw, settings=hub.settings, keys=hub.keys, now=int(now.timestamp()))
    except InvalidToken as exc:
        return JSONResponse({"error": "invalid_token", "error_description": str(exc)}, status_code=401)
    if not principal.has("member:read"):
        return JSONResponse({"error": "insufficient_scope"}, status_code=403)
    async with hub.db.read() as conn:
        view = await members.by_pairwise_id(conn, principal.partner.id, request.query_params["id"], now)
    if view is None:
        return JSONResponse({"data": {"member": None}})
    consented = "member:read" in view.permissions
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
