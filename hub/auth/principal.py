"""Who is calling: the partner behind a verified access token, and what it may do on this request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, select

from hub.auth.keys import KeyStore
from hub.auth.models import access_token
from hub.auth.scopes import parse
from hub.auth.token_states import TokenStates
from hub.auth.tokens import InvalidToken, decode_access_token
from hub.config import Settings
from hub.consent import rule
from hub.consent.models import consent
from hub.db import Database, UtcDateTime
from hub.members.models import member
from hub.partners.models import oauth_client, partner
from hub.partners.service import Partner


@dataclass(frozen=True)
class Principal:
    partner: Partner
    client_pk: int
    client_id: str
    jti: str
    # token scopes ∩ the client's ceiling as it stands now (an operator may have lowered it since issue)
    # ∩, for a member-delegated token, the member's consent as it stands now.
    scopes: frozenset[str]
    # Set when a partner app acts for one member (authorization code grant): that member, under that consent.
    member_id: int | None = None
    consent_pk: int | None = None
    # The client's own rate limits per minute, if the operator set them (else the hub's defaults).
    requests_per_minute: int | None = None
    cost_per_minute: int | None = None

    def has(self, scope: str) -> bool:
        return scope in self.scopes


# Built once: the statement runs on every API request.
_TOKEN_STATE = (
    select(
        access_token.c.revoked_at,
        oauth_client.c.id.label("client_pk"),
        oauth_client.c.client_id,
        oauth_client.c.status.label("client_status"),
        oauth_client.c.allowed_scopes,
        oauth_client.c.requests_per_minute,
        oauth_client.c.cost_per_minute,
        partner.c.id.label("partner_pk"),
        partner.c.public_id,
        partner.c.name,
        partner.c.kind,
        partner.c.status.label("partner_status"),
        access_token.c.member_id,
        access_token.c.consent_id,
        consent.c.permissions.label("consent_permissions"),
        # A member token's consent and member, by the one rule (a partner token has neither: NULL).
        rule.reachable(bindparam("now", type_=UtcDateTime())).label("consent_in_force"),
    )
    .join(oauth_client, oauth_client.c.id == access_token.c.client_pk)
    .join(partner, partner.c.id == oauth_client.c.partner_id)
    .outerjoin(consent, consent.c.id == access_token.c.consent_id)
    .outerjoin(member, member.c.id == access_token.c.member_id)
    .where(access_token.c.jti == bindparam("jti"))
)


async def authenticate(
    db: Database, raw_token: str, *, settings: Settings, keys: KeyStore, token_states: TokenStates, now: int
) -> Principal:
    """Verify the token, then its revocation, client and partner state as the database has them now.

    A partner token's state comes from the process's cache, which PostgreSQL empties on every change
    (`TokenStates`); a member token's state is read on every request.
    """
    token = decode_access_token(raw_token, keys, issuer=settings.issuer, audience=settings.audience, now=now)
    row = token_states.get(token.jti)
    if row is None:
        generation = token_states.generation
        async with db.read() as conn:
            params = {"jti": token.jti, "now": datetime.fromtimestamp(now, UTC)}
            row = (await conn.execute(_TOKEN_STATE, params)).one_or_none()
        if row is not None and row.member_id is None:
            token_states.put(token.jti, row, generation)
    if row is None or row.client_id != token.client_id:
        raise InvalidToken("the access token is not known to this hub")
    if row.revoked_at is not None:
        raise InvalidToken("the access token has been revoked")
    if row.client_status != "active" or row.partner_status != "active":
        raise InvalidToken("the client or its partner is not active")
    scopes = token.scopes & parse(row.allowed_scopes)
    if row.member_id is not None:
        # Re-read on every request: a revocation in the portal stops the very next call, not the token's expiry.
        if not row.consent_in_force:
            raise InvalidToken("the member's consent for this token is no longer in force")
        scopes &= frozenset(row.consent_permissions)
    return Principal(
        partner=Partner(
            id=row.partner_pk,
            public_id=row.public_id,
            name=row.name,
            kind=row.kind,
            status=row.partner_status,
        ),
        client_pk=row.client_pk,
        client_id=row.client_id,
        jti=token.jti,
        scopes=scopes,
        member_id=row.member_id,
        consent_pk=row.consent_id,
        requests_per_minute=row.requests_per_minute,
        cost_per_minute=row.cost_per_minute,
    )
