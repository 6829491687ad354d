"""The worker's rewards job: unredeemed claims past their time expire with their holds, one claim a transaction.

It runs before the points job, so a claim's hold is released with its claim (units back to the stock and the
member's limit); if the points job expired the hold first, the claim still expires and gives its units back."""

from __future__ import annotations

from datetime import datetime

from hub.db import Database
from hub.rewards import claims


async def expire_claims(db: Database, now: datetime, batch: int = 500) -> int:
    async with db.read() as conn:
        due = await claims.due(conn, now, batch)
    expired = 0
    for claim_pk in due:
        async with db.write() as conn:
            expired += await claims.expire(conn, claim_pk, now)
    return expired
