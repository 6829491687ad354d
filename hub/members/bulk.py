"""Enrolling many members at once, for imports: the rules of `service.enrol`, written set-based.

New members (a phone the hub has not seen) are validated one by one exactly as `enrol` validates them, then
written with one bulk statement per table: member, link (a fresh pairwise id), consent, its `granted` event and
the outbox events; the consent's rows are the ones `consent.first_grant` plans for `consent.grant` too. A row
whose phone belongs to an existing member goes the one-by-one way (`enrol`), which makes it a provisional member
with a claim its owner settles in the portal. Rejections carry `enrol`'s codes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.consent import service as consents
from hub.consent.models import consent, consent_event
from hub.db import among, bulk_insert, reserve_ids
from hub.errors import DomainError
from hub.events.models import event
from hub.ids import new_ids
from hub.members import service
from hub.members.models import member, member_link


async def enrol_many(
    conn: AsyncConnection, partner_id: int, enrolments: list[service.Enrolment], *, now: datetime, region: str
) -> tuple[dict[int, DomainError], int]:
    """Enrol in order in the caller's transaction; returns the errors of the rejected, by index, and how many
    were enrolled provisionally (a phone the hub knew: the member confirms the link in the portal; no code is
    sent to a file's worth of phones)."""
    errors: dict[int, DomainError] = {}
    valid: dict[int, tuple[str, frozenset[str]]] = {}
    for i, enrolment in enumerate(enrolments):
        try:
            phone, permissions = service.validate(enrolment, region, now.date())
            consents.validate_expiry(permissions, enrolment.consent_expires_at, now, "consent.expiresAt")
            valid[i] = (phone, permissions)
        except DomainError as error:
            errors[i] = error
    dialect = conn.dialect.name
    taken = set(
        (
            await conn.scalars(
                select(member_link.c.external_id).where(
                    member_link.c.partner_id == partner_id,
                    among(dialect, member_link.c.external_id, {enrolments[i].external_id for i in valid}),
                )
            )
        ).all()
    )
    known_phones = set(
        (
            await conn.scalars(
                select(member.c.phone).where(
                    member.c.status == "active", among(dialect, member.c.phone, {p for p, _ in valid.values()})
                )
            )
        ).all()
    )
    fresh: list[int] = []
    slow: list[int] = []
    batch_phones: set[str] = set()
    for i, (phone, _) in valid.items():
        enrolment = enrolments[i]
        if enrolment.external_id in taken:
            errors[i] = DomainError("EXTERNAL_ID_TAKEN", "this externalId is already enrolled", "externalId")
        elif phone in batch_phones:
            # The same person twice in one file: the first row enrolled them with us already.
            errors[i] = DomainError(
                "MEMBER_ALREADY_ENROLLED", "this member is already enrolled with you under another externalId", "phone"
            )
        elif phone in known_phones:
            slow.append(i)
        else:
            fresh.append(i)
        taken.add(enrolment.external_id)
        batch_phones.add(phone)
    if fresh:
        await _write(conn, partner_id, [(enrolments[i], *valid[i]) for i in fresh], now)
    provisional = 0
    for i in slow:
        try:
            async with conn.begin_nested():
                await service.enrol(conn, partner_id, enrolments[i], now=now, default_region=region)
            provisional += 1
        except DomainError as error:
            errors[i] = error
    return errors, provisional


async def _write(
    conn: AsyncConnection, partner_id: int, rows: list[tuple[service.Enrolment, str, frozenset[str]]], now: datetime
) -> None:
    member_ids = await reserve_ids(conn, member, len(rows))
    consent_ids = await reserve_ids(conn, consent, len(rows))
    pairwise = new_ids("mbr", len(rows), 16)
    public = new_ids("cns", len(rows), 12)
    members: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    consent_rows: list[dict[str, Any]] = []
    consent_events: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for n, (enrolment, phone, permissions) in enumerate(rows):
        member_id, consent_id = member_ids[n], consent_ids[n]
        members.append(
            {
                "id": member_id,
                "name": enrolment.name,
                "phone": phone,
                "birthday": enrolment.birthday,
                "status": "active",
                "created_at": now,
            }
        )
        links.append(
            {
                "member_id": member_id,
                "partner_id": partner_id,
                "pairwise_id": pairwise[n],
                "external_id": enrolment.external_id,
                "created_at": now,
            }
        )
        first = consents.first_grant(
            public[n], member_id, partner_id, permissions, enrolment.evidence, now,
            expires_at=enrolment.consent_expires_at,
        )  # fmt: skip
        consent_rows.append({"id": consent_id, **first.consent})
        consent_events.append({"consent_id": consent_id, **first.event})
        events += [
            first.outbox.row(now),
            {
                "type": "member.enrolled",
                "member_id": member_id,
                "partner_id": partner_id,
                "payload": {"externalId": enrolment.external_id, "linkedExisting": False},
                "occurred_at": now,
            },
        ]
    await bulk_insert(conn, member, members)
    await bulk_insert(conn, member_link, links)
    await bulk_insert(conn, consent, consent_rows)
    await bulk_insert(conn, consent_event, consent_events)
    await bulk_insert(conn, event, events)
