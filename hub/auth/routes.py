"""HTTP endpoints of the authorization server: token, revocation, introspection, metadata and keys."""

from __future__ import annotations

import json
import logging
from typing import Any

from authlib.oauth2.rfc6749 import InsecureTransportError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.auth.keys import ALGORITHM
from hub.auth.scopes import PARTNER_SCOPES
from hub.auth.server import (
    ASSERTION_ALGORITHMS,
    GRANT_TYPES,
    TOKEN_AUTH_METHODS,
    HubAuthorizationServer,
    StarletteOAuth2Request,
)
from hub.observability import metrics
from hub.state import Hub

log = logging.getLogger("hub.oauth")

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status, headers=_NO_STORE)


async def _read_form(request: Request) -> dict[str, str] | JSONResponse:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return _oauth_error(400, "invalid_request", "send parameters as application/x-www-form-urlencoded")
    form = await request.form()
    values: dict[str, str] = {}
    for key, value in form.multi_items():
        if key in values:  # RFC 6749 §3.2: parameters MUST NOT be included more than once
            return _oauth_error(400, "invalid_request", f"parameter {key!r} repeated")
        if not isinstance(value, str):
            return _oauth_error(400, "invalid_request", "file uploads are not accepted")
        values[key] = value
    return values


async def _respond(request: Request, endpoint: str | None) -> Response:
    form = await _read_form(request)
    if isinstance(form, JSONResponse):
        return form
    grant_type = form.get("grant_type", "")
    request.state.grant_type = grant_type if grant_type in GRANT_TYPES else "other"
    hub: Hub = request.app.state.hub
    try:
        oauth_request = StarletteOAuth2Request(request, form)
    except InsecureTransportError:
        return _oauth_error(400, "insecure_transport", "OAuth requests must use https (or a loopback address)")

    def run(conn: Any) -> tuple[Response, list[str]]:
        server = HubAuthorizationServer(hub.settings, hub.keys, hub.clock, conn)
        if endpoint is None:
            return server.create_token_response(oauth_request), server.grants_to_revoke
        return server.create_endpoint_response(endpoint, oauth_request), server.grants_to_revoke

    async with hub.db.write() as conn:
        response, replayed = await conn.run_sync(run)
    if replayed:
        # A replayed code or refresh token: the request fails, but what that grant produced is revoked for good.
        def revoke(conn: Any) -> None:
            server = HubAuthorizationServer(hub.settings, hub.keys, hub.clock, conn)
            for grant_id in replayed:
                server.revoke_grant(grant_id)

        async with hub.db.write() as conn:
            await conn.run_sync(revoke)
    return response


async def token(request: Request) -> Response:
    response = await _respond(request, None)
    _count_token(request, response)
    return response


def _count_token(request: Request, response: Response) -> None:
    """Tokens issued by grant type; refusals by OAuth error, a failed client authentication also at warning (a
    wrong or stolen secret). Never the credentials themselves."""
    if response.status_code == 200:
        grant = getattr(request.state, "grant_type", None) or "unknown"
        metrics.TOKENS_ISSUED.labels(grant).inc()
        return
    try:
        error = str(json.loads(bytes(response.body))["error"])
    except (ValueError, KeyError, TypeError):
        error = "unknown"
    error = error if error in _OAUTH_ERRORS else "other"
    metrics.TOKENS_REFUSED.labels(error).inc()
    if error == "invalid_client":
        log.warning("refused a client's authentication at the token endpoint", extra={"security": "invalid_client"})


_OAUTH_ERRORS = {
    "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type",
    "invalid_scope", "insecure_transport", "access_denied",
}  # fmt: skip


async def revoke(request: Request) -> Response:
    response = await _respond(request, "revocation")
    # Committed: this process forgets at once; the others when PostgreSQL's notification reaches them.
    request.app.state.hub.token_states.changed()
    return response


async def introspect(request: Request) -> Response:
    return await _respond(request, "introspection")


async def metadata(request: Request) -> Response:
    """RFC 8414 authorization server metadata."""
    hub: Hub = request.app.state.hub
    issuer = hub.settings.issuer
    return JSONResponse(
        {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/oauth/authorize",
            "token_endpoint": f"{issuer}/oauth/token",
            "jwks_uri": f"{issuer}/.well-known/jwks.json",
            "revocation_endpoint": f"{issuer}/oauth/revoke",
            "introspection_endpoint": f"{issuer}/oauth/introspect",
            "grant_types_supported": GRANT_TYPES,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": sorted(PARTNER_SCOPES),
            "token_endpoint_auth_methods_supported": TOKEN_AUTH_METHODS,
            "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
            "revocation_endpoint_auth_methods_supported": TOKEN_AUTH_METHODS,
            "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
            "introspection_endpoint_auth_methods_supported": TOKEN_AUTH_METHODS,
            "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
            "access_token_signing_alg_values_supported": [ALGORITHM],
            "service_documentation": f"{issuer}/developers",
        }
    )


async def jwks(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    return JSONResponse(hub.keys.jwks(), headers={"Cache-Control": "public, max-age=300"})


routes = [
    Route("/oauth/token", token, methods=["POST"]),
    Route("/oauth/revoke", revoke, methods=["POST"]),
    Route("/oauth/introspect", introspect, methods=["POST"]),
    Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"]),
    Route("/.well-known/jwks.json", jwks, methods=["GET"]),
]
