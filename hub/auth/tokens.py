"""Access tokens: RFC 9068 JWTs signed by the hub, and the caller they stand for.

Verification is strict where RFC 9068 and the authlib advisories say libraries are lax: the `typ` header must be
`at+jwt` (a missing typ is refused too), only ES256 is accepted, headers that would let a token name its own key
(`jwk`, `jku`, `x5u`, `x5c`) or demand unknown processing (`crit`) are refused, and `iss`, `aud`, `exp`, `iat`,
`jti`, `client_id` and `sub` are all required.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jws import extract_compact
from joserfc.jwt import JWTClaimsRegistry

from hub.auth.keys import ALGORITHM, KeyStore
from hub.auth.scopes import parse

_FORBIDDEN_HEADERS = frozenset({"jwk", "jku", "x5u", "x5c", "crit"})
_TYP = frozenset({"at+jwt", "application/at+jwt"})


class InvalidToken(Exception):
    """The bearer token is not one the hub will honour; the message is safe to show the caller."""


@dataclass(frozen=True)
class AccessToken:
    jti: str
    client_id: str
    subject: str
    scopes: frozenset[str]
    issued_at: int
    expires_at: int
    claims: dict[str, Any]


def decode_access_token(
    raw: str, keys: KeyStore, *, issuer: str, audience: str, now: int, check_expiry: bool = True
) -> AccessToken:
    try:
        compact = extract_compact(raw.encode())
    except (JoseError, ValueError, UnicodeError) as exc:
        raise InvalidToken("the access token is malformed") from exc
    header = compact.headers()
    if header.get("alg") != ALGORITHM:
        raise InvalidToken(f"the access token must be signed with {ALGORITHM}")
    if str(header.get("typ", "")).lower() not in _TYP:
        raise InvalidToken("the token is not an access token (typ must be at+jwt)")
    if _FORBIDDEN_HEADERS & header.keys():
        raise InvalidToken("the access token carries a header the hub does not accept")
    kid = header.get("kid")
    if not isinstance(kid, str) or not keys.knows(kid):
        raise InvalidToken("the access token was signed by an unknown key")
    try:
        claims = keys.verified_claims(raw)
    except JoseError as exc:
        raise InvalidToken("the access token signature is invalid") from exc

    registry = JWTClaimsRegistry(
        now=now,
        leeway=5,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": audience},
        exp={"essential": True},
        iat={"essential": True},
        jti={"essential": True},
        sub={"essential": True},
        client_id={"essential": True},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError as exc:
        if check_expiry:
            raise InvalidToken("the access token has expired") from exc
    except JoseError as exc:
        raise InvalidToken(f"the access token is invalid ({exc.error})") from exc
    return AccessToken(
        jti=str(claims["jti"]),
        client_id=str(claims["client_id"]),
        subject=str(claims["sub"]),
        scopes=parse(claims.get("scope")),
        issued_at=int(claims["iat"]),
        expires_at=int(claims["exp"]),
        claims=claims,
    )


def unverified_claims(raw: str) -> dict[str, Any]:
    """The claims of a token the hub has just signed itself (used to record its jti); never for incoming tokens."""
    payload = raw.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
