"""Partners and their OAuth clients: the operator creates them; partners authenticate as them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.auth import scopes as scope_catalogue
from hub.auth.models import access_token, refresh_token
from hub.errors import DomainError
from hub.ids import new_id, secret_hash
from hub.partners.models import (
    AUTH_METHODS,
    DEFAULT_AT_RISK_THRESHOLD,
    PARTNER_KINDS,
    client_secret,
    oauth_client,
    partner,
    partner_terms,
)
from hub.points import ledger
from hub.programme.config import ACTIVITY_KINDS

SECRET_PREFIX = "hub_cs_"  # noqa: S105 (a prefix that lets secret scanners spot leaks)


@dataclass(frozen=True)
class Partner:
    id: int
    public_id: str
    name: str
    kind: str
    status: str


@dataclass(frozen=True)
class NewClient:
    client_id: str
    partner_public_id: str
    scopes: frozenset[str]
    auth_method: str
    client_secret: str | None  # shown once, never stored in clear


def _partner(row: Any) -> Partner:
    return Partner(id=row.id, public_id=row.public_id, name=row.name, kind=row.kind, status=row.status)


async def create_partner(conn: AsyncConnection, *, name: str, kind: str, now: datetime) -> Partner:
    name = name.strip()
    if not name:
        raise DomainError("INVALID_INPUT", "a partner needs a name", "name")
    if kind not in PARTNER_KINDS:
        raise DomainError("INVALID_INPUT", f"kind must be one of {', '.join(PARTNER_KINDS)}", "kind")
    taken = await conn.scalar(select(func.count()).select_from(partner).where(partner.c.name == name))
    if taken:
        raise DomainError("NAME_TAKEN", f"a partner named {name!r} exists already", "name")
    public_id = new_id("ptn", 9)
    row = (
        await conn.execute(
            insert(partner)
            .values(public_id=public_id, name=name, kind=kind, status="active", created_at=now)
            .returning(partner)
        )
    ).one()
    await ledger.open_partner_accounts(conn, row.id, now)
    return _partner(row)


async def get_partner(conn: AsyncConnection, public_id: str) -> Partner | None:
    row = (await conn.execute(select(partner).where(partner.c.public_id == public_id))).one_or_none()
    return None if row is None else _partner(row)


async def require_partner(conn: AsyncConnection, public_id: str) -> Partner:
    """The partner, or PARTNER_NOT_FOUND: what every operator command naming a partner starts with."""
    found = await get_partner(conn, public_id)
    if found is None:
        raise DomainError("PARTNER_NOT_FOUND", f"no partner {public_id!r}", "partner")
    return found


async def list_partners(conn: AsyncConnection) -> list[Partner]:
    rows = await conn.execute(select(partner).order_by(partner.c.id))
    return [_partner(r) for r in rows]


def _public_key_set(jwks: dict[str, Any] | None) -> dict[str, Any]:
    """The client's JWK Set with only public parts kept: a private key sent by mistake is never stored."""
    if not jwks or not jwks.get("keys"):
        raise DomainError("INVALID_INPUT", "private_key_jwt needs the client's public JWK Set", "jwks")
    try:
        return dict(KeySet.import_key_set(jwks).as_dict(private=False))  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise DomainError("INVALID_INPUT", f"not a usable JWK Set: {exc}", "jwks") from exc


def new_client_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


async def create_client(
    conn: AsyncConnection,
    *,
    partner_public_id: str,
    scopes: frozenset[str],
    now: datetime,
    name: str | None = None,
    auth_method: str = "client_secret_basic",
    jwks: dict[str, Any] | None = None,
    redirect_uris: list[str] | None = None,
) -> NewClient:
    owner = await require_partner(conn, partner_public_id)
    if not scopes:
        raise DomainError("INVALID_INPUT", "a client needs at least one scope", "scopes")
    try:
        scope_catalogue.validate_partner_scopes(scopes)
    except scope_catalogue.ScopeError as exc:
        raise DomainError("INVALID_SCOPE", str(exc), "scopes") from exc
    if auth_method not in AUTH_METHODS:
        raise DomainError("INVALID_INPUT", f"auth method must be one of {', '.join(AUTH_METHODS)}", "authMethod")
    if auth_method == "private_key_jwt":
        jwks = _public_key_set(jwks)
    uris = [_redirect_uri(uri) for uri in redirect_uris or []]

    client_id = new_id("hub_ci", 12)
    client_pk = await conn.scalar(
        insert(oauth_client)
        .values(
            client_id=client_id,
            partner_id=owner.id,
            name=name or f"{owner.name} client",
            allowed_scopes=scope_catalogue.format_scopes(scopes),
            auth_method=auth_method,
            jwks=jwks if auth_method == "private_key_jwt" else None,
            redirect_uris=uris or None,
            status="active",
            created_at=now,
        )
        .returning(oauth_client.c.id)
    )
    secret = None
    if auth_method != "private_key_jwt":
        secret = new_client_secret()
        await conn.execute(
            insert(client_secret).values(
                client_pk=client_pk, secret_hash=secret_hash(secret), hint=secret[-4:], created_at=now
            )
        )
    return NewClient(
        client_id=client_id,
        partner_public_id=owner.public_id,
        scopes=scopes,
        auth_method=auth_method,
        client_secret=secret,
    )


def _redirect_uri(uri: str) -> str:
    """A redirect URI the hub will send authorization codes to: absolute, https (or loopback http), no fragment,
    no user info (RFC 6749 §3.1.2, RFC 9700 §4.1). It is matched exactly, character for character."""
    parts = urlsplit(uri)
    loopback = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
    if not (parts.scheme == "https" or loopback) or not parts.hostname:
        raise DomainError("INVALID_INPUT", f"redirect URI must be https (or http on loopback): {uri!r}", "redirectUris")
    if parts.fragment or "#" in uri or parts.username is not None or parts.password is not None:
        raise DomainError("INVALID_INPUT", f"redirect URI may carry no fragment or user info: {uri!r}", "redirectUris")
    return uri


@dataclass(frozen=True)
class Terms:
    point_value: Decimal
    billing: str
    activity_kinds: tuple[str, ...] = ()
    at_risk_threshold: float = DEFAULT_AT_RISK_THRESHOLD


@dataclass(frozen=True)
class ClientLimits:
    client_id: str
    requests_per_minute: int | None  # None: the hub's default
    cost_per_minute: int | None


MAX_LIMIT = 10_000_000


async def set_client_limits(
    conn: AsyncConnection, *, client_id: str, requests_per_minute: int | None, cost_per_minute: int | None
) -> ClientLimits:
    """A client's own rate limits per minute (0 puts it back on the hub's defaults). Every process sees the change
    at the client's next request (the token state cache is emptied by the change)."""
    for value, field in ((requests_per_minute, "requestsPerMinute"), (cost_per_minute, "costPerMinute")):
        if value is not None and not 0 <= value <= MAX_LIMIT:
            raise DomainError("INVALID_INPUT", f"{field} must be 0 (the default) to {MAX_LIMIT}", field)
    values = {
        key: (value or None)
        for key, value in (("requests_per_minute", requests_per_minute), ("cost_per_minute", cost_per_minute))
        if value is not None
    }
    row = (
        await conn.execute(
            update(oauth_client)
            .where(oauth_client.c.client_id == client_id)
            .values(**values)
            .returning(oauth_client.c.requests_per_minute, oauth_client.c.cost_per_minute)
        )
        if values
        else await conn.execute(
            select(oauth_client.c.requests_per_minute, oauth_client.c.cost_per_minute).where(
                oauth_client.c.client_id == client_id
            )
        )
    ).one_or_none()
    if row is None:
        raise DomainError("CLIENT_NOT_FOUND", "no such client", "client")
    return ClientLimits(client_id, row.requests_per_minute, row.cost_per_minute)


async def set_terms(
    conn: AsyncConnection,
    *,
    partner_public_id: str,
    now: datetime,
    point_value: Decimal | None = None,
    billing: str | None = None,
    activity_kinds: list[str] | None = None,
    at_risk_threshold: float | None = None,
) -> Terms:
    """Set what one of the partner's points is worth (yuan), whether it prepays what it issues, the health
    activities its contract covers and the P(alive) below which a member is announced to it as at risk."""
    owner = await require_partner(conn, partner_public_id)
    current = (await conn.execute(select(partner_terms).where(partner_terms.c.partner_id == owner.id))).one_or_none()
    value = point_value if point_value is not None else Decimal(current.point_value) if current else Decimal("0.01")
    mode = billing or (current.billing if current else "postpaid")
    if not value.is_finite() or value <= 0 or value.as_tuple().exponent < -4:  # type: ignore[operator]
        raise DomainError(
            "INVALID_INPUT", "point value must be a positive amount of yuan, at most 4 decimals", "pointValue"
        )
    if mode not in ("prepaid", "postpaid"):
        raise DomainError("INVALID_INPUT", "billing must be prepaid or postpaid", "billing")
    kinds = (
        sorted(set(activity_kinds))
        if activity_kinds is not None
        else list(current.activity_kinds or [])
        if current
        else []
    )
    unknown = sorted(set(kinds) - set(ACTIVITY_KINDS))
    if unknown:
        raise DomainError("INVALID_INPUT", f"unknown activity kind(s): {', '.join(unknown)}", "activityKinds")
    threshold = (
        at_risk_threshold
        if at_risk_threshold is not None
        else current.at_risk_threshold
        if current
        else DEFAULT_AT_RISK_THRESHOLD
    )
    if not 0 < threshold < 1:
        raise DomainError("INVALID_INPUT", "the at-risk threshold is a probability between 0 and 1", "atRiskThreshold")
    values = {
        "point_value": str(value), "billing": mode, "activity_kinds": kinds, "at_risk_threshold": threshold,
        "updated_at": now,
    }  # fmt: skip
    if current is None:
        await conn.execute(insert(partner_terms).values(partner_id=owner.id, **values))
    else:
        await conn.execute(update(partner_terms).where(partner_terms.c.partner_id == owner.id).values(**values))
    return Terms(point_value=value, billing=mode, activity_kinds=tuple(kinds), at_risk_threshold=threshold)


@dataclass(frozen=True)
class ClientView:
    client_id: str
    partner_public_id: str
    name: str
    scopes: str
    auth_method: str
    status: str
    secrets: int  # live secrets (two for a while after a rotation with a grace period)
    created_at: datetime


async def list_clients(conn: AsyncConnection, *, partner_public_id: str | None, now: datetime) -> list[ClientView]:
    live = (
        select(func.count())
        .where(
            client_secret.c.client_pk == oauth_client.c.id,
            client_secret.c.revoked_at.is_(None),
            (client_secret.c.expires_at.is_(None)) | (client_secret.c.expires_at > now),
        )
        .scalar_subquery()
    )
    query = (
        select(oauth_client, partner.c.public_id.label("partner_public_id"), live.label("secrets"))
        .join(partner, partner.c.id == oauth_client.c.partner_id)
        .order_by(oauth_client.c.id)
    )
    if partner_public_id is not None:
        query = query.where(partner.c.public_id == partner_public_id)
    return [
        ClientView(
            r.client_id, r.partner_public_id, r.name, r.allowed_scopes, r.auth_method, r.status, r.secrets, r.created_at
        )
        for r in await conn.execute(query)
    ]


async def set_client_status(conn: AsyncConnection, client_id: str, status: str) -> None:
    """Disable or re-enable a client. A disabled client gets no token, and the tokens it holds stop working at
    their next request: every process's token-state cache is emptied by the change (migration 0007)."""
    done = await conn.execute(update(oauth_client).where(oauth_client.c.client_id == client_id).values(status=status))
    if not done.rowcount:
        raise DomainError("CLIENT_NOT_FOUND", "no such client", "client")


async def set_partner_status(conn: AsyncConnection, public_id: str, status: str) -> Partner:
    """Suspend or resume a partner: every client of a suspended partner is refused, at the next request."""
    row = (
        await conn.execute(
            update(partner).where(partner.c.public_id == public_id).values(status=status).returning(partner)
        )
    ).one_or_none()
    if row is None:
        raise DomainError("PARTNER_NOT_FOUND", f"no partner {public_id!r}", "partner")
    return _partner(row)


async def rotate_client_secret(
    conn: AsyncConnection, client_id: str, *, now: datetime, grace: timedelta, revoke_tokens: bool
) -> str:
    """A new secret for the client, returned once. The old ones stop working now, or after `grace` so the partner
    can deploy the new one without downtime; `revoke_tokens` also ends every token the client holds (a leak)."""
    if not timedelta(0) <= grace <= timedelta(days=7):
        raise DomainError("INVALID_INPUT", "the grace period is 0 to 7 days", "grace")
    row = (
        await conn.execute(
            select(oauth_client.c.id, oauth_client.c.auth_method).where(oauth_client.c.client_id == client_id)
        )
    ).one_or_none()
    if row is None:
        raise DomainError("CLIENT_NOT_FOUND", "no such client", "client")
    if row.auth_method == "private_key_jwt":
        raise DomainError("INVALID_INPUT", "this client authenticates with its keys, not a secret", "client")
    ends = now + grace
    await conn.execute(
        update(client_secret)
        .where(
            client_secret.c.client_pk == row.id,
            client_secret.c.revoked_at.is_(None),
            (client_secret.c.expires_at.is_(None)) | (client_secret.c.expires_at > ends),
        )
        .values(**({"revoked_at": now} if not grace else {"expires_at": ends}))
    )
    secret = new_client_secret()
    await conn.execute(
        insert(client_secret).values(
            client_pk=row.id, secret_hash=secret_hash(secret), hint=secret[-4:], created_at=now
        )
    )
    if revoke_tokens:
        for table in (access_token, refresh_token):
            await conn.execute(
                update(table).where(table.c.client_pk == row.id, table.c.revoked_at.is_(None)).values(revoked_at=now)
            )
    return secret
