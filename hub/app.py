"""The ASGI application: OAuth endpoints, the authenticated GraphQL endpoint, health and the published SDL.

A GraphQL request flows: bearer token → `authenticate` (signature, claims, then revocation and client/partner
state, cached per process for partner tokens until PostgreSQL reports a change) → `hub.graphql_http` → strawberry
with a `Context` (hub, principal, one `now`) → resolvers, each guarded by a scope permission, calling domain
services that apply consent in SQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from hub.auth import routes as oauth_routes
from hub.clock import Clock
from hub.config import Settings
from hub.developers import developers
from hub.graphql_http import GraphQLEndpoint
from hub.portal import routes as portal_routes
from hub.state import Hub


async def health(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    async with hub.db.read() as conn:
        await conn.execute(text("SELECT 1"))
    return JSONResponse({"status": "ok"})


async def sdl(request: Request) -> Response:
    return PlainTextResponse(request.app.state.sdl, media_type="application/graphql")


async def index(request: Request) -> Response:
    issuer = request.app.state.hub.settings.issuer
    return JSONResponse(
        {
            "name": "hub",
            "graphql": f"{issuer}/graphql",
            "schema": f"{issuer}/schema.graphql",
            "oauth_metadata": f"{issuer}/.well-known/oauth-authorization-server",
            "documentation": f"{issuer}/developers",
        }
    )


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> Starlette:
    hub = Hub.create(settings or Settings.from_env(), clock)
    hub.settings.programme  # noqa: B018 (a bad programme file stops the start, not the first purchase)
    endpoint = GraphQLEndpoint(hub)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await hub.close()

    app = Starlette(
        routes=[
            Route("/", index, methods=["GET"]),
            Route("/healthz", health, methods=["GET"]),
            Route("/schema.graphql", sdl, methods=["GET"]),
            Route("/developers", developers, methods=["GET"]),
            Route("/graphql", endpoint, methods=["GET", "POST"]),
            *([Route("/graphiql/{name}", endpoint.graphiql.asset, methods=["GET"])] if endpoint.graphiql else []),
            *oauth_routes.routes,
            *portal_routes.routes,
        ],
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.sdl = endpoint.schema.as_str()
    return app
