"""The member's rights over their own data: a portable export (GDPR Art. 20, PIPL Art. 45) and erasure
(GDPR Art. 17 and 19, PIPL Art. 47).

Erasure pseudonymises rather than deletes: name, phone and birthday are removed, the member can no longer sign
in and no partner can reach them (every member read requires an active member), every token and session is
revoked, and each linked partner gets a `member.erased` event with its pairwise id so it can erase its own copy.
Ledger amounts stay: other partners' settlement depends on them, and they identify no one without the profile.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.consent import access_log as access_logs
from hub.consent import service as consents
from hub.consent.models import consent, consent_event
from hub.events import outbox
from hub.members.models import member, member_link, member_session
from hub.partners.models import partner
from hub.points import queries as points
from hub.points.models import ledger_txn
from hub.retention import queries as retention
from hub.rewards.models import reward, reward_claim


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def export(conn: AsyncConnection, member_id: int, now: datetime) -> dict[str, Any]:
    """Everything the hub holds about the member, as one JSON-ready document. Nothing about anyone else."""
    profile = (await conn.execute(select(member).where(member.c.id == member_id))).one()
    links = await conn.execute(
        select(partner.c.name, member_link.c.external_id, member_link.c.created_at)
        .join(partner, partner.c.id == member_link.c.partner_id)
        .where(member_link.c.member_id == member_id)
        .order_by(member_link.c.created_at)
    )
    balances = await points.balances(conn, member_id)
    txns = await conn.execute(
        select(
            ledger_txn.c.public_id,
            ledger_txn.c.kind,
            ledger_txn.c.status,
            ledger_txn.c.points,
            ledger_txn.c.reference,
            ledger_txn.c.created_at,
            partner.c.name,
        )
        .outerjoin(partner, partner.c.id == ledger_txn.c.partner_id)
        .where(ledger_txn.c.member_id == member_id)
        .order_by(ledger_txn.c.id)
    )
    consent_rows = await consents.of_member(conn, member_id, now)
    events = await conn.execute(
        select(consent.c.public_id, consent_event.c.kind, consent_event.c.permissions, consent_event.c.occurred_at)
        .join(consent, consent.c.id == consent_event.c.consent_id)
        .where(consent.c.member_id == member_id)
        .order_by(consent_event.c.id)
    )
    return {
        "exportedAt": now.isoformat(),
        "profile": {
            "name": profile.name,
            "phone": profile.phone,
            "birthday": profile.birthday.isoformat() if profile.birthday else None,
            "memberSince": profile.created_at.isoformat(),
        },
        "partners": [{"partner": r.name, "yourIdThere": r.external_id, "since": _iso(r.created_at)} for r in links],
        "points": {
            "available": balances.available,
            "pending": balances.pending,
            "held": balances.held,
            "lifetimeEarned": balances.lifetime_earned,
            "transactions": [
                {
                    "id": r.public_id,
                    "kind": r.kind,
                    "status": r.status,
                    "points": r.points,
                    "partner": r.name,
                    "reference": r.reference,
                    "at": _iso(r.created_at),
                }
                for r in txns
            ],
        },
        "consents": [
            {
                "id": c.public_id,
                "partner": c.partner_name,
                "status": c.status,
                "permissions": c.permissions,
                "purposes": c.purposes,
                "expiresAt": _iso(c.expires_at),
                "version": c.version,
            }
            for c in consent_rows
        ],
        "consentEvents": [
            {"consent": r.public_id, "kind": r.kind, "permissions": list(r.permissions), "at": _iso(r.occurred_at)}
            for r in events
        ],
        # What profiling concluded about the member, per partner (PIPL Art. 24, GDPR Art. 22 transparency).
        "retention": [
            {"partner": s.partner, "pAlive": round(s.p_alive, 4), "segment": s.segment, "scoredAt": _iso(s.scored_at)}
            for s in await retention.of_member(conn, member_id)
        ],
        "rewardClaims": [
            {
                "id": r.public_id,
                "reward": r.name,
                "status": r.status,
                "quantity": r.quantity,
                "points": r.points,
                "codeEndsWith": r.code_last4,
                "orderReference": r.order_reference,
                "at": _iso(r.created_at),
                "expiresAt": _iso(r.expires_at),
            }
            for r in await conn.execute(
                select(reward_claim, reward.c.name)
                .join(reward, reward.c.id == reward_claim.c.reward_id)
                .where(reward_claim.c.member_id == member_id)
                .order_by(reward_claim.c.id)
            )
        ],
        "accessLog": [
            {
                "partner": a.partner_name,
                "categories": a.categories,
                "consent": a.consent_public_id,
                "at": _iso(a.occurred_at),
                "via": a.via or "read",
            }
            for a in await access_logs.for_member(conn, member_id, limit=10_000)
        ],
    }


async def erase(conn: AsyncConnection, member_id: int, *, now: datetime) -> None:
    await conn.execute(
        update(member)
        .where(member.c.id == member_id, member.c.status == "active")
        .values(status="erased", name=None, phone=None, birthday=None)
    )
    for row in (await conn.execute(select(consent).where(consent.c.member_id == member_id))).all():
        await consents.close(conn, row, "REVOKED", "erased", "member", now)
    await conn.execute(
        update(member_session)
        .where(member_session.c.member_id == member_id, member_session.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    for link in await conn.execute(
        select(member_link.c.partner_id, member_link.c.pairwise_id).where(member_link.c.member_id == member_id)
    ):
        await outbox.record(
            conn,
            "member.erased",
            now=now,
            member_id=member_id,
            partner_id=link.partner_id,
            payload={"memberId": link.pairwise_id},
        )
