"""The one module that moves points. Every command is one short database transaction, with no network call in it.

How a command runs:
1. Resolve the member through the caller's own link and consent (members service).
2. Claim the idempotency key by inserting the transaction row (`ON CONFLICT DO NOTHING`). Losing the claim means
   the key was used: the caller's transaction is rolled back and the stored result is replayed (same request
   hash) or refused with IDEMPOTENCY_CONFLICT (different hash).
3. Post the movements in a fixed account order (member accounts before partner and system accounts, so two
   commands never wait on each other's rows in opposite orders). A debit that must respect a floor (a member
   spending, a prepaid partner issuing) is one conditional `UPDATE … WHERE balance >= :amount RETURNING`: safe
   under READ COMMITTED, because PostgreSQL re-checks the condition on the newest row version.
4. Move the lots: spending consumes available lots earliest-expiring first. Only commands holding the member's
   available-account row lock take points out of lots, so FIFO allocation never races.
5. Write the entries (they sum to zero), the allocations and the outbox event.

On PostgreSQL a command that hits a deadlock or serialization failure is retried with the same key (`run`).
On SQLite every write transaction begins IMMEDIATE, so there is one writer at a time.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any, ClassVar, TypeVar

from sqlalchemy import bindparam, exists, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db import Database, UtcDateTime
from hub.errors import DomainError
from hub.events import outbox
from hub.idempotency import ClaimLost, check_key, fingerprint, pause, replayed, retryable
from hub.ids import new_id
from hub.members import service as members
from hub.observability import metrics
from hub.partners.models import partner_terms
from hub.points.models import (
    MEMBER_AVAILABLE,
    MEMBER_HELD,
    MEMBER_PENDING,
    PARTNER_ISSUING,
    PARTNER_PREPAID,
    PARTNER_REDEEMED,
    SYSTEM_EXPIRED,
    SYSTEM_FUNDING,
    TRACKED_KINDS,
    UNIT,
    ledger_account,
    ledger_entry,
    ledger_txn,
    lot_allocation,
    point_hold,
    point_lot,
)
from hub.points.policy import PointsPolicy
from hub.rewards.models import reward_claim

T = TypeVar("T")
MAX_POINTS = 1_000_000_000  # one movement; balances themselves are 64-bit


class LedgerError(DomainError):
    pass


# -- accounts --------------------------------------------------------------------------------------------------------
_RANK = {
    MEMBER_AVAILABLE: 0,
    MEMBER_PENDING: 1,
    MEMBER_HELD: 2,
    PARTNER_PREPAID: 3,
    PARTNER_ISSUING: 4,
    PARTNER_REDEEMED: 5,
    SYSTEM_EXPIRED: 6,
    SYSTEM_FUNDING: 7,
}


@dataclass(frozen=True)
class Account:
    kind: str
    member_id: int | None = None
    partner_id: int | None = None

    @property
    def code(self) -> str:
        owner = f"m:{self.member_id}" if self.member_id else f"p:{self.partner_id}" if self.partner_id else "sys"
        return f"{owner}:{self.kind}:{UNIT}"


def member_account(kind: str, member_id: int) -> Account:
    return Account(kind, member_id=member_id)


def partner_account(kind: str, partner_id: int) -> Account:
    return Account(kind, partner_id=partner_id)


SYSTEM_EXPIRED_ACCOUNT = Account(SYSTEM_EXPIRED)
SYSTEM_FUNDING_ACCOUNT = Account(SYSTEM_FUNDING)


@dataclass(frozen=True)
class Movement:
    account: Account
    amount: int
    floor: int | None = None  # a debit that may not take the balance below this
    floor_error: str = "INSUFFICIENT_POINTS"


_GUARDED_DEBIT = (
    update(ledger_account)
    .where(
        ledger_account.c.code == bindparam("b_code"),
        ledger_account.c.balance + bindparam("b_amount") >= bindparam("b_floor"),
    )
    .values(balance=ledger_account.c.balance + bindparam("b_amount"), version=ledger_account.c.version + 1)
    .returning(ledger_account.c.balance)
)


def _upsert(dialect: str) -> Any:
    insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert_(ledger_account).values(
        code=bindparam("b_code"),
        kind=bindparam("b_kind"),
        unit=UNIT,
        member_id=bindparam("b_member"),
        partner_id=bindparam("b_partner"),
        balance=bindparam("b_amount"),
        version=1,
        created_at=bindparam("b_now", type_=UtcDateTime()),
    )
    return stmt.on_conflict_do_update(
        index_elements=[ledger_account.c.code],
        set_={"balance": ledger_account.c.balance + stmt.excluded.balance, "version": ledger_account.c.version + 1},
    )


_UPSERT = {"postgresql": _upsert("postgresql"), "sqlite": _upsert("sqlite")}


async def _post(conn: AsyncConnection, txn_id: int, movements: Sequence[Movement], now: datetime) -> None:
    """Apply movements to cached balances in lock order, then write their entries."""
    if sum(m.amount for m in movements) != 0:
        raise AssertionError(f"unbalanced transaction: {movements}")
    movements = [m for m in movements if m.amount]
    for move in sorted(movements, key=lambda m: (_RANK[m.account.kind], m.account.code)):
        code = move.account.code
        if move.account.kind not in TRACKED_KINDS:
            continue  # append-only account: its entry below is all there is to write
        if move.floor is not None and move.amount < 0:
            debited = await conn.scalar(
                _GUARDED_DEBIT, {"b_code": code, "b_amount": move.amount, "b_floor": move.floor}
            )
            if debited is None:
                current = await conn.scalar(select(ledger_account.c.balance).where(ledger_account.c.code == code))
                code_name = "NEGATIVE_BALANCE" if (current or 0) < 0 else move.floor_error
                raise LedgerError(code_name, _FLOOR_MESSAGES[code_name], "points")
        else:
            await conn.execute(
                _UPSERT[conn.dialect.name],
                {
                    "b_code": code,
                    "b_kind": move.account.kind,
                    "b_member": move.account.member_id,
                    "b_partner": move.account.partner_id,
                    "b_amount": move.amount,
                    "b_now": now,
                },
            )
    if movements:
        await conn.execute(
            insert(ledger_entry), [{"txn_id": txn_id, "account": m.account.code, "amount": m.amount} for m in movements]
        )


def _lock_statement(dialect: str) -> Any:
    insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert_(ledger_account).values(
        code=bindparam("b_code"),
        kind=MEMBER_AVAILABLE,
        unit=UNIT,
        member_id=bindparam("b_member"),
        balance=0,
        version=0,
        created_at=bindparam("b_now", type_=UtcDateTime()),
    )
    # A no-op update: it changes nothing but takes the row lock (and creates the account if it is new).
    return stmt.on_conflict_do_update(
        index_elements=[ledger_account.c.code], set_={"balance": ledger_account.c.balance}
    )


_LOCK = {"postgresql": _lock_statement("postgresql"), "sqlite": _lock_statement("sqlite")}


async def lock_member(conn: AsyncConnection, member_id: int, now: datetime) -> None:
    """Take the member's available-account row lock: every change to a member's lots happens under it."""
    code = member_account(MEMBER_AVAILABLE, member_id).code
    await conn.execute(_LOCK[conn.dialect.name], {"b_code": code, "b_member": member_id, "b_now": now})


_FLOOR_MESSAGES = {
    "INSUFFICIENT_POINTS": "the member does not have enough available points",
    "NEGATIVE_BALANCE": "the member's balance is negative: redemption is blocked until it is repaid",
    "PREPAID_BALANCE_EXHAUSTED": "your prepaid points balance is exhausted: top it up to keep awarding points",
}


# -- idempotency (hub/idempotency.py): a command's key, claimed by inserting its transaction row -------------------
@dataclass(frozen=True)
class Idempotency:
    partner_id: int
    key: str
    request_hash: str
    command: str = ""

    @classmethod
    def of(cls, partner_id: int, cmd: Any) -> Idempotency:
        return cls(partner_id, cmd.idempotency_key, fingerprint(cmd), cmd.COMMAND)


def _claim_statement(dialect: str) -> Any:
    insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert_(ledger_txn)
        .on_conflict_do_nothing(index_elements=[ledger_txn.c.partner_id, ledger_txn.c.idempotency_key])
        .returning(ledger_txn.c.id)
    )


_CLAIM = {"postgresql": _claim_statement("postgresql"), "sqlite": _claim_statement("sqlite")}


async def _open_txn(
    conn: AsyncConnection, *, key: str | None, request_hash: str | None, **values: Any
) -> tuple[int, Txn]:
    """Insert the transaction row; with an idempotency key, this is also the claim on the key.

    Returns its id and the transaction as the caller will see it, so no command has to read it back.
    """
    row = {"public_id": values.pop("public_id", None) or new_id("txn", 12), "idempotency_key": key,
           "request_hash": request_hash, **values}  # fmt: skip
    txn_id = await conn.scalar(_CLAIM[conn.dialect.name].values(**row))
    if txn_id is None:
        raise ClaimLost()
    defaults = {"reversed_points": 0, "reason": None, "reference": None, "pending_until": None}
    return int(txn_id), txn_of(SimpleNamespace(**{**defaults, **row}))


async def run(
    db: Database,
    idempotency: Idempotency,
    command: Callable[[AsyncConnection], Awaitable[T]],
    replay: Callable[[AsyncConnection, int], Awaitable[T]],
) -> T:
    """`_run`, counted by command and outcome (ok, or the refusal's code) for the operator's metrics."""
    try:
        found = await _run(db, idempotency, command, replay)
    except DomainError as refused:
        metrics.LEDGER_COMMANDS.labels(idempotency.command, refused.code).inc()
        raise
    metrics.LEDGER_COMMANDS.labels(idempotency.command, "ok").inc()
    return found


async def _run(
    db: Database,
    idempotency: Idempotency,
    command: Callable[[AsyncConnection], Awaitable[T]],
    replay: Callable[[AsyncConnection, int], Awaitable[T]],
) -> T:
    """Run one ledger command in its own transaction; replay stored results; retry PostgreSQL conflicts.

    The key decides before anything else: a request whose key was already used gets the stored result, read back
    by `replay` (same request), or IDEMPOTENCY_CONFLICT (different request), even when the new request would
    itself fail. The key is looked up only when the command could not claim it or failed, so the usual path
    costs nothing extra.
    """
    # `hub_redeem` is one statement, atomic by itself: run bare, it spares the BEGIN and COMMIT round trips.
    one_statement = db.backend == "postgresql" and idempotency.command == Redeem.COMMAND
    for attempt in range(8):
        try:
            async with db.single_statement() if one_statement else db.write() as conn:
                return await command(conn)
        except (ClaimLost, DomainError) as stopped:
            async with db.read() as conn:
                stored = (
                    await conn.execute(
                        select(ledger_txn.c.id, ledger_txn.c.request_hash).where(
                            ledger_txn.c.partner_id == idempotency.partner_id,
                            ledger_txn.c.idempotency_key == idempotency.key,
                        )
                    )
                ).one_or_none()
                if stored is None:
                    if isinstance(stopped, ClaimLost):
                        continue  # the claim's winner rolled back after all: try again
                    raise
                replayed(stored.request_hash, idempotency.request_hash)
                return await replay(conn, stored.id)
        except DBAPIError as exc:
            if not retryable(exc) or attempt == 7:
                raise
            await pause(attempt)
    raise AssertionError("unreachable")


# -- members ---------------------------------------------------------------------------------------------------------
async def _member(conn: AsyncConnection, partner_id: int, pairwise_id: str, permission: str, now: datetime) -> int:
    return (await members.consented_member(conn, partner_id, pairwise_id, permission, now)).member_id


def _check_points(points: int, field: str = "points") -> None:
    if not 0 < points <= MAX_POINTS:
        raise LedgerError("INVALID_AMOUNT", f"points must be between 1 and {MAX_POINTS}", field)


def _check_notes(cmd: Any) -> None:
    """A command's reference and reason fit their columns (checked here, never first by the database)."""
    for name, field in (("reference", "reference"), ("reason", "reason")):
        value = getattr(cmd, name, None)
        if value is not None and len(value) > 200:
            raise LedgerError("INVALID_INPUT", f"{field} must be at most 200 characters", field)


# -- lots ------------------------------------------------------------------------------------------------------------
_SPENDABLE_LOTS = (
    select(point_lot.c.id, point_lot.c.remaining, point_lot.c.issuer_id)
    .where(
        point_lot.c.member_id == bindparam("member_id"),
        point_lot.c.status == "available",
        point_lot.c.remaining > 0,
    )
    # Earliest-expiring first; lots that never expire last; then oldest first.
    .order_by(point_lot.c.expires_at.is_(None), point_lot.c.expires_at, point_lot.c.id)
)
_TAKE_FROM_LOT = (
    update(point_lot)
    .where(point_lot.c.id == bindparam("b_lot"))
    .values(remaining=point_lot.c.remaining - bindparam("b_amount"))
)


async def _consume(
    conn: AsyncConnection, *, txn_id: int, member_id: int, points: int, kind: str, partner_id: int, now: datetime
) -> None:
    """Take `points` out of the member's available lots, earliest-expiring first. Caller holds the account lock."""
    lots = (await conn.execute(_SPENDABLE_LOTS, {"member_id": member_id})).all()
    taken, left = [], points
    for lot in lots:
        if left == 0:
            break
        amount = min(left, lot.remaining)
        taken.append((lot.id, amount))
        left -= amount
    if left:
        raise AssertionError(f"lots of member {member_id} hold less than its available balance")
    await _allocate(conn, txn_id, taken, kind, partner_id, now)


async def _spend(
    conn: AsyncConnection,
    txn_id: int,
    member_id: int,
    points: int,
    destination: Account,
    kind: str,
    partner_id: int,
    now: datetime,
) -> None:
    """Move points from the member's available balance (never below zero) and its lots into `destination`."""
    await _post(
        conn,
        txn_id,
        [Movement(member_account(MEMBER_AVAILABLE, member_id), -points, floor=0), Movement(destination, points)],
        now,
    )
    await _consume(conn, txn_id=txn_id, member_id=member_id, points=points, kind=kind, partner_id=partner_id, now=now)


async def _allocate(
    conn: AsyncConnection, txn_id: int, moves: list[tuple[int, int]], kind: str, partner_id: int | None, now: datetime
) -> None:
    """Record allocations and apply them to lot remainders (positive: taken from the lot; negative: given back)."""
    if not moves:
        return
    await conn.execute(_TAKE_FROM_LOT, [{"b_lot": lot_id, "b_amount": amount} for lot_id, amount in moves])
    await conn.execute(
        insert(lot_allocation),
        [
            {
                "txn_id": txn_id,
                "lot_id": lot_id,
                "kind": kind,
                "amount": amount,
                "partner_id": partner_id,
                "created_at": now,
            }
            for lot_id, amount in moves
        ],
    )


async def _repay_debt(conn: AsyncConnection, txn_id: int, member_id: int, lot_ids: list[int], now: datetime) -> None:
    """Newly available points first repay what the member owes from reversals of points already spent.

    The debt belongs to the partner that reversed; the repaying lot's issuer is treated as if that partner had
    redeemed those points, so settlement stays exact.
    """
    debts = (
        await conn.execute(
            select(point_lot.c.id, point_lot.c.remaining, point_lot.c.issuer_id)
            .where(point_lot.c.member_id == member_id, point_lot.c.status == "debt", point_lot.c.remaining < 0)
            .order_by(point_lot.c.id)
        )
    ).all()
    if not debts:
        return
    fresh = (
        await conn.execute(
            select(point_lot.c.id, point_lot.c.remaining)
            .where(point_lot.c.id.in_(lot_ids), point_lot.c.remaining > 0)
            .order_by(point_lot.c.id)
        )
    ).all()
    available = {lot.id: lot.remaining for lot in fresh}
    for debt in debts:
        owed = -debt.remaining
        for lot_id in list(available):
            if owed == 0:
                break
            amount = min(owed, available[lot_id])
            await _allocate(conn, txn_id, [(lot_id, amount)], "repay", debt.issuer_id, now)
            await _allocate(conn, txn_id, [(debt.id, -amount)], "repay", None, now)
            available[lot_id] -= amount
            owed -= amount
            if available[lot_id] == 0:
                del available[lot_id]


# -- results ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Txn:
    public_id: str
    kind: str
    status: str
    points: int
    reversed_points: int
    reference: str | None
    reason: str | None
    pending_until: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class Hold:
    public_id: str
    status: str
    points: int
    captured_points: int
    expires_at: datetime
    reference: str | None


_TXN_COLUMNS = (
    ledger_txn.c.public_id,
    ledger_txn.c.kind,
    ledger_txn.c.status,
    ledger_txn.c.points,
    ledger_txn.c.reversed_points,
    ledger_txn.c.reference,
    ledger_txn.c.reason,
    ledger_txn.c.pending_until,
    ledger_txn.c.created_at,
)


def txn_of(row: Any) -> Txn:
    return Txn(
        public_id=row.public_id,
        kind=row.kind.upper(),
        status=row.status,
        points=row.points,
        reversed_points=row.reversed_points,
        reference=row.reference,
        reason=row.reason,
        pending_until=row.pending_until,
        created_at=row.created_at,
    )


def hold_of(row: Any) -> Hold:
    return Hold(
        public_id=row.public_id,
        status=row.status,
        points=row.points,
        captured_points=row.captured_points,
        expires_at=row.expires_at,
        reference=row.reference,
    )


async def load_txn(conn: AsyncConnection, txn_id: int) -> Txn:
    return txn_of((await conn.execute(select(*_TXN_COLUMNS).where(ledger_txn.c.id == txn_id))).one())


async def load_hold_of_txn(conn: AsyncConnection, txn_id: int) -> Hold:
    row = (
        await conn.execute(
            select(point_hold)
            .join(ledger_txn, ledger_txn.c.hold_id == point_hold.c.id)
            .where(ledger_txn.c.id == txn_id)
        )
    ).one()
    return hold_of(row)


# -- commands --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Earn:
    COMMAND: ClassVar[str] = "earn"
    member_id: str
    points: int
    reason: str | None
    reference: str | None
    pending_until: datetime | None
    idempotency_key: str


async def _billing(conn: AsyncConnection, partner_id: int) -> str:
    billing = await conn.scalar(select(partner_terms.c.billing).where(partner_terms.c.partner_id == partner_id))
    return billing or "postpaid"


async def earn(conn: AsyncConnection, partner_id: int, cmd: Earn, now: datetime, policy: PointsPolicy) -> Txn:
    """Award points funded by the caller (the issuer). Pending until `pending_until` if it is in the future."""
    _check_points(cmd.points)
    check_key(cmd.idempotency_key)
    _check_notes(cmd)
    member_id = await _member(conn, partner_id, cmd.member_id, "points:earn", now)
    return await earn_for_member(conn, partner_id, member_id, cmd, now, policy)


@dataclass(frozen=True)
class EarnPlan:
    """The rows one earn writes, planned once (`plan_earn`): `earn_for_member` writes them with statements, the
    import (purchases/bulk.py) with COPY."""

    txn: dict[str, Any]  # ledger_txn, without its id
    movements: list[Movement]
    lot: dict[str, Any]  # point_lot, without earn_txn_id
    event: outbox.Event
    pending: bool


def plan_earn(
    partner_id: int, member_id: int, cmd: Earn, now: datetime, policy: PointsPolicy, *, prepaid: bool, public_id: str
) -> EarnPlan:
    """Award `cmd.points` from the issuer (its prepaid balance, never below zero, or its issuing account) to the
    member: available at once, or pending until `pending_until` if that is still to come, in a lot of their own."""
    pending = cmd.pending_until is not None and cmd.pending_until > now
    available_at = cmd.pending_until if pending and cmd.pending_until else now
    source = (
        Movement(partner_account(PARTNER_PREPAID, partner_id), -cmd.points, floor=0,
                 floor_error="PREPAID_BALANCE_EXHAUSTED")
        if prepaid
        else Movement(partner_account(PARTNER_ISSUING, partner_id), -cmd.points)
    )  # fmt: skip
    return EarnPlan(
        txn={
            "public_id": public_id,
            "idempotency_key": cmd.idempotency_key,
            "request_hash": fingerprint(cmd),
            "kind": "earn",
            "status": "PENDING" if pending else "POSTED",
            "partner_id": partner_id,
            "member_id": member_id,
            "points": cmd.points,
            "reference": cmd.reference,
            "reason": cmd.reason,
            "pending_until": cmd.pending_until if pending else None,
            "created_at": now,
        },
        movements=[
            Movement(member_account(MEMBER_PENDING if pending else MEMBER_AVAILABLE, member_id), cmd.points),
            source,
        ],
        lot={
            "member_id": member_id,
            "issuer_id": partner_id,
            "status": "pending" if pending else "available",
            "amount": cmd.points,
            "remaining": cmd.points,
            "available_at": available_at,
            "expires_at": policy.expiry.expires_at(available_at, policy.zone),
            "created_at": now,
        },
        event=outbox.Event(
            "points.pending" if pending else "points.earned",
            member_id,
            partner_id,
            {"transactionId": public_id, "points": cmd.points},
        ),
        pending=pending,
    )


async def earn_for_member(
    conn: AsyncConnection, partner_id: int, member_id: int, cmd: Earn, now: datetime, policy: PointsPolicy
) -> Txn:
    """`earn` for a member the caller already resolved under its own consent rule (a purchase, an activity)."""
    _check_points(cmd.points)
    prepaid = await _billing(conn, partner_id) == "prepaid"
    plan = plan_earn(partner_id, member_id, cmd, now, policy, prepaid=prepaid, public_id=new_id("txn", 12))
    row = dict(plan.txn)
    txn_id, txn = await _open_txn(conn, key=row.pop("idempotency_key"), request_hash=row.pop("request_hash"), **row)
    await _post(conn, txn_id, plan.movements, now)
    lot_id = await conn.scalar(insert(point_lot).values(earn_txn_id=txn_id, **plan.lot).returning(point_lot.c.id))
    if not plan.pending:
        assert lot_id is not None
        await _repay_debt(conn, txn_id, member_id, [lot_id], now)
    await outbox.record_event(conn, plan.event, now=now)
    return txn


@dataclass(frozen=True)
class Redeem:
    COMMAND: ClassVar[str] = "redeem"
    member_id: str
    points: int
    reference: str | None
    idempotency_key: str


@dataclass(frozen=True)
class RedeemForBasket:
    """`redeemPoints` naming the quoted basket the points pay for: `check` holds them to the quote's cap."""

    COMMAND: ClassVar[str] = "redeem_basket"
    member_id: str
    points: int
    reference: str | None
    quote_id: str
    idempotency_key: str


async def redeem(
    conn: AsyncConnection,
    partner_id: int,
    cmd: Redeem | RedeemForBasket,
    now: datetime,
    check: Callable[[AsyncConnection, int], Awaitable[None]] | None = None,
) -> Txn:
    """Spend points at the caller in one step (the caller is the redeemer). `check(conn, member_id)` may refuse
    first (a basket's quote)."""
    _check_points(cmd.points)
    check_key(cmd.idempotency_key)
    _check_notes(cmd)
    if conn.dialect.name == "postgresql" and isinstance(cmd, Redeem):
        return await _redeem_in_postgresql(conn, partner_id, cmd, now)
    return await _redeem_in_python(conn, partner_id, cmd, now, check)


async def _redeem_in_python(
    conn: AsyncConnection,
    partner_id: int,
    cmd: Redeem | RedeemForBasket,
    now: datetime,
    check: Callable[[AsyncConnection, int], Awaitable[None]] | None = None,
) -> Txn:
    member_id = await _member(conn, partner_id, cmd.member_id, "points:redeem", now)
    if check is not None:
        await check(conn, member_id)
    txn_id, txn = await _open_txn(
        conn,
        key=cmd.idempotency_key,
        request_hash=fingerprint(cmd),
        kind="redeem",
        status="POSTED",
        partner_id=partner_id,
        member_id=member_id,
        points=cmd.points,
        reference=cmd.reference,
        created_at=now,
    )
    await _spend(
        conn, txn_id, member_id, cmd.points, partner_account(PARTNER_REDEEMED, partner_id), "redeem", partner_id, now
    )
    await outbox.record(
        conn,
        "points.redeemed",
        now=now,
        member_id=member_id,
        partner_id=partner_id,
        payload={"transactionId": txn.public_id, "points": cmd.points},
    )
    return txn


_REDEEM_FUNCTION = text(
    "SELECT outcome, txn_id FROM hub_redeem(:partner, :pairwise, :points, :reference, :key, :hash, :now, :public_id)"
).bindparams(bindparam("now", type_=UtcDateTime()))


async def _redeem_in_postgresql(conn: AsyncConnection, partner_id: int, cmd: Redeem, now: datetime) -> Txn:
    """The same steps as the Python path, in one round trip: `hub_redeem` (migrations 0003 and 0010).

    The function returns the outcomes that leave nothing written, and raises 'hub:<CODE>' for those that must
    roll back its own writes; both become the same LedgerError the Python path raises.
    """
    public_id = new_id("txn", 12)
    params = {
        "partner": partner_id,
        "pairwise": cmd.member_id,
        "points": cmd.points,
        "reference": cmd.reference,
        "key": cmd.idempotency_key,
        "hash": fingerprint(cmd),
        "now": now,
        "public_id": public_id,
    }
    try:
        row = (await conn.execute(_REDEEM_FUNCTION, params)).one()
    except DBAPIError as exc:
        message = str(getattr(exc.orig, "args", [""])[0] if exc.orig is not None else "")
        found = _RAISED.search(message) or _RAISED.search(str(exc))
        if found is None or getattr(exc.orig, "sqlstate", None) != "P0001":
            raise
        code = found.group(1)
        if code not in _FLOOR_MESSAGES:
            raise AssertionError(f"hub_redeem: {code}") from exc
        raise LedgerError(code, _FLOOR_MESSAGES[code], "points") from None
    if row.outcome == "OK":
        return Txn(public_id, "REDEEM", "POSTED", cmd.points, 0, cmd.reference, None, None, now)
    if row.outcome == "REPLAY":
        raise ClaimLost()
    if row.outcome == "MEMBER_NOT_FOUND":
        raise LedgerError("MEMBER_NOT_FOUND", "no such member", "memberId")
    raise LedgerError("CONSENT_REQUIRED", "the member has not consented to 'points:redeem' for you", "memberId")


_RAISED = re.compile(r"hub:([A-Z_]+)")


@dataclass(frozen=True)
class PlaceHold:
    COMMAND: ClassVar[str] = "hold"
    member_id: str
    points: int
    reference: str | None
    expires_in_seconds: int | None
    idempotency_key: str


async def hold(conn: AsyncConnection, partner_id: int, cmd: PlaceHold, now: datetime, policy: PointsPolicy) -> Hold:
    """Reserve points for a till (authorise). Returns the transaction id; its hold is the result."""
    _check_points(cmd.points)
    check_key(cmd.idempotency_key)
    _check_notes(cmd)
    ttl = policy.hold_ttl_default if cmd.expires_in_seconds is None else cmd.expires_in_seconds
    if not 1 <= ttl <= policy.hold_ttl_max:
        raise LedgerError(
            "INVALID_INPUT", f"expiresInSeconds must be between 1 and {policy.hold_ttl_max}", "expiresInSeconds"
        )
    member_id = await _member(conn, partner_id, cmd.member_id, "points:redeem", now)
    placed, _ = await place_hold(
        conn,
        partner_id,
        member_id,
        cmd.points,
        cmd.reference,
        now + timedelta(seconds=ttl),
        now,
        key=cmd.idempotency_key,
        request_hash=fingerprint(cmd),
    )
    return placed


async def place_hold(
    conn: AsyncConnection,
    partner_id: int,
    member_id: int,
    points: int,
    reference: str | None,
    expires_at: datetime,
    now: datetime,
    *,
    key: str | None = None,
    request_hash: str | None = None,
) -> tuple[Hold, int]:
    """Move points from the member's available balance and lots into a hold for `partner_id`: `holdPoints`, and a
    reward claim's points (which carries its own idempotency key, so passes none here). Returns it and its row id."""
    placed = Hold(new_id("hold", 12), "ACTIVE", points, 0, expires_at, reference)
    hold_id = await conn.scalar(
        insert(point_hold)
        .values(
            public_id=placed.public_id,
            member_id=member_id,
            partner_id=partner_id,
            status="ACTIVE",
            points=points,
            captured_points=0,
            reference=reference,
            expires_at=expires_at,
            created_at=now,
        )
        .returning(point_hold.c.id)
    )
    txn_id, _txn = await _open_txn(
        conn,
        key=key,
        request_hash=request_hash,
        kind="hold",
        status="POSTED",
        partner_id=partner_id,
        member_id=member_id,
        points=points,
        reference=reference,
        hold_id=hold_id,
        created_at=now,
    )
    await _spend(conn, txn_id, member_id, points, member_account(MEMBER_HELD, member_id), "hold", partner_id, now)
    await outbox.record(
        conn, "points.held", now=now, member_id=member_id, partner_id=partner_id, payload={"points": points}
    )
    assert hold_id is not None
    return placed, int(hold_id)


@dataclass(frozen=True)
class Capture:
    COMMAND: ClassVar[str] = "capture"
    hold_id: str
    points: int
    idempotency_key: str


@dataclass(frozen=True)
class Void:
    COMMAND: ClassVar[str] = "void"
    hold_id: str
    idempotency_key: str


async def _hold_for(conn: AsyncConnection, partner_id: int, public_id: str) -> Any:
    """One of the partner's own holds. A reward claim's hold is the claim's to resolve (redeem, void, expire):
    captured or voided by itself it would leave the claim, its stock and its settlement behind."""
    claimed = exists().where(reward_claim.c.hold_id == point_hold.c.id)
    row = (
        await conn.execute(
            select(point_hold).where(
                point_hold.c.public_id == public_id, point_hold.c.partner_id == partner_id, ~claimed
            )
        )
    ).one_or_none()
    if row is None:
        raise LedgerError("HOLD_NOT_FOUND", "no such hold", "holdId")
    return row


async def capture(conn: AsyncConnection, partner_id: int, cmd: Capture, now: datetime) -> Txn:
    """Capture all or part of a hold; the rest goes back to the member."""
    _check_points(cmd.points)
    check_key(cmd.idempotency_key)
    _check_notes(cmd)
    found = await _hold_for(conn, partner_id, cmd.hold_id)
    if cmd.points > found.points:
        raise LedgerError("CAPTURE_EXCEEDS_HOLD", f"the hold is for {found.points} points", "points")
    txn_id, txn = await _open_txn(
        conn,
        key=cmd.idempotency_key,
        request_hash=fingerprint(cmd),
        kind="capture",
        status="POSTED",
        partner_id=partner_id,
        member_id=found.member_id,
        points=cmd.points,
        reference=found.reference,
        hold_id=found.id,
        created_at=now,
    )
    await _resolve_hold(conn, found, txn_id, captured=cmd.points, status="CAPTURED", now=now)
    await outbox.record(
        conn,
        "points.captured",
        now=now,
        member_id=found.member_id,
        partner_id=partner_id,
        payload={"holdId": found.public_id, "points": cmd.points},
    )
    return txn


async def void(conn: AsyncConnection, partner_id: int, cmd: Void, now: datetime) -> Hold:
    check_key(cmd.idempotency_key)
    found = await _hold_for(conn, partner_id, cmd.hold_id)
    txn_id, _txn = await _open_txn(
        conn,
        key=cmd.idempotency_key,
        request_hash=fingerprint(cmd),
        kind="void",
        status="POSTED",
        partner_id=partner_id,
        member_id=found.member_id,
        points=0,
        reference=found.reference,
        hold_id=found.id,
        created_at=now,
    )
    await _resolve_hold(conn, found, txn_id, captured=0, status="VOIDED", now=now)
    await outbox.record(
        conn,
        "hold.voided",
        now=now,
        member_id=found.member_id,
        partner_id=partner_id,
        payload={"holdId": found.public_id},
    )
    return replace(hold_of(found), status="VOIDED")


async def _resolve_hold(
    conn: AsyncConnection,
    found: Any,
    txn_id: int,
    *,
    captured: int,
    status: str,
    now: datetime,
    redeemer_id: int | None = None,
    capture_kind: str = "capture",
) -> list[tuple[int, int]]:
    """Resolve a hold at most once: capture `captured` points for the redeemer (the hold's partner unless named),
    give the rest back to the lots it came from. Returns the (lot, points) captured."""
    member_id = found.member_id
    redeemer = found.partner_id if redeemer_id is None else redeemer_id
    released = found.points - captured
    if found.status == "ACTIVE" and found.expires_at <= now and status != "EXPIRED":
        raise LedgerError("HOLD_NOT_ACTIVE", "the hold has expired", "holdId")
    await lock_member(conn, member_id, now)
    await _post(
        conn,
        txn_id,
        [
            Movement(member_account(MEMBER_AVAILABLE, member_id), released),
            Movement(member_account(MEMBER_HELD, member_id), -found.points),
            Movement(partner_account(PARTNER_REDEEMED, redeemer), captured),
        ],
        now,
    )
    resolved = await conn.execute(
        update(point_hold)
        .where(point_hold.c.id == found.id, point_hold.c.status == "ACTIVE")
        .values(status=status, captured_points=captured, resolved_at=now)
    )
    if resolved.rowcount != 1:
        raise LedgerError("HOLD_NOT_ACTIVE", "the hold was already captured, voided or expired", "holdId")
    held = (
        await conn.execute(
            select(lot_allocation.c.lot_id, lot_allocation.c.amount)
            .join(ledger_txn, ledger_txn.c.id == lot_allocation.c.txn_id)
            .where(ledger_txn.c.hold_id == found.id, ledger_txn.c.kind == "hold", lot_allocation.c.kind == "hold")
            .order_by(lot_allocation.c.id)
        )
    ).all()
    # Everything held is released from the hold; the captured part is then taken again, earliest lots first,
    # so the points given back to the member are the later-expiring ones.
    await _allocate(conn, txn_id, [(a.lot_id, -a.amount) for a in held], "release", found.partner_id, now)
    take, left = [], captured
    for a in held:
        if left == 0:
            break
        amount = min(left, a.amount)
        take.append((a.lot_id, amount))
        left -= amount
    await _allocate(conn, txn_id, take, capture_kind, redeemer, now)
    return take


@dataclass(frozen=True)
class Reverse:
    COMMAND: ClassVar[str] = "reverse"
    transaction_id: str
    points: int
    reason: str | None
    idempotency_key: str


async def reverse(conn: AsyncConnection, partner_id: int, cmd: Reverse, now: datetime, policy: PointsPolicy) -> Txn:
    """Reverse (part of) one of the caller's own earns, redemptions or captures."""
    _check_points(cmd.points)
    check_key(cmd.idempotency_key)
    _check_notes(cmd)
    original = (
        await conn.execute(
            select(ledger_txn).where(
                ledger_txn.c.public_id == cmd.transaction_id, ledger_txn.c.partner_id == partner_id
            )
        )
    ).one_or_none()
    if original is None or original.kind not in ("earn", "redeem", "capture"):
        raise LedgerError("TRANSACTION_NOT_FOUND", "no reversible transaction of yours with this id", "transactionId")
    txn_id, txn = await _open_txn(
        conn,
        key=cmd.idempotency_key,
        request_hash=fingerprint(cmd),
        kind="reverse",
        status="POSTED",
        partner_id=partner_id,
        member_id=original.member_id,
        points=cmd.points,
        reason=cmd.reason,
        reverses_id=original.id,
        created_at=now,
    )
    counted = await conn.execute(
        update(ledger_txn)
        .where(ledger_txn.c.id == original.id, ledger_txn.c.reversed_points + cmd.points <= ledger_txn.c.points)
        .values(reversed_points=ledger_txn.c.reversed_points + cmd.points)
    )
    if counted.rowcount != 1:
        left = original.points - original.reversed_points
        raise LedgerError("REVERSAL_EXCEEDS_ORIGINAL", f"at most {left} points of this transaction remain", "points")
    if original.kind == "earn":
        await _reverse_earn(conn, original, txn_id, cmd.points, now, policy)
    else:
        await _refund_spend(conn, original, txn_id, cmd.points, now)
    await outbox.record(
        conn,
        "points.reversed",
        now=now,
        member_id=original.member_id,
        partner_id=partner_id,
        payload={"transactionId": original.public_id, "points": cmd.points},
    )
    return txn


async def _reverse_earn(
    conn: AsyncConnection, original: Any, txn_id: int, points: int, now: datetime, policy: PointsPolicy
) -> None:
    member_id, issuer = original.member_id, original.partner_id
    await lock_member(conn, member_id, now)
    source = await _earn_source(conn, original.id, issuer)
    lot = (
        await conn.execute(
            select(point_lot).where(point_lot.c.earn_txn_id == original.id, point_lot.c.status != "debt")
        )
    ).one()
    if lot.status == "pending":
        await _post(
            conn,
            txn_id,
            [
                Movement(member_account(MEMBER_PENDING, member_id), -points),
                Movement(source, points),
            ],
            now,
        )
        await conn.execute(
            update(point_lot)
            .where(point_lot.c.id == lot.id)
            .values(remaining=point_lot.c.remaining - points, reversed=point_lot.c.reversed + points)
        )
        return
    from_remaining = min(points, lot.remaining)
    from_expired = min(points - from_remaining, lot.expired)
    shortfall = points - from_remaining - from_expired
    if shortfall and not policy.allow_negative:
        raise LedgerError(
            "INSUFFICIENT_POINTS", "the points were already spent and negative balances are off", "points"
        )
    movements = [
        Movement(member_account(MEMBER_AVAILABLE, member_id), -(from_remaining + shortfall)),
        Movement(source, points),
    ]
    if from_expired:  # points that had expired go back from the expired account: the member loses nothing twice
        movements.append(Movement(SYSTEM_EXPIRED_ACCOUNT, -from_expired))
    await _post(conn, txn_id, movements, now)
    await conn.execute(
        update(point_lot)
        .where(point_lot.c.id == lot.id)
        .values(
            remaining=point_lot.c.remaining - from_remaining,
            expired=point_lot.c.expired - from_expired,
            reversed=point_lot.c.reversed + from_remaining + from_expired,
        )
    )
    if shortfall:
        await _add_debt(conn, member_id, issuer, original.id, shortfall, now)


async def _earn_source(conn: AsyncConnection, earn_txn_id: int, issuer: int) -> Account:
    """The partner account an earn was funded from (issuing, or prepaid): a reversal goes back to it."""
    debited = await conn.scalar(
        select(ledger_entry.c.account).where(ledger_entry.c.txn_id == earn_txn_id, ledger_entry.c.amount < 0)
    )
    kind = PARTNER_PREPAID if debited == partner_account(PARTNER_PREPAID, issuer).code else PARTNER_ISSUING
    return partner_account(kind, issuer)


async def _add_debt(
    conn: AsyncConnection, member_id: int, issuer: int, earn_txn_id: int, points: int, now: datetime
) -> None:
    debt_id = await conn.scalar(
        select(point_lot.c.id).where(
            point_lot.c.member_id == member_id, point_lot.c.issuer_id == issuer, point_lot.c.status == "debt"
        )
    )
    if debt_id is None:
        await conn.execute(
            insert(point_lot).values(
                member_id=member_id,
                issuer_id=issuer,
                earn_txn_id=earn_txn_id,
                status="debt",
                amount=0,
                remaining=-points,
                reversed=points,
                available_at=now,
                expires_at=None,
                created_at=now,
            )
        )
    else:
        await conn.execute(
            update(point_lot)
            .where(point_lot.c.id == debt_id)
            .values(remaining=point_lot.c.remaining - points, reversed=point_lot.c.reversed + points)
        )


_SPENT = ("redeem", "capture", "refund")


async def _refund_spend(
    conn: AsyncConnection, original: Any, txn_id: int, points: int, now: datetime, kinds: tuple[str, ...] = _SPENT
) -> None:
    """Give spent points back to the member, into the lots they came from (latest-taken first), as allocations of
    the kind they were spent with (a reward's points stay out of the points settlement both ways)."""
    member_id, redeemer = original.member_id, original.partner_id
    await lock_member(conn, member_id, now)
    await _post(
        conn,
        txn_id,
        [
            Movement(member_account(MEMBER_AVAILABLE, member_id), points),
            Movement(partner_account(PARTNER_REDEEMED, redeemer), -points),
        ],
        now,
    )
    spent = (
        await conn.execute(
            select(lot_allocation.c.lot_id, lot_allocation.c.amount)
            .join(ledger_txn, ledger_txn.c.id == lot_allocation.c.txn_id)
            .where(
                (ledger_txn.c.id == original.id) | (ledger_txn.c.reverses_id == original.id),
                lot_allocation.c.kind.in_(kinds),
            )
            .order_by(lot_allocation.c.id)
        )
    ).all()
    net: dict[int, int] = {}
    for a in spent:
        net[a.lot_id] = net.get(a.lot_id, 0) + a.amount
    back, left = [], points
    for lot_id in reversed(list(net)):
        if left == 0:
            break
        amount = min(left, net[lot_id])
        if amount > 0:
            back.append((lot_id, -amount))
            left -= amount
    await _allocate(conn, txn_id, back, "refund" if kinds == _SPENT else kinds[0], redeemer, now)


# -- reward claims (hub/rewards): holds resolved by the claim's own commands, captured as "reward" allocations ------
async def resolve_claim_hold(
    conn: AsyncConnection, hold_id: int, *, captured: int, redeemer_id: int | None, status: str, now: datetime
) -> tuple[int, list[tuple[int, int]]]:
    """Capture `captured` points of a claim's hold for the redeemer (status CAPTURED), or release it all (VOIDED,
    EXPIRED). The claim has already checked its own state and expiry. Returns the transaction and what each lot gave."""
    found = (await conn.execute(select(point_hold).where(point_hold.c.id == hold_id))).one()
    kind = {"CAPTURED": "capture", "VOIDED": "void", "EXPIRED": "hold_expire"}[status]
    partner_id = redeemer_id if redeemer_id is not None else found.partner_id
    txn_id = await _open_system_txn(
        conn, kind, found.member_id, captured, now, partner_id=partner_id, hold_id=hold_id, reference=found.reference
    )
    taken = await _resolve_hold(
        conn, found, txn_id, captured=captured, status=status, now=now, redeemer_id=redeemer_id, capture_kind="reward"
    )
    return txn_id, taken


async def return_claim_points(conn: AsyncConnection, capture_txn_id: int, points: int, now: datetime) -> int:
    """Give a reversed claim's captured points back to the lots they came from. Returns the transaction."""
    original = (await conn.execute(select(ledger_txn).where(ledger_txn.c.id == capture_txn_id))).one()
    txn_id = await _open_system_txn(
        conn,
        "reverse",
        original.member_id,
        points,
        now,
        partner_id=original.partner_id,
        reverses_id=original.id,
        reference=original.reference,
    )
    counted = await conn.execute(
        update(ledger_txn)
        .where(ledger_txn.c.id == original.id, ledger_txn.c.reversed_points + points <= ledger_txn.c.points)
        .values(reversed_points=ledger_txn.c.reversed_points + points)
    )
    if counted.rowcount != 1:
        raise AssertionError(f"claim capture {original.id} has fewer than {points} points left to reverse")
    await _refund_spend(conn, original, txn_id, points, now, kinds=("reward",))
    return txn_id


async def fund(conn: AsyncConnection, partner_id: int, points: int, now: datetime) -> Txn:
    """Top up a prepaid partner's points (the operator records a payment received)."""
    _check_points(points)
    txn_id, txn = await _open_txn(
        conn,
        key=None,
        request_hash=None,
        kind="fund",
        status="POSTED",
        partner_id=partner_id,
        points=points,
        created_at=now,
    )
    await _post(
        conn,
        txn_id,
        [Movement(partner_account(PARTNER_PREPAID, partner_id), points), Movement(SYSTEM_FUNDING_ACCOUNT, -points)],
        now,
    )
    await outbox.record(conn, "partner.funded", now=now, partner_id=partner_id, payload={"points": points})
    return txn


async def open_partner_accounts(conn: AsyncConnection, partner_id: int, now: datetime) -> None:
    """Create a partner's ledger accounts (called when the partner is created)."""
    insert_ = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    rows = [
        {
            "code": partner_account(kind, partner_id).code,
            "kind": kind,
            "unit": UNIT,
            "partner_id": partner_id,
            "balance": 0,
            "version": 0,
            "created_at": now,
        }
        for kind in (PARTNER_ISSUING, PARTNER_PREPAID, PARTNER_REDEEMED)
    ]
    await conn.execute(insert_(ledger_account).on_conflict_do_nothing(index_elements=[ledger_account.c.code]), rows)


# -- the periodic jobs' writes (hub/points/jobs.py picks the members) ------------------------------------------------
async def try_lock_member(conn: AsyncConnection, member_id: int, now: datetime) -> bool:
    """Lock the member's available account unless another transaction holds it (then: skip this member)."""
    code = member_account(MEMBER_AVAILABLE, member_id).code
    if conn.dialect.name != "postgresql":
        await lock_member(conn, member_id, now)  # SQLite: BEGIN IMMEDIATE already made us the only writer
        return True
    got = await conn.scalar(
        select(ledger_account.c.code).where(ledger_account.c.code == code).with_for_update(skip_locked=True)
    )
    if got is not None:
        return True
    exists = await conn.scalar(select(func.count()).select_from(ledger_account).where(ledger_account.c.code == code))
    if exists:
        return False
    await lock_member(conn, member_id, now)
    return True


async def _open_system_txn(
    conn: AsyncConnection, kind: str, member_id: int, points: int, now: datetime, **extra: object
) -> int:
    txn_id, _ = await _open_txn(
        conn,
        key=None,
        request_hash=None,
        kind=kind,
        status="POSTED",
        partner_id=extra.pop("partner_id", None),
        member_id=member_id,
        points=points,
        created_at=now,
        **extra,
    )
    return txn_id


async def mature(conn: AsyncConnection, member_id: int, now: datetime) -> int:
    """Make the member's pending points that reached their date available (the job; caller holds the lock)."""
    lots = (
        await conn.execute(
            select(point_lot.c.id, point_lot.c.remaining, point_lot.c.earn_txn_id).where(
                point_lot.c.member_id == member_id, point_lot.c.status == "pending", point_lot.c.available_at <= now
            )
        )
    ).all()
    points = sum(lot.remaining for lot in lots)
    if not lots:
        return 0
    txn_id = await _open_system_txn(conn, "mature", member_id, points, now)
    await _post(
        conn,
        txn_id,
        [
            Movement(member_account(MEMBER_PENDING, member_id), -points),
            Movement(member_account(MEMBER_AVAILABLE, member_id), points),
        ],
        now,
    )
    lot_ids = [lot.id for lot in lots]
    await conn.execute(update(point_lot).where(point_lot.c.id.in_(lot_ids)).values(status="available"))
    await conn.execute(
        update(ledger_txn).where(ledger_txn.c.id.in_([lot.earn_txn_id for lot in lots])).values(status="POSTED")
    )
    await _repay_debt(conn, txn_id, member_id, lot_ids, now)
    await outbox.record(conn, "points.matured", now=now, member_id=member_id, payload={"points": points})
    return points


async def expire_lots(conn: AsyncConnection, member_id: int, now: datetime) -> int:
    """Expire what is left of the member's lots past their date (the job; caller holds the lock)."""
    lots = (
        await conn.execute(
            select(point_lot.c.id, point_lot.c.remaining).where(
                point_lot.c.member_id == member_id,
                point_lot.c.status == "available",
                point_lot.c.remaining > 0,
                point_lot.c.expires_at <= now,
            )
        )
    ).all()
    points = sum(lot.remaining for lot in lots)
    if not lots:
        return 0
    txn_id = await _open_system_txn(conn, "expire", member_id, points, now)
    await _post(
        conn,
        txn_id,
        [Movement(member_account(MEMBER_AVAILABLE, member_id), -points), Movement(SYSTEM_EXPIRED_ACCOUNT, points)],
        now,
    )
    await conn.execute(
        update(point_lot)
        .where(point_lot.c.id.in_([lot.id for lot in lots]))
        .values(expired=point_lot.c.expired + point_lot.c.remaining, remaining=0)
    )
    await outbox.record(conn, "points.expired", now=now, member_id=member_id, payload={"points": points})
    return points


async def expire_hold(conn: AsyncConnection, hold_id: int, now: datetime) -> int:
    found = (await conn.execute(select(point_hold).where(point_hold.c.id == hold_id))).one()
    if found.status != "ACTIVE":
        return 0
    txn_id = await _open_system_txn(
        conn,
        "hold_expire",
        found.member_id,
        0,
        now,
        partner_id=found.partner_id,
        hold_id=found.id,
        reference=found.reference,
    )
    await _resolve_hold(conn, found, txn_id, captured=0, status="EXPIRED", now=now)
    await outbox.record(
        conn,
        "hold.expired",
        now=now,
        member_id=found.member_id,
        partner_id=found.partner_id,
        payload={"holdId": found.public_id, "points": found.points},
    )
    return 1


async def merge_members(conn: AsyncConnection, source_id: int, target_id: int, now: datetime) -> int:
    """Move everything the source member holds to the target (two records found to be one person).

    One `merge` transaction moves each member balance (available, pending, held, a debt too) from the source's
    accounts to the target's; the lots and holds change owner with them, so every lot keeps its issuer, dates and
    allocations and settlement is untouched. The source's transactions follow (a partner's history of the member
    stays whole). Then the target's available lots repay any debt, as newly available points always do.
    Returns the points moved.
    """
    for member_id in sorted((source_id, target_id)):
        await lock_member(conn, member_id, now)
    kinds = (MEMBER_AVAILABLE, MEMBER_PENDING, MEMBER_HELD)
    rows = await conn.execute(
        select(ledger_account.c.kind, ledger_account.c.balance).where(
            ledger_account.c.code.in_([member_account(kind, source_id).code for kind in kinds])
        )
    )
    balances = {row.kind: int(row.balance) for row in rows if row.balance}
    moved = sum(balances.values())
    txn_id = await _open_system_txn(conn, "merge", target_id, max(moved, 0), now, reason="member records merged")
    movements: list[Movement] = []
    for kind, balance in balances.items():
        movements += [
            Movement(member_account(kind, source_id), -balance),
            Movement(member_account(kind, target_id), balance),
        ]
    await _post(conn, txn_id, movements, now)
    for table in (point_lot, point_hold, ledger_txn):
        await conn.execute(update(table).where(table.c.member_id == source_id).values(member_id=target_id))
    available = await conn.scalars(
        select(point_lot.c.id).where(point_lot.c.member_id == target_id, point_lot.c.status == "available")
    )
    await _repay_debt(conn, txn_id, target_id, list(available), now)
    return moved
