"""The ASGI application: OAuth endpoints, the authenticated GraphQL endpoint, health and the published SDL.

A GraphQL request flows: bearer token → `authenticate` (signature, claims, then one SQL statement for
revocation and client/partner state) → strawberry with a `Context` (hub, principal, one `now`) → resolvers, each
guarded by a scope permission, calling domain services that apply consent in SQL.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from hub.auth import routes as oauth_routes
from hub.auth.principal import Principal, authenticate
from hub.auth.tokens import InvalidToken
from hub.clock import Clock
from hub.config import Settings
from hub.portal import routes as portal_routes
from hub.schema import build_schema
from hub.schema.context import Context
from hub.state import Hub

_PRINCIPAL = "hub.principal"


def _unauthorised(error: str, description: str, status: int = 401) -> Response:
    return JSONResponse(
        {
            "error": error,
            "error_description": description,
            "errors": [{"message": description, "extensions": {"code": error.upper()}}],
        },
        status_code=status,
        headers={"WWW-Authenticate": f'Bearer error="{error}", error_description="{description}"'},
    )


class HubGraphQL(GraphQL[Context, None]):
    def __init__(self, hub: Hub) -> None:
        super().__init__(
            build_schema(hub.settings),
            graphql_ide="graphiql" if hub.settings.development else None,
            allow_queries_via_get=False,
        )
        self.hub = hub

    async def get_context(self, request: Any, response: Any) -> Context:
        return Context(hub=self.hub, principal=request.scope.get(_PRINCIPAL), now=self.hub.clock.now())

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        # Parse errors never reach the schema extensions; masked errors lost their code on purpose.
        response = await super().process_result(request, result)
        errors: list[dict[str, Any]] = response.get("errors") or []  # type: ignore[assignment]
        for error in errors:
            extensions = error.setdefault("extensions", {})
            if "code" not in extensions:
                syntax = str(error.get("message", "")).startswith("Syntax Error")
                extensions["code"] = "GRAPHQL_PARSE_FAILED" if syntax else "INTERNAL_SERVER_ERROR"
        return response


class GraphQLEndpoint:
    """Authenticates the bearer token (if any) before strawberry sees the request: a bad token is a 401."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.graphql = HubGraphQL(hub)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        if "access_token" in request.query_params:
            await _unauthorised("invalid_request", "send the access token in the Authorization header", 400)(
                scope, receive, send
            )
            return
        header = request.headers.get("authorization")
        principal: Principal | None = None
        if header is not None:
            kind, _, raw = header.partition(" ")
            if kind.lower() != "bearer" or not raw.strip():
                await _unauthorised("invalid_request", "use 'Authorization: Bearer <access token>'")(
                    scope, receive, send
                )
                return
            try:
                async with self.hub.db.read() as conn:
                    principal = await authenticate(
                        conn,
                        raw.strip(),
                        settings=self.hub.settings,
                        keys=self.hub.keys,
                        now=int(time.time()),  # token lifetimes are wall-clock time, like their iat/exp
                    )
            except InvalidToken as exc:
                await _unauthorised("invalid_token", str(exc))(scope, receive, send)
                return
        scope[_PRINCIPAL] = principal
        await self.graphql(scope, receive, send)


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
        }
    )


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> Starlette:
    hub = Hub.create(settings or Settings.from_env(), clock)
    hub.settings.programme  # noqa: B018 (a bad programme file stops the start, not the first purchase)
    endpoint = GraphQLEndpoint(hub)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await hub.db.dispose()

    app = Starlette(
        routes=[
            Route("/", index, methods=["GET"]),
            Route("/healthz", health, methods=["GET"]),
            Route("/schema.graphql", sdl, methods=["GET"]),
            Route("/graphql", endpoint, methods=["GET", "POST"]),
            *oauth_routes.routes,
            *portal_routes.routes,
        ],
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.sdl = endpoint.graphql.schema.as_str()
    return app
