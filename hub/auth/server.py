"""The OAuth 2 authorization server: authlib's framework-neutral core, adapted to Starlette.

Authlib's server core is synchronous, so each request builds a `HubAuthorizationServer` around a *sync* facade
of an async connection (`AsyncConnection.run_sync`): authlib's storage callbacks then run inside one database
transaction on the event loop, with no threadpool and no second driver. The route reads the form body first
(authlib reads it synchronously).

Where authlib's defaults are lax the hub hardens them: a scope beyond the client's ceiling is refused with
`invalid_scope` instead of silently trimmed; client secrets are compared by hash; a client is pinned to its one
authentication method; a client introspects and revokes only its own tokens.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import ClientMixin, InvalidScopeError, TokenMixin
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant as _ClientCredentialsGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _IntrospectionEndpoint
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc.jwk import KeySet
from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hub.auth.keys import ALGORITHM, KeyStore
from hub.auth.models import access_token, client_assertion
from hub.auth.scopes import PARTNER_SCOPES, format_scopes, parse
from hub.auth.tokens import InvalidToken, decode_access_token, unverified_claims
from hub.clock import Clock
from hub.config import Settings
from hub.ids import secret_hash
from hub.partners.models import client_secret, oauth_client, partner

TOKEN_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
GRANT_TYPES = ["client_credentials"]


@dataclass
class Client(ClientMixin):
    pk: int
    client_id: str
    partner_pk: int
    scopes: frozenset[str]
    auth_method: str
    jwks: dict[str, Any] | None
    secret_hashes: list[str] = field(default_factory=list)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        # Called after ClientCredentialsGrant.validate_requested_scope has refused anything beyond the ceiling,
        # so what is left is either the requested scope or, when none was asked for, the whole ceiling.
        return format_scopes(parse(scope) if scope else self.scopes)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        digest = secret_hash(client_secret)
        return any(hmac.compare_digest(digest, known) for known in self.secret_hashes)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in GRANT_TYPES


@dataclass
class IssuedToken(TokenMixin):
    jti: str
    client_pk: int
    client_id: str
    subject: str
    scope: str
    issued_at: int
    expires_at: int
    revoked: bool
    now: int

    def check_client(self, client: Client) -> bool:
        return self.client_pk == client.pk

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_at - self.issued_at

    def is_expired(self) -> bool:
        return self.expires_at <= self.now

    def is_revoked(self) -> bool:
        return self.revoked


class StarletteOAuth2Request(OAuth2Request):
    """An authlib request over a Starlette request whose form body the route has already read."""

    def __init__(self, request: Request, form: dict[str, str]) -> None:
        super().__init__(method=request.method, uri=str(request.url), headers=request.headers)
        self._form = form
        self._args = dict(request.query_params)
        self.payload = BasicOAuth2Payload(form)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class ClientCredentialsGrant(_ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS

    def validate_requested_scope(self) -> None:
        requested = parse(self.request.payload.scope)
        beyond = requested - self.request.client.scopes
        if beyond:
            raise InvalidScopeError(description=f"scope not allowed for this client: {format_scopes(beyond)}")


class AccessTokenGenerator(JWTBearerTokenGenerator):
    def __init__(self, settings: Settings, keys: KeyStore) -> None:
        super().__init__(
            issuer=settings.issuer,
            alg=ALGORITHM,
            expires_generator=lambda client, grant_type: settings.access_token_ttl,
        )
        self._audience = settings.audience
        self._keys = keys

    def get_jwks(self) -> KeySet:
        return KeySet([self._keys.signing_key.key])

    def get_audiences(self, client: Client, user: object, scope: str) -> str:
        return self._audience


class PrivateKeyJWT(JWTBearerClientAssertion):
    """RFC 7523 client authentication: the client signs an assertion with a key registered in its JWK Set."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, server: HubAuthorizationServer) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self._server = server

    def get_audiences(self) -> list[str]:
        issuer = self._server.settings.issuer
        return [issuer, issuer + "/oauth/token"]

    def resolve_client_public_key(self, client: Client) -> KeySet:
        # A secret-based client has no keys: its assertion then fails verification like any forged one.
        return KeySet.import_key_set(client.jwks) if client.jwks else KeySet([])  # type: ignore[arg-type]

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        """Record the assertion's jti for its client; a second use of the same jti fails (RFC 7523 §3)."""
        server = self._server
        client = server.current_client  # set by query_client before the assertion's claims are checked
        if client is None:
            return False
        expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
        try:
            with server.conn.begin_nested():
                server.conn.execute(insert(client_assertion).values(client_pk=client.pk, jti=jti, expires_at=expires))
        except IntegrityError:
            return False
        return True


class HubAuthorizationServer(AuthorizationServer):
    def __init__(self, settings: Settings, keys: KeyStore, clock: Clock, conn: Connection) -> None:
        super().__init__(scopes_supported=list(PARTNER_SCOPES))
        self.settings = settings
        self.keys = keys
        self.clock = clock
        self.conn = conn
        self.current_client: Client | None = None
        self.register_token_generator("default", AccessTokenGenerator(settings, keys))
        self.register_client_auth_method(PrivateKeyJWT.CLIENT_AUTH_METHOD, PrivateKeyJWT(self))
        self.register_grant(ClientCredentialsGrant)
        self.register_endpoint(RevocationEndpoint)
        self.register_endpoint(IntrospectionEndpoint)

    # -- storage callbacks (sync, on self.conn) -------------------------------------------------------------
    def query_client(self, client_id: str) -> Client | None:
        row = self.conn.execute(
            select(oauth_client, partner.c.status.label("partner_status"))
            .join(partner, partner.c.id == oauth_client.c.partner_id)
            .where(oauth_client.c.client_id == client_id)
        ).one_or_none()
        if row is None or row.status != "active" or row.partner_status != "active":
            return None
        now = self.clock.now()
        hashes = self.conn.scalars(
            select(client_secret.c.secret_hash).where(
                client_secret.c.client_pk == row.id,
                client_secret.c.revoked_at.is_(None),
                (client_secret.c.expires_at.is_(None)) | (client_secret.c.expires_at > now),
            )
        ).all()
        client = Client(
            pk=row.id,
            client_id=row.client_id,
            partner_pk=row.partner_id,
            scopes=parse(row.allowed_scopes),
            auth_method=row.auth_method,
            jwks=row.jwks,
            secret_hashes=list(hashes),
        )
        self.current_client = client
        return client

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        claims = unverified_claims(token["access_token"])
        self.conn.execute(
            insert(access_token).values(
                jti=claims["jti"],
                client_pk=request.client.pk,
                scope=claims.get("scope") or "",
                issued_at=datetime.fromtimestamp(claims["iat"], UTC),
                expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            )
        )

    def query_token(self, raw: str) -> IssuedToken | None:
        now = int(time.time())  # token lifetimes are wall-clock time (authlib stamps iat/exp with it)
        try:
            decoded = decode_access_token(
                raw,
                self.keys,
                issuer=self.settings.issuer,
                audience=self.settings.audience,
                now=now,
                check_expiry=False,
            )
        except InvalidToken:
            return None
        row = self.conn.execute(
            select(access_token.c.client_pk, access_token.c.revoked_at).where(access_token.c.jti == decoded.jti)
        ).one_or_none()
        if row is None:
            return None
        return IssuedToken(
            jti=decoded.jti,
            client_pk=row.client_pk,
            client_id=decoded.client_id,
            subject=decoded.subject,
            scope=format_scopes(decoded.scopes),
            issued_at=decoded.issued_at,
            expires_at=decoded.expires_at,
            revoked=row.revoked_at is not None,
            now=now,
        )

    def revoke(self, token: IssuedToken) -> None:
        self.conn.execute(
            update(access_token)
            .where(access_token.c.jti == token.jti, access_token.c.revoked_at.is_(None))
            .values(revoked_at=self.clock.now())
        )

    # -- framework adapter ----------------------------------------------------------------------------------
    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
        header_map = dict(headers)
        header_map.pop("Content-Type", None)
        return JSONResponse(body, status_code=status, headers=header_map)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None


class RevocationEndpoint(_RevocationEndpoint):
    CLIENT_AUTH_METHODS = TOKEN_AUTH_METHODS
    SUPPORTED_TOKEN_TYPES = ("access_token",)

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        return self.server.query_token(token_string)

    def revoke_token(self, token: IssuedToken, request: OAuth2Request) -> None:
        self.server.revoke(token)


class IntrospectionEndpoint(_IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = TOKEN_AUTH_METHODS
    SUPPORTED_TOKEN_TYPES = ("access_token",)

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        return self.server.query_token(token_string)

    def check_permission(self, token: IssuedToken, client: Client, request: OAuth2Request) -> bool:
        # A client may introspect only the tokens issued to it; anything else reads as inactive.
        return token.check_client(client)

    def introspect_token(self, token: IssuedToken) -> dict[str, Any]:
        settings = self.server.settings
        return {
            "active": True,
            "token_type": "Bearer",
            "client_id": token.client_id,
            "scope": token.scope,
            "sub": token.subject,
            "aud": settings.audience,
            "iss": settings.issuer,
            "exp": token.expires_at,
            "iat": token.issued_at,
            "jti": token.jti,
        }
