"""Reading points: balances, expiring lots, a partner's own transactions and holds.

A partner sees the member's coalition-wide balances (the member consented to `points:read` for it) but only its
own transactions: another partner's transactions would tell it where the member shops.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from hub import cursors
from hub.consent.rule import ConsentRequired, MemberView, answers, readable
from hub.db import among
from hub.errors import DomainError
from hub.members import service as members
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


async def _balances(conn: AsyncConnection, member_ids: list[int]) -> dict[int, Balances]:
    """Balances of many members in one statement: the cached account balances and, beside them, lifetime sums."""
    by_member: dict[int, dict[str, int]] = {i: {} for i in member_ids}
    if member_ids:
        dialect = conn.dialect.name
        accounts = select(ledger_account.c.member_id, ledger_account.c.kind, ledger_account.c.balance).where(
            among(dialect, ledger_account.c.member_id, member_ids)
        )
        lifetime = (
            select(
                point_lot.c.member_id,
                literal(LIFETIME).label("kind"),
                func.sum(point_lot.c.amount - point_lot.c.reversed).label("balance"),
            )
            .where(among(dialect, point_lot.c.member_id, member_ids), point_lot.c.status != "debt")
            .group_by(point_lot.c.member_id)
        )
        for row in await conn.execute(union_all(accounts, lifetime)):
            by_member[row.member_id][row.kind] = int(row.balance)
    return {
        member_id: Balances(
            available=kinds.get(MEMBER_AVAILABLE, 0),
            pending=kinds.get(MEMBER_PENDING, 0),
            held=kinds.get(MEMBER_HELD, 0),
            lifetime_earned=kinds.get(LIFETIME, 0),
        )
        for member_id, kinds in by_member.items()
    }


LIFETIME = "lifetime"  # not an account kind: the lots' sum, read beside the accounts


async def balances_of(conn: AsyncConnection, views: Sequence[MemberView]) -> list[Balances | ConsentRequired]:
    """The balances of each member a partner reached (a page of them at once), where they consented to
    `points:read`; the refusal in place of the others."""
    found = await _balances(conn, readable(views, "points:read"))
    return answers(views, "points:read", lambda v: found[v.member_id])


async def balances(conn: AsyncConnection, member_id: int) -> Balances:
    """The operator's read (CLI, checks): no partner in between."""
    return (await _balances(conn, [member_id]))[member_id]


async def prepaid_balance(conn: AsyncConnection, partner_id: int) -> int:
    """For a prepaid partner: the points it may still issue."""
    code = partner_account(PARTNER_PREPAID, partner_id).code
    return int(await conn.scalar(select(ledger_account.c.balance).where(ledger_account.c.code == code)) or 0)


@dataclass(frozen=True)
class Expiring:
    points: int
    expires_at: datetime


async def expiring_of(
    conn: AsyncConnection, views: Sequence[MemberView], first: int
) -> list[list[Expiring] | ConsentRequired]:
    """Available points grouped by the instant they expire, soonest first, for each member who consented to
    `points:read` (a page of them) in one statement."""
    first = max(0, min(first, MAX_PAGE))
    member_ids = readable(views, "points:read")
    found: dict[int, list[Expiring]] = {m: [] for m in member_ids}
    if member_ids and first:
        await _expiring(conn, member_ids, first, found)
    return answers(views, "points:read", lambda v: found[v.member_id])


async def available_and_expiring(
    conn: AsyncConnection, member_ids: list[int]
) -> dict[int, tuple[int, Expiring | None]]:
    """The hub's own read for its notices (no partner in between; the webhook fan-out shows it only to partners
    the member's consent lets see points): each member's available points and the batch that expires soonest."""
    balances = await _balances(conn, member_ids)
    soonest: dict[int, list[Expiring]] = {m: [] for m in member_ids}
    if member_ids:
        await _expiring(conn, member_ids, 1, soonest)
    return {m: (balances[m].available, soonest[m][0] if soonest[m] else None) for m in member_ids}


async def _expiring(conn: AsyncConnection, member_ids: list[int], first: int, found: dict[int, list[Expiring]]) -> None:
    grouped = (
        select(
            point_lot.c.member_id,
            point_lot.c.expires_at,
            func.sum(point_lot.c.remaining).label("points"),
            func.row_number()
            .over(partition_by=point_lot.c.member_id, order_by=point_lot.c.expires_at)
            .label("position"),
        )
        .where(
            among(conn.dialect.name, point_lot.c.member_id, member_ids),
            point_lot.c.status == "available",
            point_lot.c.remaining > 0,
            point_lot.c.expires_at.is_not(None),
        )
        .group_by(point_lot.c.member_id, point_lot.c.expires_at)
        .subquery()
    )
    rows = await conn.execute(
        select(grouped.c.member_id, grouped.c.expires_at, grouped.c.points)
        .where(grouped.c.position <= first)
        .order_by(grouped.c.member_id, grouped.c.expires_at)
    )
    for r in rows:
        found[r.member_id].append(Expiring(points=int(r.points), expires_at=r.expires_at))


_TXN = select(ledger_txn)


async def readable_transaction(
    conn: AsyncConnection, partner_id: int, public_id: str, now: datetime
) -> tuple[Txn, MemberView] | None:
    """One of the caller's own transactions and the member it concerns, while that member lets the caller read
    their points (a transaction is member data: it goes dark when the consent does)."""
    row = (
        await conn.execute(_TXN.where(ledger_txn.c.public_id == public_id, ledger_txn.c.partner_id == partner_id))
    ).one_or_none()
    if row is None or row.member_id is None:
        return None
    view = await members.by_member_id(conn, partner_id, row.member_id, now)
    if view is None or not view.permits("points:read"):
        return None
    return txn_of(row), view


@dataclass(frozen=True)
class HistoryPage:
    transactions: list[Txn]
    has_next: bool


async def histories_of(
    conn: AsyncConnection, partner_id: int, views: Sequence[MemberView], *, first: int, after: str | None
) -> list[HistoryPage | ConsentRequired]:
    """The caller's own transactions with each member (newest first) who consented to `points:read`, for a page
    of members in one statement: each member's first `first` + 1 rows by a window over that member's rows."""
    if not 0 <= first <= MAX_PAGE:
        raise DomainError("INVALID_INPUT", f"first must be between 0 and {MAX_PAGE}", "first")
    member_ids = readable(views, "points:read")
    pages: dict[int, list[Any]] = {m: [] for m in member_ids}
    if member_ids:
        numbered = select(
            *ledger_txn.c,
            func.row_number()
            .over(partition_by=ledger_txn.c.member_id, order_by=ledger_txn.c.id.desc())
            .label("position"),
        ).where(ledger_txn.c.partner_id == partner_id, among(conn.dialect.name, ledger_txn.c.member_id, member_ids))
        if after:
            anchor = (
                select(ledger_txn.c.id).where(ledger_txn.c.public_id == cursors.decode(after, "txn_")).scalar_subquery()
            )
            numbered = numbered.where(ledger_txn.c.id < anchor)
        window = numbered.subquery()
        rows = await conn.execute(
            select(window).where(window.c.position <= first + 1).order_by(window.c.member_id, window.c.id.desc())
        )
        for row in rows:
            pages[row.member_id].append(row)

    def page(view: MemberView) -> HistoryPage:
        rows = pages[view.member_id]
        return HistoryPage(transactions=[txn_of(r) for r in rows[:first]], has_next=len(rows) > first)

    return answers(views, "points:read", page)
