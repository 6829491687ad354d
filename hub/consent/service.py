"""Consent: the member's own decision about what one partner may see and do.

The `consent` row is the current state; `consent_event` is the append-only proof of every change (GDPR Art. 7(1),
PIPL Art. 23). Access checks build on `consent/rule.py`, which every member lookup joins, so a change takes
effect on the very next request. A partner's requests for more, and the member's decisions, are in requests.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.auth.models import access_token, refresh_token
from hub.auth.scopes import CONSENT_PERMISSIONS
from hub.consent import rule
from hub.consent.models import consent, consent_event
from hub.consent.rule import MemberView, consent_status
from hub.db import UtcDateTime, among
from hub.errors import DomainError
from hub.events import outbox
from hub.ids import new_id
from hub.partners.models import partner
from hub.retention import profiling

CHANNELS = ("POS", "APP", "WEB", "PAPER", "IMPORT")
# The privacy notice the portal and the consent screen show; recorded with every consent given there.
POLICY_VERSION = "portal-2026-11"
# Permissions that reveal health: pharmacy purchases, health activities and the points granted for them, and the
# profiling of a member's pharmacy visits (retention scores, GDPR Art. 4(4)).
HEALTH_PERMISSIONS = frozenset({"purchases:read", "activity:write", "points:grant", "analytics:read"})
# Consent given through a partner's app to health-related data lasts this long unless the member revokes it.
HEALTH_CONSENT_TTL = timedelta(days=180)


@dataclass(frozen=True)
class Granted:
    pk: int
    public_id: str


@dataclass(frozen=True)
class Evidence:
    """How the member gave consent: what they were shown (policy version) and where (channel)."""

    policy_version: str
    channel: str
    actor: str

    def as_dict(self) -> dict[str, Any]:
        return {"policyVersion": self.policy_version, "channel": self.channel}

    @property
    def from_member(self) -> bool:
        """Given by the member themself (portal, consent screen, a confirmed enrolment), not asserted by a partner."""
        return self.actor == "member"


def validate_permissions(permissions: list[str] | frozenset[str], field: str) -> frozenset[str]:
    chosen = frozenset(permissions)
    if not chosen:
        raise DomainError("INVALID_INPUT", "consent needs at least one permission", field)
    unknown = sorted(chosen - CONSENT_PERMISSIONS.keys())
    if unknown:
        raise DomainError("INVALID_INPUT", f"unknown permission(s): {', '.join(unknown)}", field)
    return chosen


def validate_evidence(evidence: Evidence, field: str) -> None:
    if not evidence.policy_version.strip() or len(evidence.policy_version) > 40:
        raise DomainError(
            "INVALID_INPUT", "consent needs the policy version the member agreed to (1 to 40 characters)", field
        )
    if evidence.channel not in CHANNELS:
        raise DomainError("INVALID_INPUT", f"channel must be one of {', '.join(CHANNELS)}", field)


def validate_expiry(permissions: frozenset[str], expires_at: datetime | None, now: datetime, field: str) -> None:
    """Health-related data is never shared open-ended (PIPL Art. 28-29, GDPR Art. 9): such consent must expire."""
    if expires_at is not None and expires_at <= now:
        raise DomainError("INVALID_INPUT", "the consent would already have expired", field)
    if expires_at is None and permissions & HEALTH_PERMISSIONS:
        health = ", ".join(sorted(permissions & HEALTH_PERMISSIONS))
        raise DomainError("EXPIRY_REQUIRED", f"consent to health-related data ({health}) needs an expiry", field)


@dataclass(frozen=True)
class FirstGrant:
    """The rows a member's first consent to a partner writes: `grant` inserts them with statements, the bulk
    enrolment of an import many at once (each adds the consent's id to its event)."""

    consent: dict[str, Any]
    event: dict[str, Any]  # consent_event, without consent_id
    outbox: outbox.Event


def _event(
    kind: str, evidence: Evidence, granted: list[str], previous: list[str] | None, now: datetime
) -> dict[str, Any]:
    """A consent_event row (without its consent's id): what changed, on whose word."""
    return {
        "kind": kind,
        "actor": evidence.actor,
        "permissions": granted,
        "previous_permissions": previous,
        "evidence": evidence.as_dict(),
        "occurred_at": now,
    }


def first_grant(
    public_id: str,
    member_id: int,
    partner_id: int,
    permissions: frozenset[str],
    evidence: Evidence,
    now: datetime,
    *,
    purposes: list[str] | None = None,
    expires_at: datetime | None = None,
    data_window_from: datetime | None = None,
) -> FirstGrant:
    granted = sorted(permissions)
    return FirstGrant(
        consent={
            "public_id": public_id,
            "member_id": member_id,
            "partner_id": partner_id,
            "status": "AUTHORISED",
            "permissions": granted,
            "purposes": purposes or [],
            "expires_at": expires_at,
            "data_window_from": data_window_from,
            "policy_version": evidence.policy_version,
            "channel": evidence.channel,
            "version": 1,
            "created_at": now,
            "updated_at": now,
        },
        event=_event("granted", evidence, granted, None, now),
        outbox=outbox.Event(
            "consent.granted",
            member_id=member_id,
            partner_id=partner_id,
            payload={"consentId": public_id, "permissions": granted},
        ),
    )


async def grant(
    conn: AsyncConnection,
    *,
    member_id: int,
    partner_id: int,
    permissions: frozenset[str],
    evidence: Evidence,
    now: datetime,
    purposes: list[str] | None = None,
    expires_at: datetime | None = None,
    data_window_from: datetime | None = None,
) -> Granted:
    """Record the member's consent to a partner (a new one, or a new version of the existing one)."""
    current = (
        await conn.execute(
            select(
                consent.c.id,
                consent.c.permissions,
                consent.c.version,
                consent.c.public_id,
                rule.consent_in_force(now).label("in_force"),
            )
            .where(consent.c.member_id == member_id, consent.c.partner_id == partner_id)
            .with_for_update()
        )
    ).one_or_none()
    granted = sorted(permissions)
    if (
        current is not None
        and not evidence.from_member
        and (not current.in_force or not permissions <= frozenset(current.permissions))
    ):
        # Only the member widens or restores what they narrowed, revoked or never gave: a partner's word (a
        # till's POS tick, an import file) cannot. Enrolment never gets here (it makes a new member); this is the
        # rule for every other caller.
        raise DomainError("CONSENT_REQUIRED", "only the member can widen or restore this consent", "consent")
    if current is None:
        first = first_grant(
            new_id("cns", 12), member_id, partner_id, permissions, evidence, now,
            purposes=purposes, expires_at=expires_at, data_window_from=data_window_from,
        )  # fmt: skip
        public_id = first.consent["public_id"]
        consent_pk = await conn.scalar(insert(consent).values(**first.consent).returning(consent.c.id))
        event_row, notice = first.event, first.outbox
    else:
        consent_pk, public_id, previous = current.id, current.public_id, list(current.permissions)
        kind = _change_kind(bool(current.in_force), frozenset(previous), permissions)
        await conn.execute(
            update(consent)
            .where(consent.c.id == consent_pk)
            .values(
                status="AUTHORISED",
                permissions=granted,
                purposes=purposes or [],
                expires_at=expires_at,
                data_window_from=data_window_from,
                policy_version=evidence.policy_version,
                channel=evidence.channel,
                version=current.version + 1,
                updated_at=now,
            )
        )
        event_row = _event(kind, evidence, granted, previous, now)
        notice = outbox.Event(
            f"consent.{kind}", member_id, partner_id, {"consentId": public_id, "permissions": granted}
        )
    await conn.execute(insert(consent_event).values(consent_id=consent_pk, **event_row))
    await profiling.consent_changed(conn, member_id, partner_id, permissions)
    await outbox.record_event(conn, notice, now=now)
    assert consent_pk is not None
    return Granted(int(consent_pk), public_id)


def _change_kind(in_force: bool, before: frozenset[str], after: frozenset[str]) -> str:
    if not in_force:
        return "granted"
    if after > before:
        return "widened"
    if after < before:
        return "narrowed"
    return "granted" if after != before else "renewed"


# -- the member's side: requests, revocation, narrowing -----------------------------------------------------------
@dataclass(frozen=True)
class ConsentView:
    id: int
    public_id: str
    partner_id: int
    partner_name: str
    status: str
    permissions: list[str]
    purposes: list[str]
    expires_at: datetime | None
    data_window_from: datetime | None
    version: int
    updated_at: datetime


_CONSENTS = select(
    consent.c.id,
    consent.c.public_id,
    consent.c.partner_id,
    partner.c.name.label("partner_name"),
    consent_status(bindparam("now", type_=UtcDateTime())).label("status"),
    consent.c.permissions,
    consent.c.purposes,
    consent.c.expires_at,
    consent.c.data_window_from,
    consent.c.version,
    consent.c.updated_at,
).join(partner, partner.c.id == consent.c.partner_id)


def _consent_view(row: Any) -> ConsentView:
    return ConsentView(
        id=row.id,
        public_id=row.public_id,
        partner_id=row.partner_id,
        partner_name=row.partner_name,
        status=row.status,
        permissions=list(row.permissions),
        purposes=list(row.purposes),
        expires_at=row.expires_at,
        data_window_from=row.data_window_from,
        version=row.version,
        updated_at=row.updated_at,
    )


async def of_member(
    conn: AsyncConnection, member_id: int, now: datetime, *, partner_id: int | None = None
) -> list[ConsentView]:
    query = _CONSENTS.where(consent.c.member_id == member_id).order_by(partner.c.name)
    if partner_id is not None:
        query = query.where(consent.c.partner_id == partner_id)
    return [_consent_view(row) for row in await conn.execute(query, {"now": now})]


async def of_partner_members(
    conn: AsyncConnection, partner_id: int, views: Sequence[MemberView], now: datetime
) -> list[list[ConsentView]]:
    """The partner's own consent with each member it reached (a page of them), in one statement."""
    member_ids = list(dict.fromkeys(v.member_id for v in views))
    found: dict[int, list[ConsentView]] = {m: [] for m in member_ids}
    if member_ids:
        query = _CONSENTS.add_columns(consent.c.member_id).where(
            consent.c.partner_id == partner_id, among(conn.dialect.name, consent.c.member_id, member_ids)
        )
        for row in await conn.execute(query, {"now": now}):
            found[row.member_id].append(_consent_view(row))
    return [found[v.member_id] for v in views]


def _locked(now: datetime) -> Select[Any]:
    """A consent row, locked for a change, with whether it is in force now (the rule decides, not `status`)."""
    return select(consent, rule.consent_in_force(now).label("in_force")).with_for_update(of=consent)


async def _own_consent(conn: AsyncConnection, member_id: int, public_id: str, now: datetime) -> Any:
    """The member's consent by its public id, locked; CONSENT_NOT_FOUND for anyone else's."""
    query = _locked(now).where(consent.c.public_id == public_id, consent.c.member_id == member_id)
    row = (await conn.execute(query)).one_or_none()
    if row is None:
        raise DomainError("CONSENT_NOT_FOUND", "no such consent", "consentId")
    return row


async def append_event(
    conn: AsyncConnection, row: Any, kind: str, actor: str, permissions: list[str], now: datetime, **evidence: Any
) -> None:
    await conn.execute(
        insert(consent_event).values(
            consent_id=row.id,
            kind=kind,
            actor=actor,
            permissions=permissions,
            previous_permissions=list(row.permissions),
            evidence=evidence,
            occurred_at=now,
        )
    )


async def revoke(conn: AsyncConnection, member_id: int, public_id: str, *, now: datetime, actor: str) -> None:
    """The member withdraws consent: access stops on the partner's next request and its member tokens die."""
    row = await _own_consent(conn, member_id, public_id, now)
    await _end(conn, row, "revoked_by_member", actor, now)


async def revoke_by_partner(
    conn: AsyncConnection, partner_id: int, member_id: int, *, reason: str | None, now: datetime, actor: str
) -> str:
    """The partner ends its own consent with a member (the member asked at the till, the contract ended)."""
    query = _locked(now).where(consent.c.member_id == member_id, consent.c.partner_id == partner_id)
    row = (await conn.execute(query)).one_or_none()
    if row is None:
        raise DomainError("MEMBER_NOT_FOUND", "no such member", "memberId")
    await _end(conn, row, "revoked_by_partner", actor, now, reason=reason)
    return str(row.public_id)


async def close(
    conn: AsyncConnection, row: Any, status: str, kind: str, actor: str, now: datetime, **evidence: Any
) -> None:
    """End a consent (revoked, expired, erased): a new version, its event, and its member tokens revoked."""
    await conn.execute(
        update(consent).where(consent.c.id == row.id).values(status=status, version=row.version + 1, updated_at=now)
    )
    await append_event(conn, row, kind, actor, [], now, **evidence)
    await revoke_tokens(conn, now, consent_id=row.id)
    await profiling.consent_changed(conn, row.member_id, row.partner_id, ())


async def _end(conn: AsyncConnection, row: Any, kind: str, actor: str, now: datetime, **evidence: Any) -> None:
    if not row.in_force:
        raise DomainError("CONSENT_NOT_ACTIVE", "this consent is not in force", "consentId")
    await close(conn, row, "REVOKED", kind, actor, now, **evidence)
    await outbox.record(
        conn,
        "consent.revoked",
        now=now,
        member_id=row.member_id,
        partner_id=row.partner_id,
        payload={"consentId": row.public_id, "by": kind.removeprefix("revoked_by_")},
    )


async def narrow(
    conn: AsyncConnection, member_id: int, public_id: str, keep: frozenset[str], *, now: datetime, actor: str
) -> None:
    """The member keeps only some permissions: a new version with fewer, never more."""
    row = await _own_consent(conn, member_id, public_id, now)
    if not row.in_force:
        raise DomainError("CONSENT_NOT_ACTIVE", "this consent is not in force", "consentId")
    current = frozenset(row.permissions)
    if not keep:
        raise DomainError("INVALID_INPUT", "keep at least one permission, or revoke the consent", "permissions")
    if not keep < current:
        raise DomainError("INVALID_INPUT", "narrowing can only remove permissions", "permissions")
    kept = sorted(keep)
    await conn.execute(
        update(consent).where(consent.c.id == row.id).values(permissions=kept, version=row.version + 1, updated_at=now)
    )
    await append_event(conn, row, "narrowed", actor, kept, now)
    await profiling.consent_changed(conn, member_id, row.partner_id, kept)
    await outbox.record(
        conn,
        "consent.narrowed",
        now=now,
        member_id=member_id,
        partner_id=row.partner_id,
        payload={"consentId": public_id, "permissions": kept},
    )


async def revoke_tokens(conn: AsyncConnection, now: datetime, *, consent_id: int) -> None:
    """Revoke the member-delegated access and refresh tokens issued under one consent."""
    for table in (access_token, refresh_token):
        await conn.execute(
            update(table).where(table.c.consent_id == consent_id, table.c.revoked_at.is_(None)).values(revoked_at=now)
        )


async def consent_in_force(conn: AsyncConnection, member_id: int, partner_id: int, now: datetime) -> Any | None:
    """The member's consent to the partner if it authorises access now."""
    row = (
        await conn.execute(
            select(consent.c.status, consent.c.permissions, consent.c.expires_at).where(
                consent.c.member_id == member_id, consent.c.partner_id == partner_id, rule.consent_in_force(now)
            )
        )
    ).one_or_none()
    return row


async def authorise_app(
    conn: AsyncConnection, *, member_id: int, partner_id: int, chosen: frozenset[str], app_name: str, now: datetime
) -> tuple[Granted, frozenset[str]]:
    """The member allowed a partner's app `chosen` on the consent screen: the consent in force gains them.

    Its expiry stays; a consent that had none gets `HEALTH_CONSENT_TTL` once it covers health-related data.
    Returns the consent and its permissions now.
    """
    current = await consent_in_force(conn, member_id, partner_id, now)
    permissions = (frozenset(current.permissions) if current is not None else frozenset()) | chosen
    if current is not None and current.expires_at is not None:
        expires_at: datetime | None = current.expires_at
    else:
        expires_at = now + HEALTH_CONSENT_TTL if permissions & HEALTH_PERMISSIONS else None
    granted = await grant(
        conn,
        member_id=member_id,
        partner_id=partner_id,
        permissions=permissions,
        evidence=Evidence(policy_version=POLICY_VERSION, channel="APP", actor="member"),
        now=now,
        purposes=[f"app:{app_name}"],
        expires_at=expires_at,
    )
    return granted, permissions


async def expire_due(conn: AsyncConnection, now: datetime) -> int:
    """Write down consents whose expiry has passed (access already stopped at that instant): status and event."""
    rows = (
        await conn.execute(
            select(consent).where(consent.c.status == "AUTHORISED", ~rule.consent_in_force(now)).with_for_update()
        )
    ).all()
    for row in rows:
        await close(conn, row, "EXPIRED", "expired", "hub", now)
        await outbox.record(
            conn,
            "consent.expired",
            now=now,
            member_id=row.member_id,
            partner_id=row.partner_id,
            payload={"consentId": row.public_id},
        )
    return len(rows)
