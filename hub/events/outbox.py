"""Writing to the outbox. Called inside the transaction of the change the event describes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db import bulk_insert
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


@dataclass(frozen=True)
class Event:
    type: str
    member_id: int | None = None
    partner_id: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    def row(self, now: datetime) -> dict[str, Any]:
        """Its outbox row, as written at `now`."""
        return {"type": self.type, "member_id": self.member_id, "partner_id": self.partner_id,
                "payload": self.payload, "occurred_at": now}  # fmt: skip


async def record_event(conn: AsyncConnection, planned: Event, *, now: datetime) -> None:
    """An event a command planned with its rows (ledger.plan_earn, purchases.plan_purchase, consent.first_grant)."""
    await conn.execute(insert(event).values(**planned.row(now)))


async def record_many(conn: AsyncConnection, events: list[Event], *, now: datetime) -> None:
    """Many events in one write (a batch job's notices), as `record` writes one."""
    await bulk_insert(conn, event, [e.row(now) for e in events])
