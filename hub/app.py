"""The ASGI application: OAuth endpoints, the authenticated GraphQL endpoint, the member portal, the developers'
page, the published SDL, probes and metrics.

A GraphQL request flows: bearer token → `authenticate` (signature, claims, then revocation and client/partner
state, cached per process for partner tokens until PostgreSQL reports a change) → `hub.graphql_http` → strawberry
with a `Context` (hub, principal, one `now`) → resolvers, each guarded by a scope permission, calling domain
services that apply consent in SQL. Around it all, `observability.middleware.Observed`: request id, metrics, one
log line.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

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
from hub.observability import logs, tracing
from hub.observability.metrics import MetricsEndpoint
from hub.observability.middleware import Observed
from hub.portal import routes as portal_routes
from hub.schema import client_sdl
from hub.state import Hub

log = logging.getLogger("hub.app")


async def health(request: Request) -> Response:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    """Readiness: the database answers too (a load balancer sends nothing here until it does)."""
    hub: Hub = request.app.state.hub
    try:
        async with hub.db.read() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        log.warning("not ready: the database does not answer (%s)", type(exc).__name__)
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


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
    traced = tracing.setup(hub.db)
    endpoint = GraphQLEndpoint(hub, traced=traced)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await hub.close()
        tracing.flush()

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
        Route("/readyz", ready, methods=["GET"]),
        Route("/metrics", MetricsEndpoint(hub.db, hub.settings.metrics_token, hub.settings.development).handle),
        Route("/schema.graphql", sdl, methods=["GET"]),
        Route("/developers", developers, methods=["GET"]),
        Route("/graphql", endpoint, methods=["GET", "POST"]),
        *([Route("/graphiql/{name}", endpoint.graphiql.asset, methods=["GET"])] if endpoint.graphiql else []),
        *oauth_routes.routes,
        *portal_routes.routes,
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    templates = {route.endpoint: route.path for route in routes}
    app.add_middleware(Observed, routes=lambda endpoint: templates.get(endpoint, "unmatched"))
    if traced:
        app.add_middleware(_Traced)
    app.state.hub = hub
    app.state.sdl = client_sdl(endpoint.schema)
    return app


class _Traced:
    """OpenTelemetry's ASGI middleware, made when tracing is on (its package is the `otel` extra)."""

    def __init__(self, app: Any) -> None:
        self.app = tracing.asgi(app)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def serve_app() -> Starlette:
    """The factory `hub serve` gives uvicorn: logging as configured (JSON lines in production), then the app."""
    settings = Settings.from_env()
    logs.configure(json_lines=settings.json_logs, level=settings.log_level)
    return create_app(settings)
