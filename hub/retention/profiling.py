"""Scoring is profiling (GDPR Art. 4(4)): a member is scored for a partner only while their consent to that partner
is in force and grants `analytics:read`. Scoring selects only those members (summary.py), every read of a score
checks the consent again (queries.py), and this removes the scores as soon as a consent stops granting it: the
consent service calls it on every change (narrowed, re-granted with less, revoked, expired, erased, merged)."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.retention.models import retention_score

PERMISSION = "analytics:read"


async def consent_changed(conn: AsyncConnection, member_id: int, partner_id: int, permissions: Collection[str]) -> None:
    """The member's consent to the partner now grants `permissions` (none once it ended)."""
    if PERMISSION not in permissions:
        await conn.execute(
            delete(retention_score).where(
                retention_score.c.member_id == member_id, retention_score.c.partner_id == partner_id
            )
        )
