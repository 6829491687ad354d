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
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    ClientMixin,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    TokenMixin,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant as _AuthorizationCodeGrant
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant as _ClientCredentialsGrant
from authlib.oauth2.rfc6749.grants import RefreshTokenGrant as _RefreshTokenGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _IntrospectionEndpoint
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc import jwt as joserfc_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hub.auth.keys import ALGORITHM, KeyStore
from hub.auth.models import access_token, authorization_code, client_assertion, refresh_token
from hub.auth.scopes import PARTNER_SCOPES, format_scopes, parse
from hub.auth.tokens import InvalidToken, decode_access_token, unverified_claims
from hub.clock import Clock
from hub.config import Settings
from hub.ids import secret_hash
from hub.members import service as members
from hub.partners.models import client_secret, oauth_client, partner

TOKEN_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
GRANT_TYPES = ["client_credentials", "authorization_code", "refresh_token"]
# Member-delegated grants need registered redirect URIs; a client without any has client credentials only.
_MEMBER_GRANTS = frozenset({"authorization_code", "refresh_token"})
CODE_TTL = timedelta(seconds=60)
REFRESH_TTL = timedelta(days=30)


@dataclass
class Client(ClientMixin):
    pk: int
    client_id: str
    partner_pk: int
    scopes: frozenset[str]
    auth_method: str
    jwks: dict[str, Any] | None
    secret_hashes: list[str] = field(default_factory=list)
    redirect_uris: list[str] = field(default_factory=list)
    name: str = ""

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # the redirect_uri parameter is required, and matched exactly

    def get_allowed_scope(self, scope: str | None) -> str:
        # Called after ClientCredentialsGrant.validate_requested_scope has refused anything beyond the ceiling,
        # so what is left is either the requested scope or, when none was asked for, the whole ceiling.
        return format_scopes(parse(scope) if scope else self.scopes)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        digest = secret_hash(client_secret)
        return any(hmac.compare_digest(digest, known) for known in self.secret_hashes)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and bool(self.redirect_uris)

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type in _MEMBER_GRANTS:
            return bool(self.redirect_uris)
        return grant_type in GRANT_TYPES


@dataclass
class MemberGrant:
    """The member an authorization code or refresh token acts for, as the token will name them."""

    member_id: int
    pairwise_id: str
    consent_pk: int
    consent_public_id: str
    permissions: frozenset[str]  # the consent's permissions now
    grant_id: str = ""
    scope: str = ""  # what the member approved, decided before the code is issued

    def get_user_id(self) -> str:
        return self.pairwise_id  # the token's `sub`: the partner's own pairwise id for the member


@dataclass
class StoredCode(AuthorizationCodeMixin):
    code_hash: str
    member_id: int
    consent_pk: int
    redirect_uri: str
    scope: str
    code_challenge: str
    code_challenge_method: str

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> None:
        return None

    def get_auth_time(self) -> None:
        return None

    def get_code_challenge(self) -> str:
        return self.code_challenge

    def get_code_challenge_method(self) -> str:
        return self.code_challenge_method


@dataclass
class StoredRefreshToken(TokenMixin):
    token_hash: str
    client_pk: int
    member_id: int
    consent_pk: int
    grant_id: str
    scope: str

    def check_client(self, client: Client) -> bool:
        return self.client_pk == client.pk

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return int(REFRESH_TTL.total_seconds())

    def is_expired(self) -> bool:
        return False  # expired rows are never returned by the query

    def is_revoked(self) -> bool:
        return False


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


class S256Only(CodeChallenge):
    """PKCE is required of every authorization request, with S256: `plain` and a missing challenge are refused."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge", state=grant.request.payload.state)
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256", state=grant.request.payload.state)
        super().validate_code_challenge(grant, redirect_uri)


def _refuse_beyond_ceiling(scope: str | None, client: Client, state: str | None = None) -> None:
    requested = parse(scope)
    if not requested:
        raise InvalidScopeError(description="ask for at least one scope", state=state)
    beyond = requested - client.scopes
    if beyond:
        raise InvalidScopeError(description=f"scope not allowed for this client: {format_scopes(beyond)}", state=state)


class AuthorizationCodeGrant(_AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    server: HubAuthorizationServer

    def validate_requested_scope(self) -> None:
        _refuse_beyond_ceiling(self.request.payload.scope, self.request.client, self.request.payload.state)

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        user: MemberGrant = request.user
        data = request.payload.data
        self.server.conn.execute(
            insert(authorization_code).values(
                code_hash=secret_hash(code),
                client_pk=request.client.pk,
                member_id=user.member_id,
                consent_id=user.consent_pk,
                redirect_uri=request.payload.redirect_uri,
                scope=user.scope,
                code_challenge=data["code_challenge"],
                code_challenge_method=data["code_challenge_method"],
                expires_at=self.server.clock.now() + CODE_TTL,
            )
        )

    def query_authorization_code(self, code: str, client: Client) -> StoredCode | None:
        code_hash = secret_hash(code)
        row = self.server.conn.execute(
            select(authorization_code).where(
                authorization_code.c.code_hash == code_hash, authorization_code.c.client_pk == client.pk
            )
        ).one_or_none()
        if row is None or row.expires_at <= self.server.clock.now():
            return None
        if row.used_at is not None:
            # RFC 6749 §4.1.2: a code used twice is a stolen code; what it produced is revoked. This must
            # commit although the request fails, so it is written outside the request's transaction.
            self.server.revoke_grant_after(code_hash)
            return None
        return StoredCode(
            code_hash=code_hash,
            member_id=row.member_id,
            consent_pk=row.consent_id,
            redirect_uri=row.redirect_uri,
            scope=row.scope,
            code_challenge=row.code_challenge,
            code_challenge_method=row.code_challenge_method,
        )

    def delete_authorization_code(self, code: StoredCode) -> None:
        spent = self.server.conn.execute(
            update(authorization_code)
            .where(authorization_code.c.code_hash == code.code_hash, authorization_code.c.used_at.is_(None))
            .values(used_at=self.server.clock.now())
        )
        if spent.rowcount != 1:  # redeemed concurrently: this request's token must not be issued
            raise InvalidGrantError("the authorization code was already used")

    def authenticate_user(self, code: StoredCode) -> MemberGrant | None:
        grant = self.server.member_grant(code.member_id, code.consent_pk, self.request.client)
        if grant is None:
            return None
        grant.grant_id = code.code_hash
        return grant

    def generate_token(self, user: MemberGrant, scope: str, **kwargs: Any) -> dict[str, Any]:
        # Only what the member approved and still consents to, within the client's ceiling as it stands now.
        allowed = parse(scope) & user.permissions & self.request.client.scopes
        return super().generate_token(user=user, scope=format_scopes(allowed), **kwargs)


class RefreshTokenGrant(_RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: every refresh token is used once
    server: HubAuthorizationServer

    def authenticate_refresh_token(self, raw: str) -> StoredRefreshToken | None:
        token_hash = secret_hash(raw)
        row = self.server.conn.execute(
            select(refresh_token).where(refresh_token.c.token_hash == token_hash)
        ).one_or_none()
        now = self.server.clock.now()
        if row is None or row.expires_at <= now:
            return None
        if row.revoked_at is not None:
            # A rotated-out refresh token came back: someone kept a copy. End the whole grant (RFC 9700 §4.14).
            self.server.revoke_grant_after(row.grant_id)
            return None
        client = self.request.client
        if row.client_pk != client.pk or self.server.member_grant(row.member_id, row.consent_id, client) is None:
            return None  # another client's token, or the consent was revoked or expired: invalid_grant
        return StoredRefreshToken(token_hash, row.client_pk, row.member_id, row.consent_id, row.grant_id, row.scope)

    def authenticate_user(self, credential: StoredRefreshToken) -> MemberGrant | None:
        grant = self.server.member_grant(credential.member_id, credential.consent_pk, self.request.client)
        if grant is not None:
            grant.grant_id = credential.grant_id
        return grant

    def issue_token(self, user: MemberGrant, refresh_token: StoredRefreshToken) -> dict[str, Any]:
        # Never wider than the original grant (checked by authlib), the consent as it is now, or the ceiling.
        scope = parse(self.request.payload.scope or refresh_token.get_scope())
        allowed = scope & user.permissions & self.request.client.scopes
        if not allowed:
            raise InvalidGrantError("nothing this token was granted is still consented to")
        return self.generate_token(user=user, scope=format_scopes(allowed), include_refresh_token=True)

    def revoke_old_credential(self, credential: StoredRefreshToken) -> None:
        self.server.conn.execute(
            update(refresh_token)
            .where(refresh_token.c.token_hash == credential.token_hash)
            .values(revoked_at=self.server.clock.now())
        )


class AccessTokenGenerator(JWTBearerTokenGenerator):
    def __init__(self, settings: Settings, keys: KeyStore) -> None:
        super().__init__(
            issuer=settings.issuer,
            alg=ALGORITHM,
            refresh_token_generator=lambda client, grant_type, user, scope: "hub_rt_" + secrets.token_urlsafe(32),
            expires_generator=lambda client, grant_type: settings.access_token_ttl,
        )
        self._audience = settings.audience
        self._keys = keys

    def get_jwks(self) -> KeySet:
        return KeySet([self._keys.signing_key.key])

    def get_audiences(self, client: Client, user: object, scope: str) -> str:
        return self._audience

    def get_extra_claims(self, client: Client, grant_type: str, user: object, scope: str) -> dict[str, Any]:
        # A member-delegated token names the consent it rests on; every request re-reads that consent.
        return {"consent_id": user.consent_public_id} if isinstance(user, MemberGrant) else {}


MAX_ASSERTION_LIFETIME = 300  # seconds from now that a private_key_jwt assertion's exp may lie
# What a client may sign its assertion with: asymmetric algorithms only (its registered JWK Set holds public keys),
# enforced here and advertised in the metadata for every endpoint that takes client authentication.
ASSERTION_ALGORITHMS = ["ES256", "RS256", "PS256", "EdDSA"]


class PrivateKeyJWT(JWTBearerClientAssertion):
    """RFC 7523 client authentication: the client signs an assertion with a key registered in its JWK Set."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, server: HubAuthorizationServer) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self._server = server

    def get_audiences(self) -> list[str]:
        issuer = self._server.settings.issuer
        return [issuer, issuer + "/oauth/token"]

    def verify_claims(self, claims: Any) -> None:
        # An assertion is a one-shot credential: one valid for years is a stolen key's gift. Checked before the
        # claims registry (and the jti record), so a long-lived assertion is refused without leaving a trace.
        exp = claims.get("exp")
        if isinstance(exp, int | float) and exp > time.time() + MAX_ASSERTION_LIFETIME + self.leeway:
            raise InvalidClientError(description="the client assertion's exp is more than 5 minutes ahead")
        super().verify_claims(claims)

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        try:
            token = joserfc_jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGORITHMS)
        except JoseError as exc:
            raise InvalidClientError(description=exc.description) from exc
        self.verify_claims(token.claims)
        return token.claims

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
        # Grants to revoke even though this request fails (and its transaction rolls back): see the route.
        self.grants_to_revoke: list[str] = []
        self.register_token_generator("default", AccessTokenGenerator(settings, keys))
        self.register_client_auth_method(PrivateKeyJWT.CLIENT_AUTH_METHOD, PrivateKeyJWT(self))
        self.register_grant(ClientCredentialsGrant)
        self.register_grant(AuthorizationCodeGrant, [S256Only(required=True)])
        self.register_grant(RefreshTokenGrant)
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
            redirect_uris=list(row.redirect_uris or []),
            name=row.name,
        )
        self.current_client = client
        return client

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        claims = unverified_claims(token["access_token"])
        user = request.user if isinstance(request.user, MemberGrant) else None
        self.conn.execute(
            insert(access_token).values(
                jti=claims["jti"],
                client_pk=request.client.pk,
                scope=claims.get("scope") or "",
                issued_at=datetime.fromtimestamp(claims["iat"], UTC),
                expires_at=datetime.fromtimestamp(claims["exp"], UTC),
                member_id=user.member_id if user else None,
                consent_id=user.consent_pk if user else None,
                grant_id=user.grant_id if user else None,
            )
        )
        if user is not None and "refresh_token" in token:
            now = self.clock.now()
            self.conn.execute(
                insert(refresh_token).values(
                    token_hash=secret_hash(token["refresh_token"]),
                    client_pk=request.client.pk,
                    member_id=user.member_id,
                    consent_id=user.consent_pk,
                    grant_id=user.grant_id,
                    scope=claims.get("scope") or "",
                    issued_at=now,
                    expires_at=now + REFRESH_TTL,
                )
            )

    def member_grant(self, member_id: int, consent_pk: int, client: Client) -> MemberGrant | None:
        """The member as the client's partner knows them, if the member is active and the consent in force."""
        # The same statement every member read runs: link, active member, consent in force.
        params = {"partner_id": client.partner_pk, "member_id": member_id, "now": self.clock.now()}
        row = self.conn.execute(members.BY_MEMBER_ID, params).one_or_none()
        if row is None or row.consent_pk != consent_pk:
            return None
        return MemberGrant(member_id, row.pairwise_id, consent_pk, row.consent_public_id, frozenset(row.permissions))

    def revoke_grant_after(self, grant_id: str) -> None:
        self.grants_to_revoke.append(grant_id)

    def revoke_grant(self, grant_id: str) -> None:
        """Everything one authorization produced: on a replayed code or a replayed refresh token."""
        now = self.clock.now()
        for table in (access_token, refresh_token):
            self.conn.execute(
                update(table).where(table.c.grant_id == grant_id, table.c.revoked_at.is_(None)).values(revoked_at=now)
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
        if status == 302:  # the authorization response: back to the client's redirect URI
            return Response(status_code=302, headers={**header_map, "Cache-Control": "no-store"})
        return JSONResponse(body, status_code=status, headers=header_map)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None


class RevocationEndpoint(_RevocationEndpoint):
    """RFC 7009 for the hub's access tokens and refresh tokens. Revoking a refresh token ends its whole grant:
    every access and refresh token the member's authorization produced (RFC 7009 §2.1)."""

    CLIENT_AUTH_METHODS = TOKEN_AUTH_METHODS
    SUPPORTED_TOKEN_TYPES = ("access_token", "refresh_token")

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | StoredRefreshToken | None:
        if token_string.startswith("hub_rt_"):
            row = self.server.conn.execute(
                select(refresh_token).where(refresh_token.c.token_hash == secret_hash(token_string))
            ).one_or_none()
            if row is None:
                return None
            return StoredRefreshToken(
                row.token_hash, row.client_pk, row.member_id, row.consent_id, row.grant_id, row.scope
            )
        return self.server.query_token(token_string)

    def revoke_token(self, token: IssuedToken | StoredRefreshToken, request: OAuth2Request) -> None:
        if isinstance(token, StoredRefreshToken):
            self.server.revoke_grant(token.grant_id)
        else:
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
