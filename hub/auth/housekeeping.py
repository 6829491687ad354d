"""Forget what can no longer matter: records of tokens, codes, assertions and sessions past their expiry."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete

from hub.auth.models import access_token, authorization_code, client_assertion, refresh_token
from hub.db import Database
from hub.members.models import member_session, signin_code

# Kept a little past expiry so that clock skew between processes never resurrects a token.
_MARGIN = timedelta(minutes=5)


# Used codes are kept a day so that a replay, however late, is recognised; sign-in codes a day for rate limits.
_KEEP_CODES = timedelta(days=1)


async def purge_expired(db: Database, now: datetime) -> int:
    statements = [
        delete(access_token).where(access_token.c.expires_at < now - _MARGIN),
        delete(client_assertion).where(client_assertion.c.expires_at < now - _MARGIN),
        delete(refresh_token).where(refresh_token.c.expires_at < now - _MARGIN),
        delete(authorization_code).where(authorization_code.c.expires_at < now - _KEEP_CODES),
        delete(member_session).where(member_session.c.expires_at < now - _MARGIN),
        delete(signin_code).where(signin_code.c.expires_at < now - _KEEP_CODES),
    ]
    purged = 0
    async with db.write() as conn:
        for statement in statements:
            purged += int((await conn.execute(statement)).rowcount or 0)
    return purged
