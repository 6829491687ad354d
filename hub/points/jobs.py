"""The ledger's periodic jobs, run by `hub worker`: mature pending points, expire lots, expire holds, and tell
partners which points expire soon.

Each member is processed in its own short transaction under its account lock. On PostgreSQL the lock is taken
with `FOR UPDATE SKIP LOCKED`, so several workers share the work without waiting on each other: a member another
worker (or a till) is busy with is simply left for the next round.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db import Database
from hub.events import outbox
from hub.points import ledger
from hub.points.ledger import LedgerError
from hub.points.models import expiry_notice, point_hold, point_lot


@dataclass
class JobReport:
    matured_points: int = 0
    expired_points: int = 0
    expired_holds: int = 0
    expiring_notices: int = 0


async def _for_each_member(
    db: Database,
    candidates: list[int],
    work: Callable[[AsyncConnection, int, datetime], Awaitable[int]],
    now: datetime,
) -> int:
    total = 0
    for member_id in candidates:
        async with db.write() as conn:
            if await ledger.try_lock_member(conn, member_id, now):
                total += await work(conn, member_id, now)
    return total


async def announce_expiring(db: Database, now: datetime, within: timedelta, batch: int = 500) -> int:
    """`points.expiring` for each batch of a member's available points (the lots expiring at the same instant)
    that expires within `within`, once per batch: the notice row is written first, and only a row this worker
    wrote gets its event, so several workers never announce a batch twice."""
    noticed = exists().where(
        expiry_notice.c.member_id == point_lot.c.member_id, expiry_notice.c.expires_at == point_lot.c.expires_at
    )
    async with db.write() as conn:
        due = (
            await conn.execute(
                select(point_lot.c.member_id, point_lot.c.expires_at, func.sum(point_lot.c.remaining).label("points"))
                .where(
                    point_lot.c.status == "available",
                    point_lot.c.remaining > 0,
                    point_lot.c.expires_at > now,
                    point_lot.c.expires_at <= now + within,
                    ~noticed,
                )
                .group_by(point_lot.c.member_id, point_lot.c.expires_at)
                .order_by(point_lot.c.expires_at)
                .limit(batch)
            )
        ).all()
        if not due:
            return 0
        insert_ = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        written = await conn.execute(
            insert_(expiry_notice)
            .values([
                {"member_id": r.member_id, "expires_at": r.expires_at, "points": int(r.points), "notified_at": now}
                for r in due
            ])
            .on_conflict_do_nothing()
            .returning(expiry_notice.c.member_id, expiry_notice.c.expires_at, expiry_notice.c.points)
        )  # fmt: skip
        events = [
            outbox.Event(
                "points.expiring",
                member_id=row.member_id,
                payload={"points": int(row.points), "expiresAt": row.expires_at.isoformat()},
            )
            for row in written
        ]
        await outbox.record_many(conn, events, now=now)
    return len(events)


async def run_once(db: Database, now: datetime, batch: int = 500) -> JobReport:
    report = JobReport()
    async with db.read() as conn:
        due = select(point_lot.c.member_id).where(point_lot.c.status == "pending", point_lot.c.available_at <= now)
        maturing = list((await conn.scalars(due.distinct().limit(batch))).all())
    report.matured_points = await _for_each_member(db, maturing, ledger.mature, now)

    async with db.read() as conn:
        due = select(point_lot.c.member_id).where(
            point_lot.c.status == "available", point_lot.c.remaining > 0, point_lot.c.expires_at <= now
        )
        expiring = list((await conn.scalars(due.distinct().limit(batch))).all())
    report.expired_points = await _for_each_member(db, expiring, ledger.expire_lots, now)

    async with db.read() as conn:
        holds = (
            await conn.execute(
                select(point_hold.c.id, point_hold.c.member_id)
                .where(point_hold.c.status == "ACTIVE", point_hold.c.expires_at <= now)
                .limit(batch)
            )
        ).all()
    for hold in holds:
        try:
            async with db.write() as conn:
                if await ledger.try_lock_member(conn, hold.member_id, now):
                    report.expired_holds += await ledger.expire_hold(conn, hold.id, now)
        except LedgerError:
            continue  # resolved by its partner in the meantime
    return report
