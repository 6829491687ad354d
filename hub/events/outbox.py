"""Writing to the outbox. Called inside the transaction of the change the event describes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.events.models import event


async def record(
    conn: AsyncConnection,
    type_: str,
    *,
    now: datetime,
    member_id: int | None = None,
    partner_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        insert(event).values(
            type=type_, member_id=member_id, partner_id=partner_id, payload=payload or {}, occurred_at=now
        )
    )
