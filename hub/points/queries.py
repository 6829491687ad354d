"""Reading points: balances, expiring lots, a partner's own transactions and holds.

A partner sees the member's coalition-wide balances (the member consented to `points:read` for it) but only its
own transactions: another partner's transactions would tell it where the member shops.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub import cursors
from hub.db import among
from hub.errors import DomainError
from hub.points.ledger import Txn, partner_account, txn_of
from hub.points.models import (
    MEMBER_AVAILABLE,
    MEMBER_HELD,
    MEMBER_PENDING,
    PARTNER_PREPAID,
    ledger_account,
    ledger_txn,
    point_lot,
)

MAX_PAGE = 100


@dataclass(frozen=True)
class Balances:
    available: int
    pending: int
    held: int
    lifetime_earned: int


async def balances_of(conn: AsyncConnection, member_ids: Iterable[int]) -> dict[int, Balances]:
    """Balances of many members in two statements, whatever their number (a page of members reads this once)."""
    ids = list(dict.fromkeys(member_ids))
    if not ids:
        return {}
    dialect = conn.dialect.name
    by_member: dict[int, dict[str, int]] = {i: {} for i in ids}
    for row in await conn.execute(
        select(ledger_account.c.member_id, ledger_account.c.kind, ledger_account.c.balance).where(
            among(dialect, ledger_account.c.member_id, ids)
        )
    ):
        by_member[row.member_id][row.kind] = int(row.balance)
    lifetime = {
        row.member_id: int(row.total)
        for row in await conn.execute(
            select(point_lot.c.member_id, func.sum(point_lot.c.amount - point_lot.c.reversed).label("total"))
            .where(among(dialect, point_lot.c.member_id, ids), point_lot.c.status != "debt")
            .group_by(point_lot.c.member_id)
        )
    }
    return {
        member_id: Balances(
            available=kinds.get(MEMBER_AVAILABLE, 0),
            pending=kinds.get(MEMBER_PENDING, 0),
            held=kinds.get(MEMBER_HELD, 0),
            lifetime_earned=lifetime.get(member_id, 0),
        )
        for member_id, kinds in by_member.items()
    }


async def balances(conn: AsyncConnection, member_id: int) -> Balances:
    return (await balances_of(conn, [member_id]))[member_id]


async def prepaid_balance(conn: AsyncConnection, partner_id: int) -> int:
    """For a prepaid partner: the points it may still issue."""
    code = partner_account(PARTNER_PREPAID, partner_id).code
    return int(await conn.scalar(select(ledger_account.c.balance).where(ledger_account.c.code == code)) or 0)


@dataclass(frozen=True)
class Expiring:
    points: int
    expires_at: datetime


async def expiring(conn: AsyncConnection, member_id: int, first: int) -> list[Expiring]:
    """Available points grouped by the instant they expire, soonest first."""
    first = max(0, min(first, MAX_PAGE))
    rows = await conn.execute(
        select(point_lot.c.expires_at, func.sum(point_lot.c.remaining).label("points"))
        .where(
            point_lot.c.member_id == member_id,
            point_lot.c.status == "available",
            point_lot.c.remaining > 0,
            point_lot.c.expires_at.is_not(None),
        )
        .group_by(point_lot.c.expires_at)
        .order_by(point_lot.c.expires_at)
        .limit(first)
    )
    return [Expiring(points=int(r.points), expires_at=r.expires_at) for r in rows]


_TXN = select(ledger_txn)


async def own_transaction(conn: AsyncConnection, partner_id: int, public_id: str) -> tuple[Txn, int] | None:
    """One of the caller's transactions and the member it concerns (None if it is not the caller's)."""
    row = (
        await conn.execute(_TXN.where(ledger_txn.c.public_id == public_id, ledger_txn.c.partner_id == partner_id))
    ).one_or_none()
    if row is None or row.member_id is None:
        return None
    return txn_of(row), row.member_id


@dataclass(frozen=True)
class HistoryPage:
    transactions: list[Txn]
    has_next: bool


async def history(
    conn: AsyncConnection, partner_id: int, member_id: int, *, first: int, after: str | None
) -> HistoryPage:
    """The caller's own transactions with this member, newest first."""
    if not 0 <= first <= MAX_PAGE:
        raise DomainError("INVALID_INPUT", f"first must be between 0 and {MAX_PAGE}", "first")
    query = (
        _TXN.where(ledger_txn.c.partner_id == partner_id, ledger_txn.c.member_id == member_id)
        .order_by(ledger_txn.c.id.desc())
        .limit(first + 1)
    )
    if after:
        anchor = (
            select(ledger_txn.c.id).where(ledger_txn.c.public_id == cursors.decode(after, "txn_")).scalar_subquery()
        )
        query = query.where(ledger_txn.c.id < anchor)
    rows = (await conn.execute(query)).all()
    return HistoryPage(transactions=[txn_of(r) for r in rows[:first]], has_next=len(rows) > first)
