"""Consent: the member's own decision about what one partner may see and do.

The `consent` row is the current state; `consent_event` is the append-only proof of every change (GDPR Art. 7(1),
PIPL Art. 23). Access checks read `active_consent()`, which every member query joins, so a change takes effect on
the very next request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.auth.scopes import PARTNER_SCOPES
from hub.consent.models import consent, consent_event
from hub.errors import DomainError
from hub.events import outbox
from hub.ids import new_id

CHANNELS = ("POS", "APP", "WEB", "PAPER", "IMPORT")


@dataclass(frozen=True)
class Evidence:
    """How the member gave consent: what they were shown (policy version) and where (channel)."""

    policy_version: str
    channel: str
    actor: str

    def as_dict(self) -> dict[str, Any]:
        return {"policyVersion": self.policy_version, "channel": self.channel}


def validate_permissions(permissions: list[str] | frozenset[str], field: str) -> frozenset[str]:
    chosen = frozenset(permissions)
    if not chosen:
        raise DomainError("INVALID_INPUT", "consent needs at least one permission", field)
    unknown = sorted(chosen - PARTNER_SCOPES.keys())
    if unknown:
        raise DomainError("INVALID_INPUT", f"unknown permission(s): {', '.join(unknown)}", field)
    return chosen


def validate_evidence(evidence: Evidence, field: str) -> None:
    if not evidence.policy_version.strip():
        raise DomainError("INVALID_INPUT", "consent needs the policy version the member agreed to", field)
    if evidence.channel not in CHANNELS:
        raise DomainError("INVALID_INPUT", f"channel must be one of {', '.join(CHANNELS)}", field)


def is_active(now: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    """The SQL predicate for 'this consent authorises access right now'."""
    return and_(
        consent.c.status == "AUTHORISED",
        or_(consent.c.expires_at.is_(None), consent.c.expires_at > now),
    )


async def grant(
    conn: AsyncConnection,
    *,
    member_id: int,
    partner_id: int,
    permissions: frozenset[str],
    evidence: Evidence,
    now: datetime,
) -> str:
    """Record the member's consent to a partner (a new one, or a new version of the existing one)."""
    current = (
        await conn.execute(
            select(consent.c.id, consent.c.status, consent.c.permissions, consent.c.version, consent.c.public_id)
            .where(consent.c.member_id == member_id, consent.c.partner_id == partner_id)
            .with_for_update()
        )
    ).one_or_none()
    granted = sorted(permissions)
    if current is None:
        public_id = new_id("cns", 12)
        consent_pk = await conn.scalar(
            insert(consent)
            .values(
                public_id=public_id,
                member_id=member_id,
                partner_id=partner_id,
                status="AUTHORISED",
                permissions=granted,
                purposes=[],
                policy_version=evidence.policy_version,
                channel=evidence.channel,
                version=1,
                created_at=now,
                updated_at=now,
            )
            .returning(consent.c.id)
        )
        kind, previous = "granted", None
    else:
        consent_pk, public_id, previous = current.id, current.public_id, list(current.permissions)
        kind = _change_kind(current.status, frozenset(previous), permissions)
        await conn.execute(
            update(consent)
            .where(consent.c.id == consent_pk)
            .values(
                status="AUTHORISED",
                permissions=granted,
                policy_version=evidence.policy_version,
                channel=evidence.channel,
                version=current.version + 1,
                updated_at=now,
            )
        )
    await conn.execute(
        insert(consent_event).values(
            consent_id=consent_pk,
            kind=kind,
            actor=evidence.actor,
            permissions=granted,
            previous_permissions=previous,
            evidence=evidence.as_dict(),
            occurred_at=now,
        )
    )
    await outbox.record(
        conn,
        f"consent.{kind}",
        now=now,
        member_id=member_id,
        partner_id=partner_id,
        payload={"consentId": public_id, "permissions": granted},
    )
    return public_id


def _change_kind(status: str, before: frozenset[str], after: frozenset[str]) -> str:
    if status != "AUTHORISED":
        return "granted"
    if after > before:
        return "widened"
    if after < before:
        return "narrowed"
    return "granted" if after != before else "renewed"
