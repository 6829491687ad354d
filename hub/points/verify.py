"""`hub ledger verify`: every invariant of the ledger, checked from the stored rows. Each returns its violations.

1. The entries of every transaction sum to zero.
2. Every cached balance (member accounts, prepaid accounts) equals the sum of its account's entries, and its
   version their count (an entry updated or deleted shows here; the database also refuses both).
3. A member's lots explain its balances: available = Σ remaining of available and debt lots; pending = Σ
   remaining of pending lots; held = Σ points of active holds = Σ net hold allocations.
4. No balance below its floor: a member's available balance is below zero only by its recorded debt (a reversal
   after spending); a prepaid partner's prepaid account never below zero.
5. Holds: captured ≤ held; a hold is resolved by at most one transaction, and only a resolved hold has one.
6. An idempotency key is used at most once per partner.
7. Every lot: amount − Σ allocations − expired − reversed = remaining.
8. Per issuer: Σ entries of its issuing and prepaid accounts = funded − Σ (lot amount − reversed); per redeemer:
   Σ entries of its redeemed account = Σ settling allocations (so settlement lines, built from allocations,
   agree with the accounts).
9. Reward claims: a redeemed claim's settlement lines sum to the value it was redeemed for, a reversed claim's to
   zero, and their points lines to the points it captured (net of what was given back).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.points.models import (
    MEMBER_AVAILABLE,
    MEMBER_HELD,
    MEMBER_PENDING,
    PARTNER_ISSUING,
    PARTNER_PREPAID,
    PARTNER_REDEEMED,
    TRACKED_KINDS,
    ledger_account,
    ledger_entry,
    ledger_txn,
    lot_allocation,
    point_hold,
    point_lot,
)
from hub.rewards.models import reward_claim, reward_settlement


async def _rows(conn: AsyncConnection, query: Any) -> list[Any]:
    return list((await conn.execute(query)).all())


async def verify(conn: AsyncConnection) -> list[str]:
    problems: list[str] = []

    unbalanced = (
        select(ledger_entry.c.txn_id, func.sum(ledger_entry.c.amount).label("total"))
        .group_by(ledger_entry.c.txn_id)
        .having(func.sum(ledger_entry.c.amount) != 0)
    )
    problems += [f"transaction {r.txn_id}: entries sum to {r.total}, not 0" for r in await _rows(conn, unbalanced)]

    sums = (
        select(ledger_entry.c.account, func.sum(ledger_entry.c.amount).label("total"), func.count().label("n"))
        .group_by(ledger_entry.c.account)
        .subquery()
    )
    drift = (
        select(ledger_account.c.code, ledger_account.c.balance, ledger_account.c.version, sums.c.total, sums.c.n)
        .outerjoin(sums, sums.c.account == ledger_account.c.code)
        .where(
            ledger_account.c.kind.in_(TRACKED_KINDS),
            (ledger_account.c.balance != func.coalesce(sums.c.total, 0))
            | (ledger_account.c.version != func.coalesce(sums.c.n, 0)),
        )
    )
    problems += [
        f"account {r.code}: cached balance {r.balance} (version {r.version}), "
        f"entries sum to {r.total or 0} ({r.n or 0})"
        for r in await _rows(conn, drift)
    ]

    def lots_sum(*statuses: str) -> Any:
        return (
            select(point_lot.c.member_id, func.sum(point_lot.c.remaining).label("total"))
            .where(point_lot.c.status.in_(statuses))
            .group_by(point_lot.c.member_id)
            .subquery()
        )

    for kind, statuses in ((MEMBER_AVAILABLE, ("available", "debt")), (MEMBER_PENDING, ("pending",))):
        lots = lots_sum(*statuses)
        mismatch = (
            select(ledger_account.c.member_id, ledger_account.c.balance, lots.c.total)
            .outerjoin(lots, lots.c.member_id == ledger_account.c.member_id)
            .where(ledger_account.c.kind == kind, ledger_account.c.balance != func.coalesce(lots.c.total, 0))
        )
        problems += [
            f"member {r.member_id}: {kind} balance {r.balance} but its lots hold {r.total or 0}"
            for r in await _rows(conn, mismatch)
        ]

    active = (
        select(point_hold.c.member_id, func.sum(point_hold.c.points).label("total"))
        .where(point_hold.c.status == "ACTIVE")
        .group_by(point_hold.c.member_id)
        .subquery()
    )
    held = (
        select(ledger_account.c.member_id, ledger_account.c.balance, active.c.total)
        .outerjoin(active, active.c.member_id == ledger_account.c.member_id)
        .where(ledger_account.c.kind == MEMBER_HELD, ledger_account.c.balance != func.coalesce(active.c.total, 0))
    )
    problems += [
        f"member {r.member_id}: held balance {r.balance} but active holds total {r.total or 0}"
        for r in await _rows(conn, held)
    ]
    net_held = await conn.scalar(
        select(func.coalesce(func.sum(lot_allocation.c.amount), 0)).where(
            lot_allocation.c.kind.in_(("hold", "release"))
        )
    )
    total_held = await conn.scalar(
        select(func.coalesce(func.sum(ledger_account.c.balance), 0)).where(ledger_account.c.kind == MEMBER_HELD)
    )
    if int(net_held or 0) != int(total_held or 0):
        problems.append(f"holds: lots hold {net_held} points for tills, held accounts total {total_held}")

    debts = (
        select(point_lot.c.member_id, func.sum(point_lot.c.remaining).label("owed"))
        .where(point_lot.c.status == "debt")
        .group_by(point_lot.c.member_id)
        .subquery()
    )
    below = (
        select(ledger_account.c.member_id, ledger_account.c.balance, debts.c.owed)
        .outerjoin(debts, debts.c.member_id == ledger_account.c.member_id)
        .where(
            ledger_account.c.kind.in_((MEMBER_AVAILABLE, MEMBER_PENDING, MEMBER_HELD)),
            ledger_account.c.balance < func.coalesce(debts.c.owed, 0),
            ledger_account.c.balance < 0,
        )
    )
    problems += [
        f"member {r.member_id}: balance {r.balance} is below zero beyond its recorded debt {r.owed or 0}"
        for r in await _rows(conn, below)
    ]
    prepaid = select(ledger_account.c.code, ledger_account.c.balance).where(
        ledger_account.c.kind == PARTNER_PREPAID, ledger_account.c.balance < 0
    )
    problems += [f"{r.code}: prepaid balance {r.balance} below zero" for r in await _rows(conn, prepaid)]

    resolutions = (
        select(ledger_txn.c.hold_id, func.count().label("n"))
        .where(ledger_txn.c.kind.in_(("capture", "void", "hold_expire")))
        .group_by(ledger_txn.c.hold_id)
        .subquery()
    )
    holds = (
        select(
            point_hold.c.public_id,
            point_hold.c.status,
            point_hold.c.points,
            point_hold.c.captured_points,
            resolutions.c.n,
        )
        .outerjoin(resolutions, resolutions.c.hold_id == point_hold.c.id)
        .where(
            (point_hold.c.captured_points > point_hold.c.points)
            | (func.coalesce(resolutions.c.n, 0) > 1)
            | ((point_hold.c.status == "ACTIVE") & (func.coalesce(resolutions.c.n, 0) != 0))
            | ((point_hold.c.status != "ACTIVE") & (func.coalesce(resolutions.c.n, 0) != 1))
        )
    )
    problems += [
        f"hold {r.public_id}: status {r.status}, captured {r.captured_points} of {r.points}, resolved {r.n or 0} times"
        for r in await _rows(conn, holds)
    ]

    keys = (
        select(ledger_txn.c.partner_id, ledger_txn.c.idempotency_key, func.count().label("n"))
        .where(ledger_txn.c.idempotency_key.is_not(None))
        .group_by(ledger_txn.c.partner_id, ledger_txn.c.idempotency_key)
        .having(func.count() > 1)
    )
    problems += [f"idempotency key {r.idempotency_key!r} applied {r.n} times" for r in await _rows(conn, keys)]

    allocated = (
        select(lot_allocation.c.lot_id, func.sum(lot_allocation.c.amount).label("total"))
        .group_by(lot_allocation.c.lot_id)
        .subquery()
    )
    lot_drift = (
        select(
            point_lot.c.id,
            point_lot.c.amount,
            point_lot.c.remaining,
            point_lot.c.expired,
            point_lot.c.reversed,
            allocated.c.total,
        )
        .outerjoin(allocated, allocated.c.lot_id == point_lot.c.id)
        .where(
            point_lot.c.amount - func.coalesce(allocated.c.total, 0) - point_lot.c.expired - point_lot.c.reversed
            != point_lot.c.remaining
        )
    )
    problems += [
        f"lot {r.id}: amount {r.amount} − allocated {r.total or 0} − expired {r.expired} − reversed {r.reversed}"
        f" ≠ remaining {r.remaining}"
        for r in await _rows(conn, lot_drift)
    ]

    # Issuers: what their issuing and prepaid accounts received in entries = funded − (issued − reversed).
    issued = (
        select(point_lot.c.issuer_id, func.sum(point_lot.c.amount - point_lot.c.reversed).label("net"))
        .group_by(point_lot.c.issuer_id)
        .subquery()
    )
    funded = (
        select(ledger_txn.c.partner_id, func.sum(ledger_txn.c.points).label("total"))
        .where(ledger_txn.c.kind == "fund")
        .group_by(ledger_txn.c.partner_id)
        .subquery()
    )
    posted = (
        select(ledger_account.c.partner_id, func.coalesce(func.sum(ledger_entry.c.amount), 0).label("total"))
        .select_from(ledger_account)
        .outerjoin(ledger_entry, ledger_entry.c.account == ledger_account.c.code)
        .where(ledger_account.c.kind.in_((PARTNER_ISSUING, PARTNER_PREPAID)))
        .group_by(ledger_account.c.partner_id)
        .subquery()
    )
    issuer_drift = (
        select(posted.c.partner_id, posted.c.total, issued.c.net, funded.c.total.label("funded"))
        .outerjoin(issued, issued.c.issuer_id == posted.c.partner_id)
        .outerjoin(funded, funded.c.partner_id == posted.c.partner_id)
        .where(posted.c.total != func.coalesce(funded.c.total, 0) - func.coalesce(issued.c.net, 0))
    )
    problems += [
        f"issuer {r.partner_id}: its accounts hold {r.total} but funded {r.funded or 0} − issued net {r.net or 0}"
        for r in await _rows(conn, issuer_drift)
    ]
    settled = (
        select(lot_allocation.c.partner_id, func.sum(lot_allocation.c.amount).label("total"))
        .where(lot_allocation.c.kind.in_(("redeem", "capture", "refund", "reward")))
        .group_by(lot_allocation.c.partner_id)
        .subquery()
    )
    redeemed = (
        select(ledger_account.c.partner_id, func.coalesce(func.sum(ledger_entry.c.amount), 0).label("total"))
        .select_from(ledger_account)
        .outerjoin(ledger_entry, ledger_entry.c.account == ledger_account.c.code)
        .where(ledger_account.c.kind == PARTNER_REDEEMED)
        .group_by(ledger_account.c.partner_id)
        .subquery()
    )
    redeemer_drift = (
        select(redeemed.c.partner_id, redeemed.c.total, settled.c.total.label("allocated"))
        .outerjoin(settled, settled.c.partner_id == redeemed.c.partner_id)
        .where(redeemed.c.total != func.coalesce(settled.c.total, 0))
    )
    problems += [
        f"redeemer {r.partner_id}: redeemed entries total {r.total} but allocations total {r.allocated or 0}"
        for r in await _rows(conn, redeemer_drift)
    ]
    return problems + await _claims(conn)


async def _claims(conn: AsyncConnection) -> list[str]:
    lines = (
        select(
            reward_settlement.c.claim_id,
            func.sum(reward_settlement.c.amount).label("amount"),
            func.sum(reward_settlement.c.points).label("points"),
        )
        .group_by(reward_settlement.c.claim_id)
        .subquery()
    )
    owed = case((reward_claim.c.status == "REDEEMED", reward_claim.c.redeemed_value), else_=0)
    points = case((reward_claim.c.status == "REDEEMED", reward_claim.c.redeemed_points), else_=0)
    wrong = (
        select(reward_claim.c.public_id, reward_claim.c.status, owed.label("owed"), lines.c.amount, lines.c.points,
               points.label("captured"))
        .outerjoin(lines, lines.c.claim_id == reward_claim.c.id)
        .where(
            reward_claim.c.status.in_(("REDEEMED", "REVERSED")),
            (func.coalesce(lines.c.amount, -1) != owed) | (func.coalesce(lines.c.points, -1) != points),
        )
    )  # fmt: skip
    return [
        f"claim {r.public_id} ({r.status}): settlement lines sum to {r.amount} fen for {r.points} points, "
        f"not {r.owed} fen for {r.captured}"
        for r in await _rows(conn, wrong)
    ]
