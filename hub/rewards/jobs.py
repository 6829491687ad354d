"""The worker's rewards jobs.

Unredeemed claims past their time expire with their holds, one claim a transaction. This runs before the points
job, so a claim's hold is released with its claim (units back to the stock and the member's limit); if the points
job expired the hold first, the claim still expires and gives its units back.

Quotes are kept a day past their 5 minutes (a till's support desk may ask what was quoted), then deleted, except
those a claim was made against."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, exists, select

from hub.db import Database
from hub.rewards import claims
from hub.rewards.models import pos_quote, reward_claim

QUOTES_KEPT = timedelta(days=1)


async def expire_claims(db: Database, now: datetime, batch: int = 500) -> int:
    async with db.read() as conn:
        due = await claims.due(conn, now, batch)
    expired = 0
    for claim_pk in due:
        async with db.write() as conn:
            expired += await claims.expire(conn, claim_pk, now)
    return expired


async def prune_quotes(db: Database, now: datetime, batch: int = 5000) -> int:
    """Delete up to `batch` quotes that expired more than a day ago and that no claim names."""
    named = exists().where(reward_claim.c.quote_id == pos_quote.c.id)
    stale = select(pos_quote.c.id).where(pos_quote.c.expires_at < now - QUOTES_KEPT, ~named).limit(batch)
    async with db.write() as conn:
        deleted = await conn.execute(delete(pos_quote).where(pos_quote.c.id.in_(stale.scalar_subquery())))
    return int(deleted.rowcount or 0)
