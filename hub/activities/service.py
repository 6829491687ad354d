"""Health activities: a partner records a verified activity; the member earns the programme's points for that
kind, funded by the partner, within per-day and per-week caps (per member, partner and kind; days and ISO weeks
in the programme's time zone). What the caps withheld is reported, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.activities.models import activity
from hub.errors import DomainError
from hub.events import outbox
from hub.idempotency import check_key, fingerprint, replayed
from hub.ids import new_id
from hub.members.service import consented_member
from hub.partners.models import partner_terms
from hub.points import ledger
from hub.points.models import ledger_txn
from hub.points.policy import PointsPolicy
from hub.programme.config import ACTIVITY_KINDS, Programme
from hub.purchases.service import CLOCK_SKEW, lock_member


@dataclass(frozen=True)
class RecordActivity:
    COMMAND: ClassVar[str] = "recordActivity"
    member_id: str
    kind: str
    occurred_at: datetime
    reference: str
    idempotency_key: str


@dataclass(frozen=True)
class Activity:
    member_id: int
    public_id: str
    kind: str
    reference: str
    points_granted: int
    points_capped: int


def _view(row: object) -> Activity:
    return Activity(
        row.member_id,  # type: ignore[attr-defined]
        row.public_id,  # type: ignore[attr-defined]
        row.kind,  # type: ignore[attr-defined]
        row.reference,  # type: ignore[attr-defined]
        row.points_granted,  # type: ignore[attr-defined]
        row.points_capped,  # type: ignore[attr-defined]
    )


async def allowed_kinds(conn: AsyncConnection, partner_id: int) -> list[str]:
    kinds = await conn.scalar(select(partner_terms.c.activity_kinds).where(partner_terms.c.partner_id == partner_id))
    return list(kinds or [])


async def record(
    conn: AsyncConnection,
    partner_id: int,
    cmd: RecordActivity,
    *,
    now: datetime,
    programme: Programme,
    policy: PointsPolicy,
) -> Activity:
    check_key(cmd.idempotency_key)
    if not cmd.reference.strip() or len(cmd.reference) > 200:
        raise DomainError("INVALID_INPUT", "reference must be 1 to 200 characters", "reference")
    if cmd.kind not in ACTIVITY_KINDS:
        raise DomainError("INVALID_INPUT", f"kind must be one of {', '.join(ACTIVITY_KINDS)}", "kind")
    if cmd.occurred_at.tzinfo is None or cmd.occurred_at > now + CLOCK_SKEW:
        raise DomainError("INVALID_INPUT", "occurredAt must be a time with zone, not in the future", "occurredAt")
    digest = fingerprint(cmd)
    for column, value, code, field in (
        (activity.c.idempotency_key, cmd.idempotency_key, "IDEMPOTENCY_CONFLICT", "idempotencyKey"),
        (activity.c.reference, cmd.reference, "DUPLICATE_REFERENCE", "reference"),
    ):
        found = (
            await conn.execute(select(activity).where(activity.c.partner_id == partner_id, column == value))
        ).one_or_none()
        if found is not None:
            replayed(
                found.request_hash, digest, code=code, message="already used for a different activity", field=field
            )
            return _view(found)
    if cmd.kind not in await allowed_kinds(conn, partner_id):
        raise DomainError("ACTIVITY_NOT_ALLOWED", f"your contract does not cover {cmd.kind}", "kind")
    rule = programme.at(cmd.occurred_at).activities.get(cmd.kind)
    if rule is None:
        raise DomainError("ACTIVITY_NOT_ALLOWED", f"the programme grants nothing for {cmd.kind} at that date", "kind")

    view = await consented_member(conn, partner_id, cmd.member_id, "activity:write", now)
    await lock_member(conn, view.member_id)
    local = cmd.occurred_at.astimezone(policy.zone)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    week = day - timedelta(days=local.weekday())

    async def granted_since(start: datetime, days: int) -> int:
        total = await conn.scalar(
            select(func.coalesce(func.sum(activity.c.points_granted), 0)).where(
                activity.c.member_id == view.member_id,
                activity.c.partner_id == partner_id,
                activity.c.kind == cmd.kind,
                activity.c.occurred_at >= start,
                activity.c.occurred_at < start + timedelta(days=days),
            )
        )
        return int(total or 0)

    room = min(rule.per_day - await granted_since(day, 1), rule.per_week - await granted_since(week, 7))
    granted = max(0, min(rule.points, room))
    public_id = new_id("act", 12)
    activity_id = await conn.scalar(
        insert(activity)
        .values(
            public_id=public_id,
            partner_id=partner_id,
            member_id=view.member_id,
            kind=cmd.kind,
            occurred_at=cmd.occurred_at,
            reference=cmd.reference,
            points_granted=granted,
            points_capped=rule.points - granted,
            idempotency_key=cmd.idempotency_key,
            request_hash=digest,
            created_at=now,
        )
        .returning(activity.c.id)
    )
    if granted:
        earned = await ledger.earn_for_member(
            conn,
            partner_id,
            view.member_id,
            ledger.Earn(
                cmd.member_id,
                granted,
                f"{cmd.kind} {cmd.reference}",
                cmd.reference,
                None,
                f"activity:{cmd.idempotency_key}",
            ),
            now,
            policy,
        )
        txn_pk = await conn.scalar(select(ledger_txn.c.id).where(ledger_txn.c.public_id == earned.public_id))
        await conn.execute(update(activity).where(activity.c.id == activity_id).values(earn_txn_id=txn_pk))
    await outbox.record(
        conn,
        "activity.recorded",
        now=now,
        member_id=view.member_id,
        partner_id=partner_id,
        payload={
            "activityId": public_id,
            "kind": cmd.kind,
            "pointsGranted": granted,
            "pointsCapped": rule.points - granted,
        },
    )
    return Activity(view.member_id, public_id, cmd.kind, cmd.reference, granted, rule.points - granted)
