"""Consent requests: a partner asks a member for more; the member approves (the consent gains what was asked)
or rejects it in the portal. Only the member's approval widens a consent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.consent.models import consent, consent_request
from hub.consent.service import POLICY_VERSION, Evidence, append_event, consent_in_force, grant, validate_expiry
from hub.errors import DomainError
from hub.events import outbox
from hub.ids import new_id
from hub.partners.models import partner


@dataclass(frozen=True)
class RequestView:
    public_id: str
    partner_name: str
    status: str
    permissions: list[str]
    purposes: list[str]
    expires_at: datetime | None
    created_at: datetime


async def request(
    conn: AsyncConnection,
    *,
    partner_id: int,
    member_id: int,
    permissions: frozenset[str],
    purposes: list[str],
    expires_at: datetime | None,
    now: datetime,
    actor: str,
    data_window_from: datetime | None = None,
) -> RequestView:
    """A partner asks the member for consent; the member decides in the portal."""
    validate_expiry(permissions, expires_at, now, "expiresAt")
    if data_window_from is not None and data_window_from > now:
        raise DomainError("INVALID_INPUT", "the data window must start in the past", "dataWindowFrom")
    if not 1 <= len(purposes) <= 10 or any(not p.strip() or len(p) > 200 for p in purposes):
        raise DomainError(
            "INVALID_INPUT", "say what the data is for: 1 to 10 purposes, 200 characters each", "purposes"
        )
    current = (
        await conn.execute(select(consent).where(consent.c.member_id == member_id, consent.c.partner_id == partner_id))
    ).one_or_none()
    public_id = new_id("crq", 12)
    await conn.execute(
        insert(consent_request).values(
            public_id=public_id,
            member_id=member_id,
            partner_id=partner_id,
            status="AWAITING_AUTHORISATION",
            permissions=sorted(permissions),
            purposes=purposes,
            expires_at=expires_at,
            data_window_from=data_window_from,
            created_at=now,
        )
    )
    if current is not None:
        await append_event(conn, current, "requested", actor, sorted(permissions), now, requestId=public_id)
    await outbox.record(
        conn,
        "consent.requested",
        now=now,
        member_id=member_id,
        partner_id=partner_id,
        payload={"requestId": public_id, "permissions": sorted(permissions)},
    )
    name = await conn.scalar(select(partner.c.name).where(partner.c.id == partner_id))
    return RequestView(public_id, str(name), "AWAITING_AUTHORISATION", sorted(permissions), purposes, expires_at, now)


_REQUESTS = select(
    consent_request.c.id,
    consent_request.c.public_id,
    consent_request.c.partner_id,
    partner.c.name.label("partner_name"),
    consent_request.c.status,
    consent_request.c.permissions,
    consent_request.c.purposes,
    consent_request.c.expires_at,
    consent_request.c.data_window_from,
    consent_request.c.created_at,
).join(partner, partner.c.id == consent_request.c.partner_id)


async def pending_requests(conn: AsyncConnection, member_id: int) -> list[RequestView]:
    rows = await conn.execute(
        _REQUESTS.where(
            consent_request.c.member_id == member_id, consent_request.c.status == "AWAITING_AUTHORISATION"
        ).order_by(consent_request.c.id)
    )
    return [
        RequestView(
            r.public_id, r.partner_name, r.status, list(r.permissions), list(r.purposes), r.expires_at, r.created_at
        )
        for r in rows
    ]


async def decide(
    conn: AsyncConnection, member_id: int, request_public_id: str, *, approve: bool, now: datetime, actor: str
) -> None:
    """The member approves (the consent now carries the requested permissions too) or rejects a request."""
    row = (
        await conn.execute(
            _REQUESTS.where(
                consent_request.c.public_id == request_public_id, consent_request.c.member_id == member_id
            ).with_for_update(of=consent_request)
        )
    ).one_or_none()
    if row is None:
        raise DomainError("CONSENT_REQUEST_NOT_FOUND", "no such consent request", "requestId")
    if row.status != "AWAITING_AUTHORISATION":
        raise DomainError("CONSENT_REQUEST_DECIDED", "this request was already decided", "requestId")
    if approve and row.expires_at is not None and row.expires_at <= now:
        raise DomainError(
            "CONSENT_REQUEST_EXPIRED", "the consent this request asks for has already expired", "requestId"
        )
    await conn.execute(
        update(consent_request)
        .where(consent_request.c.id == row.id)
        .values(status="AUTHORISED" if approve else "REJECTED", decided_at=now)
    )
    await outbox.record(
        conn,
        "consent.request_decided",
        now=now,
        member_id=member_id,
        partner_id=row.partner_id,
        payload={"requestId": request_public_id, "decision": "approved" if approve else "rejected"},
    )
    if not approve:
        current = (
            await conn.execute(
                select(consent).where(consent.c.member_id == member_id, consent.c.partner_id == row.partner_id)
            )
        ).one_or_none()
        if current is not None:
            await append_event(conn, current, "rejected", actor, [], now, requestId=request_public_id)
        return
    current = await consent_in_force(conn, member_id, row.partner_id, now)
    keep = frozenset(current.permissions) if current is not None else frozenset()
    await grant(
        conn,
        member_id=member_id,
        partner_id=row.partner_id,
        permissions=keep | frozenset(row.permissions),
        evidence=Evidence(policy_version=POLICY_VERSION, channel="WEB", actor=actor),
        now=now,
        purposes=list(row.purposes),
        expires_at=row.expires_at,
        data_window_from=row.data_window_from,
    )
