"""Forget what can no longer matter: records of access tokens and client assertions past their expiry."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete

from hub.auth.models import access_token, client_assertion
from hub.db import Database

# Kept a little past expiry so that clock skew between processes never resurrects a token.
_MARGIN = timedelta(minutes=5)


async def purge_expired(db: Database, now: datetime) -> int:
    async with db.write() as conn:
        tokens = await conn.execute(delete(access_token).where(access_token.c.expires_at < now - _MARGIN))
        assertions = await conn.execute(delete(client_assertion).where(client_assertion.c.expires_at < now - _MARGIN))
    return int(tokens.rowcount or 0) + int(assertions.rowcount or 0)
