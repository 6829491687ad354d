"""Claims on a phone, and merging two member records the member has shown to be one person.

Every enrolment with a phone leaves a claim (members/service.py `enrol`) and a one-time code sent to that phone.
The phone's owner settles the claim: by handing the code back (the partner calls `confirmEnrollment` at the till
or in its app), or by approving it in the portal. For a phone that was new, confirming proves it. For a phone the
hub already knew, confirming merges the partner's provisional member into the phone's owner: points, lots and
holds (through the ledger), purchases and activities (tier growth with them), links and consents, the access log.
A member signed in to the portal can merge another record of theirs the same way, with a code sent to its phone.
Every merge is written to `member_merge` with its evidence, and the portal shows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.activities.models import activity
from hub.auth.models import access_token, refresh_token
from hub.config import Settings
from hub.consent import service as consents
from hub.consent.models import consent
from hub.errors import DomainError
from hub.events import outbox
from hub.members import service, signin
from hub.members.models import member, member_claim, member_link, member_merge, member_session
from hub.members.phone import normalise
from hub.partners.models import partner
from hub.points import ledger
from hub.programme.config import Version
from hub.purchases.models import purchase
from hub.rewards import claims as reward_claims
from hub.tiers import service as tiers
from hub.tiers.models import member_tier

# A till's customer may take a while to find the SMS; the portal keeps the claim open past that.
CLAIM_CODE_TTL = timedelta(minutes=30)


@dataclass(frozen=True)
class Programme:
    """What a merge needs to re-evaluate the tier of the member it keeps."""

    version: Version
    zone: ZoneInfo

    @classmethod
    def of(cls, settings: Settings, now: datetime) -> Programme:
        return cls(settings.programme.at(now), settings.points_policy.zone)


def code_message(code: str, partner_name: str) -> str:
    return (
        f"【hub】{code}: give this code to {partner_name} to link your membership (30 minutes). "
        f"向{partner_name}出示此验证码以关联您的会员（30分钟内有效）。"
    )


async def issue_code(conn: AsyncConnection, claim: service.Claim, now: datetime) -> str | None:
    """The claim's code, or None when the phone has had its share of codes (the enrolment stands regardless:
    its answer must not depend on the phone)."""
    try:
        return await signin.issue_code(conn, claim.phone, now=now, claim_id=claim.id, ttl=CLAIM_CODE_TTL)
    except DomainError:
        return None


async def _pending_claim(conn: AsyncConnection, partner_id: int, pairwise_id: str) -> Any:
    row = (
        await conn.execute(
            select(member_claim)
            .join(member_link, member_link.c.member_id == member_claim.c.member_id)
            .where(
                member_link.c.partner_id == partner_id,
                member_link.c.pairwise_id == pairwise_id,
                member_claim.c.partner_id == partner_id,
                member_claim.c.status == "PENDING",
            )
            .order_by(member_claim.c.id.desc())
            .limit(1)
            .with_for_update(of=member_claim)
        )
    ).one_or_none()
    if row is None:
        raise DomainError("MEMBER_NOT_FOUND", "no enrolment of yours awaits confirmation for this member", "memberId")
    return row


async def confirm(
    conn: AsyncConnection,
    partner_id: int,
    pairwise_id: str,
    code: str,
    *,
    now: datetime,
    programme: Programme,
) -> service.Enrolled | DomainError:
    """The code the partner's member gave back settles their enrolment's claim.

    A wrong code is an answer, not an exception: its counted attempt (and the phone's lockout) must commit.
    """
    claim = await _pending_claim(conn, partner_id, pairwise_id)
    if not await signin.check_code(conn, claim.phone, code, now=now, claim_id=claim.id):
        return DomainError("INVALID_CODE", "the code is wrong or no longer valid", "code")
    kept = await _settle(conn, claim, "CODE", now, programme)
    view = await service.by_member_id(conn, partner_id, kept, now)
    if view is None:
        raise DomainError("MEMBER_NOT_FOUND", "no such member", "memberId")
    return service.Enrolled(member=view, linked_existing=kept != claim.member_id)


async def settle(conn: AsyncConnection, claim_id: int, by: str, now: datetime, programme: Programme) -> int:
    """Confirm a pending claim the member has proven by other means (the demo's tills); see `confirm`."""
    claim = (
        await conn.execute(
            select(member_claim).where(member_claim.c.id == claim_id, member_claim.c.status == "PENDING")
        )
    ).one()
    return await _settle(conn, claim, by, now, programme)


async def _settle(conn: AsyncConnection, claim: Any, by: str, now: datetime, programme: Programme) -> int:
    """Confirm a claim; returns the member the partner's record now is."""
    await conn.execute(
        update(member_claim)
        .where(member_claim.c.id == claim.id)
        .values(status="CONFIRMED", decided_by=by, decided_at=now)
    )
    if claim.target_member_id is None:
        return int(claim.member_id)  # a new phone, now proven
    target = await conn.scalar(
        select(member.c.id).where(member.c.id == claim.target_member_id, member.c.status == "active")
    )
    if target is None:
        # The phone's owner left the hub meanwhile (erased): the provisional member becomes the phone's owner.
        await conn.execute(
            update(member).where(member.c.id == claim.member_id).values(status="active", phone=claim.phone)
        )
        return int(claim.member_id)
    evidence = {"method": "sms_code" if by == "CODE" else "portal", "claim": claim.id, "phone": claim.phone}
    await merge(conn, claim.member_id, int(target), partner_id=claim.partner_id, evidence=evidence, now=now,
                programme=programme)  # fmt: skip
    return int(target)


async def merge(
    conn: AsyncConnection,
    source_id: int,
    target_id: int,
    *,
    partner_id: int | None,
    evidence: dict[str, Any],
    now: datetime,
    programme: Programme,
) -> None:
    """Fold the source member into the target, who keeps their own profile (gaps filled from the source)."""
    points = await ledger.merge_members(conn, source_id, target_id, now)
    for table in (purchase, activity):
        await conn.execute(update(table).where(table.c.member_id == source_id).values(member_id=target_id))
    await reward_claims.merge_members(conn, source_id, target_id)
    await conn.execute(delete(member_tier).where(member_tier.c.member_id == source_id))
    await tiers.upgrade_if_due(conn, target_id, programme.version, now, programme.zone)
    await _merge_links(conn, source_id, target_id, partner_id, now)
    await _merge_profile(conn, source_id, target_id)
    for table in (access_token, refresh_token, member_session):
        await conn.execute(
            update(table).where(table.c.member_id == source_id, table.c.revoked_at.is_(None)).values(revoked_at=now)
        )
    await conn.execute(
        insert(member_merge).values(
            member_id=target_id,
            merged_member_id=source_id,
            partner_id=partner_id,
            evidence={**evidence, "points": points},
            at=now,
        )
    )
    await outbox.record(
        conn,
        "member.merged",
        now=now,
        member_id=target_id,
        partner_id=partner_id,
        payload={"method": evidence["method"]},
    )


async def _merge_links(
    conn: AsyncConnection, source_id: int, target_id: int, confirmed_partner: int | None, now: datetime
) -> None:
    """Each partner of the source now reaches the target, under the pairwise id it already used.

    A partner that knew both keeps the target's pairwise id (the older relationship) and takes the source's
    external id if the target had none. Its consent stays the target's, except for the partner whose enrolment
    the member just confirmed: the consent given at that enrolment is the member's newest word, and replaces it.
    """
    links = (await conn.execute(select(member_link).where(member_link.c.member_id == source_id))).all()
    for link in links:
        theirs = (
            await conn.execute(
                select(member_link).where(
                    member_link.c.member_id == target_id, member_link.c.partner_id == link.partner_id
                )
            )
        ).one_or_none()
        source_consent = (
            await conn.execute(
                select(consent)
                .where(consent.c.member_id == source_id, consent.c.partner_id == link.partner_id)
                .with_for_update()
            )
        ).one_or_none()
        if theirs is None:
            await conn.execute(update(member_link).where(member_link.c.id == link.id).values(member_id=target_id))
            if source_consent is not None:
                await conn.execute(update(consent).where(consent.c.id == source_consent.id).values(member_id=target_id))
            continue
        if theirs.external_id is None and link.external_id is not None:
            await conn.execute(update(member_link).where(member_link.c.id == link.id).values(external_id=None))
            await conn.execute(
                update(member_link).where(member_link.c.id == theirs.id).values(external_id=link.external_id)
            )
        if source_consent is None:
            continue
        if link.partner_id == confirmed_partner and source_consent.status == "AUTHORISED":
            await consents.grant(
                conn,
                member_id=target_id,
                partner_id=link.partner_id,
                permissions=frozenset(source_consent.permissions),
                evidence=consents.Evidence(source_consent.policy_version, source_consent.channel, "member"),
                now=now,
                purposes=list(source_consent.purposes),
                expires_at=source_consent.expires_at,
                data_window_from=source_consent.data_window_from,
            )
        await consents.close(conn, source_consent, "REVOKED", "merged", "member", now)


async def _merge_profile(conn: AsyncConnection, source_id: int, target_id: int) -> None:
    source = (await conn.execute(select(member.c.name, member.c.birthday).where(member.c.id == source_id))).one()
    kept = (await conn.execute(select(member.c.name, member.c.birthday).where(member.c.id == target_id))).one()
    fill = {key: getattr(source, key) for key in ("name", "birthday") if getattr(kept, key) is None}
    if any(value is not None for value in fill.values()):
        await conn.execute(update(member).where(member.c.id == target_id).values(**fill))
    await conn.execute(
        update(member)
        .where(member.c.id == source_id)
        .values(status="merged", merged_into=target_id, phone=None, name=None, birthday=None)
    )
    # Records merged into the source earlier now point at the target too (the access log follows one hop).
    await conn.execute(update(member).where(member.c.merged_into == source_id).values(merged_into=target_id))


# -- the member's side, in the portal --------------------------------------------------------------------------------
@dataclass(frozen=True)
class PendingClaim:
    id: int
    partner_name: str
    created_at: datetime


@dataclass(frozen=True)
class Merge:
    partner_name: str | None
    method: str
    points: int
    at: datetime


async def pending_for(conn: AsyncConnection, member_id: int) -> list[PendingClaim]:
    """Partners' enrolments made with this member's phone that wait for the member."""
    rows = await conn.execute(
        select(member_claim.c.id, partner.c.name, member_claim.c.created_at)
        .join(partner, partner.c.id == member_claim.c.partner_id)
        .where(member_claim.c.target_member_id == member_id, member_claim.c.status == "PENDING")
        .order_by(member_claim.c.id)
    )
    return [PendingClaim(r.id, r.name, r.created_at) for r in rows]


async def merges_of(conn: AsyncConnection, member_id: int) -> list[Merge]:
    rows = await conn.execute(
        select(member_merge.c.evidence, member_merge.c.at, partner.c.name)
        .outerjoin(partner, partner.c.id == member_merge.c.partner_id)
        .where(member_merge.c.member_id == member_id)
        .order_by(member_merge.c.id.desc())
    )
    return [Merge(r.name, str(r.evidence.get("method")), int(r.evidence.get("points", 0)), r.at) for r in rows]


async def decide(
    conn: AsyncConnection, member_id: int, claim_id: int, *, approve: bool, now: datetime, programme: Programme
) -> None:
    """The signed-in phone owner links (approve) or refuses (reject) a partner's enrolment made with their phone."""
    claim = (
        await conn.execute(
            select(member_claim)
            .where(
                member_claim.c.id == claim_id,
                member_claim.c.target_member_id == member_id,
                member_claim.c.status == "PENDING",
            )
            .with_for_update()
        )
    ).one_or_none()
    if claim is None:
        raise DomainError("CLAIM_NOT_FOUND", "no such enrolment awaits you", "claim")
    if approve:
        await _settle(conn, claim, "PORTAL", now, programme)
    else:
        await conn.execute(
            update(member_claim)
            .where(member_claim.c.id == claim.id)
            .values(status="REJECTED", decided_by="PORTAL", decided_at=now)
        )


async def request_own_merge(
    conn: AsyncConnection, member_id: int, raw_phone: str, *, ip: str, now: datetime, region: str
) -> signin.CodeToSend | None:
    """The signed-in member names another record of theirs by its phone: a code goes to that phone.

    Like sign-in, the answer does not say whether the phone is a member's: the code is sent only if it is.
    """
    phone = normalise(raw_phone, region)
    other = await conn.scalar(select(member.c.id).where(member.c.phone == phone, member.c.status == "active"))
    if other == member_id:
        raise DomainError("INVALID_INPUT", "this is the phone you signed in with", "phone")
    claim_id = await conn.scalar(
        insert(member_claim)
        .values(
            partner_id=None,
            member_id=other if other is not None else member_id,
            target_member_id=member_id,
            phone=phone,
            status="PENDING",
            created_at=now,
        )
        .returning(member_claim.c.id)
    )
    code = await signin.issue_code(conn, phone, now=now, ip=ip, claim_id=claim_id)
    return signin.CodeToSend(phone, code) if other is not None else None


async def confirm_own_merge(
    conn: AsyncConnection, member_id: int, raw_phone: str, code: str, *, now: datetime, region: str,
    programme: Programme,
) -> bool:  # fmt: skip
    """The code from the other phone proves it is the member's: that record is merged into the signed-in one."""
    try:
        phone = normalise(raw_phone, region)
    except DomainError:
        return False
    claim = (
        await conn.execute(
            select(member_claim)
            .where(
                member_claim.c.target_member_id == member_id,
                member_claim.c.phone == phone,
                member_claim.c.partner_id.is_(None),
                member_claim.c.status == "PENDING",
            )
            .order_by(member_claim.c.id.desc())
            .limit(1)
            .with_for_update()
        )
    ).one_or_none()
    if claim is None or not await signin.check_code(conn, phone, code, now=now, claim_id=claim.id):
        return False
    other = await conn.scalar(
        select(member.c.id).where(member.c.id == claim.member_id, member.c.phone == phone, member.c.status == "active")
    )
    if other is None or other == member_id:
        return False
    await _settle(conn, claim, "CODE", now, programme)  # the claim's member is the other record, its target this one
    return True
