"""The worker's tier round: reviews that are due (downgrades after grace) and birthday gifts."""

from __future__ import annotations

from datetime import datetime

from hub.config import Settings
from hub.db import Database
from hub.purchases.service import lock_member
from hub.tiers import service as tiers


async def review_tiers(db: Database, settings: Settings, now: datetime, batch: int = 500) -> tuple[int, int]:
    """(members reviewed, birthday gifts given). Each member in its own short transaction, under its lock."""
    version = settings.programme.at(now)
    zone = settings.points_policy.zone
    async with db.read() as conn:
        due = await tiers.due_for_review(conn, now, batch)
    for member_id in due:
        async with db.write() as conn:
            await lock_member(conn, member_id)
            await tiers.review(conn, member_id, version, now, zone)
    async with db.write() as conn:
        gifts = await tiers.birthday_gifts(conn, version, now, zone)
    return len(due), gifts
