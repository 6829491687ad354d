"""Members and identity federation.

One hub member, many partners. Each partner knows the member by a pairwise id of its own (`member_link`), so two
partners cannot join their data on a shared identifier, and a partner can only ever reach members it is linked to
*and* who have an active consent with it. Every read below takes the calling partner and applies that rule in
SQL, so "not linked", "not consented" and "does not exist" all look the same: nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub import cursors
from hub.consent import rule
from hub.consent import service as consents
from hub.consent.models import consent
from hub.consent.rule import MemberView  # re-exported: what every consented lookup here produces
from hub.db import UtcDateTime, among
from hub.errors import DomainError
from hub.events import outbox
from hub.ids import new_id
from hub.members.models import REACHABLE, member, member_claim, member_link
from hub.members.phone import normalise

MAX_PAGE = 100


@dataclass(frozen=True)
class Profile:
    name: str | None
    birthday: date | None


def profile(view: MemberView) -> Profile:
    """What the member told us about themself, for a partner they let read it (`member:read`)."""
    view.require("member:read")
    return Profile(view.name, view.birthday)


@dataclass(frozen=True)
class Enrolment:
    external_id: str
    phone: str
    name: str | None
    birthday: date | None
    permissions: list[str]
    evidence: consents.Evidence
    consent_expires_at: datetime | None = None


@dataclass(frozen=True)
class Claim:
    """An enrolment's claim on a phone, which the code sent to that phone confirms."""

    id: int
    phone: str


@dataclass(frozen=True)
class Enrolled:
    member: MemberView
    linked_existing: bool
    claim: Claim | None = None


# The members a partner may reach (linked, reachable, consent in force), with what a MemberView holds: every read of
# members by a partner builds on it (bind `partner_id` and `now`). Built once: on the hot read path, constructing the
# statement costs more Python than executing it.
VISIBLE = (
    select(
        member.c.id.label("member_id"),
        member_link.c.pairwise_id,
        member_link.c.external_id,
        member.c.name,
        member.c.birthday,
        member_link.c.created_at.label("member_since"),
        consent.c.permissions,
        consent.c.id.label("consent_pk"),
        consent.c.public_id.label("consent_public_id"),
        consent.c.data_window_from,
    )
    .select_from(member_link)
    .join(member, member.c.id == member_link.c.member_id)
    .join(
        consent,
        (consent.c.member_id == member_link.c.member_id) & (consent.c.partner_id == member_link.c.partner_id),
    )
    .where(
        member_link.c.partner_id == bindparam("partner_id"),
        rule.reachable(bindparam("now", type_=UtcDateTime())),
    )
)
_BY_PAIRWISE_ID = VISIBLE.where(member_link.c.pairwise_id == bindparam("pairwise_id"))
_BY_EXTERNAL_ID = VISIBLE.where(member_link.c.external_id == bindparam("external_id"))
# Public: the authorization server runs it too (synchronously) before issuing member-delegated tokens.
BY_MEMBER_ID = VISIBLE.where(member.c.id == bindparam("member_id"))


def view_of(row: object) -> MemberView:
    return MemberView(
        member_id=row.member_id,  # type: ignore[attr-defined]
        pairwise_id=row.pairwise_id,  # type: ignore[attr-defined]
        external_id=row.external_id,  # type: ignore[attr-defined]
        name=row.name,  # type: ignore[attr-defined]
        birthday=row.birthday,  # type: ignore[attr-defined]
        member_since=row.member_since,  # type: ignore[attr-defined]
        permissions=frozenset(row.permissions),  # type: ignore[attr-defined]
        consent_pk=row.consent_pk,  # type: ignore[attr-defined]
        data_window_from=row.data_window_from,  # type: ignore[attr-defined]
    )


async def by_pairwise_id(conn: AsyncConnection, partner_id: int, pairwise_id: str, now: datetime) -> MemberView | None:
    params = {"partner_id": partner_id, "now": now, "pairwise_id": pairwise_id}
    row = (await conn.execute(_BY_PAIRWISE_ID, params)).one_or_none()
    return None if row is None else view_of(row)


async def by_pairwise_ids(
    conn: AsyncConnection, partner_id: int, pairwise_ids: Iterable[str], now: datetime
) -> dict[str, MemberView]:
    """`by_pairwise_id` for a whole batch (imports): the same rule, one statement."""
    query = VISIBLE.where(among(conn.dialect.name, member_link.c.pairwise_id, pairwise_ids))
    rows = await conn.execute(query, {"partner_id": partner_id, "now": now})
    return {row.pairwise_id: view_of(row) for row in rows}


async def consented_member(
    conn: AsyncConnection, partner_id: int, pairwise_id: str, permission: str, now: datetime
) -> MemberView:
    """The member a command names, if the partner may reach them and they consented to `permission`."""
    view = await by_pairwise_id(conn, partner_id, pairwise_id, now)
    if view is None:
        raise DomainError("MEMBER_NOT_FOUND", "no such member", "memberId")
    view.require(permission)
    return view


async def by_external_id(conn: AsyncConnection, partner_id: int, external_id: str, now: datetime) -> MemberView | None:
    params = {"partner_id": partner_id, "now": now, "external_id": external_id}
    row = (await conn.execute(_BY_EXTERNAL_ID, params)).one_or_none()
    return None if row is None else view_of(row)


@dataclass(frozen=True)
class Page:
    members: list[MemberView]
    has_next: bool


async def page(conn: AsyncConnection, partner_id: int, now: datetime, *, first: int, after: str | None) -> Page:
    """Members in pairwise-id order: stable across pages, and it reveals nothing about enrolment order."""
    if not 0 <= first <= MAX_PAGE:
        raise DomainError("INVALID_INPUT", f"first must be between 0 and {MAX_PAGE}", "first")
    query = VISIBLE.order_by(member_link.c.pairwise_id).limit(first + 1)
    if after:
        query = query.where(member_link.c.pairwise_id > cursors.decode(after, "mbr_"))
    rows = (await conn.execute(query, {"partner_id": partner_id, "now": now})).all()
    return Page(members=[view_of(r) for r in rows[:first]], has_next=len(rows) > first)


def validate(enrolment: Enrolment, default_region: str, today: date) -> tuple[str, frozenset[str]]:
    if not enrolment.external_id.strip() or len(enrolment.external_id) > 100:
        raise DomainError("INVALID_INPUT", "externalId must be 1 to 100 characters", "externalId")
    if enrolment.name is not None and len(enrolment.name) > 200:
        raise DomainError("INVALID_INPUT", "name must be at most 200 characters", "name")
    if enrolment.birthday is not None and not date(1900, 1, 1) <= enrolment.birthday <= today:
        raise DomainError("INVALID_INPUT", "birthday must be a past date after 1900", "birthday")
    phone = normalise(enrolment.phone, default_region)
    permissions = consents.validate_permissions(enrolment.permissions, "consent.permissions")
    consents.validate_evidence(enrolment.evidence, "consent")
    return phone, permissions


async def enrol(
    conn: AsyncConnection,
    partner_id: int,
    enrolment: Enrolment,
    *,
    now: datetime,
    default_region: str,
) -> Enrolled:
    """Enrol a member at a partner, with a claim on the phone for its owner to confirm.

    A phone is not proof of anything, so the answer is the same for a phone the hub knows and one it does not:
    the partner's member holds exactly what the partner sent. A new phone makes a hub member at once; a known
    phone makes a *provisional* member, which the phone's owner may merge into their membership by giving back
    the code sent to the phone (`claims.confirm`) or approving in the portal. Until then the partner sees
    nothing of the existing member, and a consent the member narrowed or revoked stays as the member left it.
    """
    phone, permissions = validate(enrolment, default_region, now.date())
    consents.validate_expiry(permissions, enrolment.consent_expires_at, now, "consent.expiresAt")
    taken = await conn.scalar(
        select(member_link.c.id).where(
            member_link.c.partner_id == partner_id, member_link.c.external_id == enrolment.external_id
        )
    )
    if taken is not None:
        raise DomainError("EXTERNAL_ID_TAKEN", "this externalId is already enrolled", "externalId")

    owner = await conn.scalar(select(member.c.id).where(member.c.phone == phone, member.c.status == "active"))
    member_id = await conn.scalar(
        insert(member)
        .values(
            name=enrolment.name,
            phone=phone if owner is None else None,  # a provisional member does not own the phone
            birthday=enrolment.birthday,
            status="active" if owner is None else "provisional",
            created_at=now,
        )
        .returning(member.c.id)
    )
    assert member_id is not None
    await conn.execute(
        insert(member_link).values(
            member_id=member_id,
            partner_id=partner_id,
            pairwise_id=new_id("mbr", 16),
            external_id=enrolment.external_id,
            created_at=now,
        )
    )
    await consents.grant(
        conn,
        member_id=member_id,
        partner_id=partner_id,
        permissions=permissions,
        evidence=enrolment.evidence,
        now=now,
        expires_at=enrolment.consent_expires_at,
    )
    claim_id = await conn.scalar(
        insert(member_claim)
        .values(
            partner_id=partner_id,
            member_id=member_id,
            target_member_id=owner,
            phone=phone,
            status="PENDING",
            created_at=now,
        )
        .returning(member_claim.c.id)
    )
    assert claim_id is not None
    await outbox.record(
        conn,
        "member.enrolled",
        now=now,
        member_id=member_id,
        partner_id=partner_id,
        payload={"externalId": enrolment.external_id},
    )
    view = await by_member_id(conn, partner_id, member_id, now)
    assert view is not None, "the member was just linked and consented"
    return Enrolled(member=view, linked_existing=False, claim=Claim(int(claim_id), phone))


async def by_member_id(conn: AsyncConnection, partner_id: int, member_id: int, now: datetime) -> MemberView | None:
    """The member as the partner may see it now, by the hub's internal id (for rows that carry it)."""
    params = {"partner_id": partner_id, "now": now, "member_id": member_id}
    row = (await conn.execute(BY_MEMBER_ID, params)).one_or_none()
    return None if row is None else view_of(row)


async def link_for_consent(conn: AsyncConnection, partner_id: int, member_id: int, now: datetime) -> str:
    """The member's pairwise id at the partner, linking them first if the member has never dealt with it
    (a member who authorises a partner's app becomes known to that partner, by a pairwise id only)."""
    pairwise_id = await conn.scalar(
        select(member_link.c.pairwise_id).where(
            member_link.c.partner_id == partner_id, member_link.c.member_id == member_id
        )
    )
    if pairwise_id is not None:
        return str(pairwise_id)
    pairwise_id = new_id("mbr", 16)
    await conn.execute(
        insert(member_link).values(
            member_id=member_id, partner_id=partner_id, pairwise_id=pairwise_id, external_id=None, created_at=now
        )
    )
    return pairwise_id


async def linked_member_id(conn: AsyncConnection, partner_id: int, pairwise_id: str) -> int | None:
    """The member behind the partner's pairwise id, consent or not (to ask a member for consent, not to read)."""
    found = await conn.scalar(
        select(member_link.c.member_id)
        .join(member, member.c.id == member_link.c.member_id)
        .where(
            member_link.c.partner_id == partner_id,
            member_link.c.pairwise_id == pairwise_id,
            member.c.status.in_(REACHABLE),
        )
    )
    return None if found is None else int(found)
