"""GraphQL for points: the ledger's mutations, balances and history on Member, transactions and settlement."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection

from hub import cursors
from hub.errors import DomainError
from hub.members import service as members
from hub.points import ledger, queries, settlement
from hub.schema.context import Info
from hub.schema.permissions import scoped
from hub.schema.scalars import BigInt

T = TypeVar("T")


@strawberry.enum
class PointsErrorCode(Enum):
    INVALID_INPUT = "INVALID_INPUT"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    INVALID_CURSOR = "INVALID_CURSOR"
    MEMBER_NOT_FOUND = "MEMBER_NOT_FOUND"
    CONSENT_REQUIRED = "CONSENT_REQUIRED"
    INSUFFICIENT_POINTS = "INSUFFICIENT_POINTS"
    NEGATIVE_BALANCE = "NEGATIVE_BALANCE"
    HOLD_NOT_FOUND = "HOLD_NOT_FOUND"
    HOLD_NOT_ACTIVE = "HOLD_NOT_ACTIVE"
    CAPTURE_EXCEEDS_HOLD = "CAPTURE_EXCEEDS_HOLD"
    TRANSACTION_NOT_FOUND = "TRANSACTION_NOT_FOUND"
    REVERSAL_EXCEEDS_ORIGINAL = "REVERSAL_EXCEEDS_ORIGINAL"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    PREPAID_BALANCE_EXHAUSTED = "PREPAID_BALANCE_EXHAUSTED"


@strawberry.type
class PointsError:
    field: str | None
    message: str
    code: PointsErrorCode

    @classmethod
    def of(cls, error: DomainError) -> PointsError:
        return cls(field=error.field, message=error.message, code=PointsErrorCode[error.code])


@strawberry.enum
class PointsTransactionKind(Enum):
    EARN = "EARN"
    MATURE = "MATURE"
    HOLD = "HOLD"
    CAPTURE = "CAPTURE"
    VOID = "VOID"
    HOLD_EXPIRE = "HOLD_EXPIRE"
    REDEEM = "REDEEM"
    REVERSE = "REVERSE"
    EXPIRE = "EXPIRE"
    FUND = "FUND"


@strawberry.enum
class PointsTransactionStatus(Enum):
    PENDING = "PENDING"
    POSTED = "POSTED"


@strawberry.type
class PointsTransaction:
    id: strawberry.ID
    kind: PointsTransactionKind
    status: PointsTransactionStatus
    points: int
    reversed_points: int
    reference: str | None
    reason: str | None
    pending_until: dt.datetime | None
    created_at: dt.datetime

    @classmethod
    def of(cls, txn: ledger.Txn) -> PointsTransaction:
        return cls(
            id=strawberry.ID(txn.public_id),
            kind=PointsTransactionKind[txn.kind],
            status=PointsTransactionStatus[txn.status],
            points=txn.points,
            reversed_points=txn.reversed_points,
            reference=txn.reference,
            reason=txn.reason,
            pending_until=txn.pending_until,
            created_at=txn.created_at,
        )


@strawberry.enum
class HoldStatus(Enum):
    ACTIVE = "ACTIVE"
    CAPTURED = "CAPTURED"
    VOIDED = "VOIDED"
    EXPIRED = "EXPIRED"


@strawberry.type
class PointsHold:
    id: strawberry.ID
    status: HoldStatus
    points: int
    captured_points: int
    expires_at: dt.datetime
    reference: str | None

    @classmethod
    def of(cls, hold: ledger.Hold) -> PointsHold:
        return cls(
            id=strawberry.ID(hold.public_id),
            status=HoldStatus[hold.status],
            points=hold.points,
            captured_points=hold.captured_points,
            expires_at=hold.expires_at,
            reference=hold.reference,
        )


@strawberry.type
class ExpiringPoints:
    points: BigInt
    expires_at: dt.datetime


@strawberry.type
class MemberPoints:
    available: BigInt
    pending: BigInt
    held: BigInt
    lifetime_earned: BigInt
    member_id: strawberry.Private[int]

    @strawberry.field(description="Available points by the date they expire, soonest first (at most 100).")
    async def expiring(self, info: Info, first: int | None = 10) -> list[ExpiringPoints]:
        async with info.context.hub.db.read() as conn:
            rows = await queries.expiring(conn, self.member_id, 10 if first is None else first)
        return [ExpiringPoints(points=BigInt(r.points), expires_at=r.expires_at) for r in rows]


async def member_points(info: Info, member_id: int) -> MemberPoints:
    ctx = info.context

    async def load(member_ids: Sequence[int]) -> list[queries.Balances]:
        async with ctx.hub.db.read() as conn:
            found = await queries.balances_of(conn, member_ids)
        return [found[m] for m in member_ids]

    found = await ctx.loader("points.balances", load).load(member_id)
    return MemberPoints(
        available=BigInt(found.available),
        pending=BigInt(found.pending),
        held=BigInt(found.held),
        lifetime_earned=BigInt(found.lifetime_earned),
        member_id=member_id,
    )


@strawberry.type
class PointsTransactionEdge:
    cursor: str
    node: PointsTransaction


@strawberry.type
class PointsPageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class PointsTransactionConnection:
    edges: list[PointsTransactionEdge]
    page_info: PointsPageInfo


async def member_points_history(
    info: Info, member_id: int, first: int | None, after: str | None
) -> PointsTransactionConnection:
    ctx = info.context
    async with ctx.hub.db.read() as conn:
        page = await queries.history(conn, ctx.partner_id, member_id, first=20 if first is None else first, after=after)
    edges = [
        PointsTransactionEdge(cursor=cursors.encode(t.public_id), node=PointsTransaction.of(t))
        for t in page.transactions
    ]
    return PointsTransactionConnection(
        edges=edges,
        page_info=PointsPageInfo(has_next_page=page.has_next, end_cursor=edges[-1].cursor if edges else None),
    )


# -- mutations -------------------------------------------------------------------------------------------------------
@strawberry.input
class EarnPointsInput:
    member_id: strawberry.ID
    points: int
    reason: str | None = None
    reference: str | None = None
    pending_until: dt.datetime | None = strawberry.field(
        default=None, description="Points stay pending (not spendable) until then: the return window"
    )
    idempotency_key: str


@strawberry.input
class RedeemPointsInput:
    member_id: strawberry.ID
    points: int
    reference: str | None = None
    idempotency_key: str


@strawberry.input
class HoldPointsInput:
    member_id: strawberry.ID
    points: int
    reference: str | None = None
    expires_in_seconds: int | None = None
    idempotency_key: str


@strawberry.input
class CaptureHoldInput:
    hold_id: strawberry.ID
    points: int
    idempotency_key: str


@strawberry.input
class VoidHoldInput:
    hold_id: strawberry.ID
    idempotency_key: str


@strawberry.input
class ReverseTransactionInput:
    transaction_id: strawberry.ID
    points: int
    reason: str | None = None
    idempotency_key: str


@strawberry.type
class PointsTransactionPayload:
    transaction: PointsTransaction | None
    errors: list[PointsError]


@strawberry.type
class PointsHoldPayload:
    hold: PointsHold | None
    errors: list[PointsError]


async def _run(
    info: Info,
    cmd: Any,
    command: Callable[[AsyncConnection], Awaitable[T]],
    replay: Callable[[AsyncConnection, int], Awaitable[T]],
) -> tuple[T | None, list[PointsError]]:
    key = ledger.Idempotency.of(info.context.partner_id, cmd)
    try:
        return await ledger.run(info.context.hub.db, key, command, replay), []
    except DomainError as error:
        return None, [PointsError.of(error)]


async def _transaction(
    info: Info, cmd: Any, command: Callable[[AsyncConnection], Awaitable[ledger.Txn]]
) -> PointsTransactionPayload:
    txn, errors = await _run(info, cmd, command, ledger.load_txn)
    return PointsTransactionPayload(transaction=PointsTransaction.of(txn) if txn else None, errors=errors)


async def _hold(
    info: Info, cmd: Any, command: Callable[[AsyncConnection], Awaitable[ledger.Hold]]
) -> PointsHoldPayload:
    found, errors = await _run(info, cmd, command, ledger.load_hold_of_txn)
    return PointsHoldPayload(hold=PointsHold.of(found) if found else None, errors=errors)


@strawberry.type
class PointsMutations:
    @strawberry.mutation(extensions=scoped("points:earn"), description="Award points; you are the issuer.")
    async def earn_points(self, info: Info, input: EarnPointsInput) -> PointsTransactionPayload:
        ctx, policy = info.context, info.context.hub.settings.points_policy
        cmd = ledger.Earn(
            str(input.member_id),
            input.points,
            input.reason,
            input.reference,
            input.pending_until,
            input.idempotency_key,
        )
        return await _transaction(info, cmd, lambda conn: ledger.earn(conn, ctx.partner_id, cmd, ctx.now, policy))

    @strawberry.mutation(extensions=scoped("points:redeem"), description="Spend points in one step.")
    async def redeem_points(self, info: Info, input: RedeemPointsInput) -> PointsTransactionPayload:
        ctx = info.context
        cmd = ledger.Redeem(str(input.member_id), input.points, input.reference, input.idempotency_key)
        return await _transaction(info, cmd, lambda conn: ledger.redeem(conn, ctx.partner_id, cmd, ctx.now))

    @strawberry.mutation(extensions=scoped("points:redeem"), description="Reserve points at a till (authorise).")
    async def hold_points(self, info: Info, input: HoldPointsInput) -> PointsHoldPayload:
        ctx, policy = info.context, info.context.hub.settings.points_policy
        cmd = ledger.PlaceHold(
            str(input.member_id), input.points, input.reference, input.expires_in_seconds, input.idempotency_key
        )
        return await _hold(info, cmd, lambda conn: ledger.hold(conn, ctx.partner_id, cmd, ctx.now, policy))

    @strawberry.mutation(extensions=scoped("points:redeem"), description="Capture all or part of a hold.")
    async def capture_hold(self, info: Info, input: CaptureHoldInput) -> PointsTransactionPayload:
        ctx = info.context
        cmd = ledger.Capture(str(input.hold_id), input.points, input.idempotency_key)
        return await _transaction(info, cmd, lambda conn: ledger.capture(conn, ctx.partner_id, cmd, ctx.now))

    @strawberry.mutation(extensions=scoped("points:redeem"), description="Release a hold without spending.")
    async def void_hold(self, info: Info, input: VoidHoldInput) -> PointsHoldPayload:
        ctx = info.context
        cmd = ledger.Void(str(input.hold_id), input.idempotency_key)
        return await _hold(info, cmd, lambda conn: ledger.void(conn, ctx.partner_id, cmd, ctx.now))

    @strawberry.mutation(
        extensions=scoped("points:reverse"), description="Reverse (part of) one of your earns or redemptions."
    )
    async def reverse_transaction(self, info: Info, input: ReverseTransactionInput) -> PointsTransactionPayload:
        ctx, policy = info.context, info.context.hub.settings.points_policy
        cmd = ledger.Reverse(str(input.transaction_id), input.points, input.reason, input.idempotency_key)
        return await _transaction(info, cmd, lambda conn: ledger.reverse(conn, ctx.partner_id, cmd, ctx.now, policy))


# -- queries ---------------------------------------------------------------------------------------------------------
@strawberry.type
class SettlementParty:
    id: strawberry.ID
    name: str


@strawberry.type
class SettlementLine:
    issuer: SettlementParty
    redeemer: SettlementParty
    points: BigInt
    value: Decimal = strawberry.field(description="Yuan the issuer owes the redeemer")


@strawberry.type
class SettlementStatement:
    period: str
    currency: str
    lines: list[SettlementLine]
    receivable: Decimal = strawberry.field(description="What you are owed as redeemer")
    payable: Decimal = strawberry.field(description="What you owe as issuer")
    net: Decimal = strawberry.field(description="receivable − payable")


@strawberry.type
class PointsQueries:
    @strawberry.field(extensions=scoped("points:read"), description="One of your own points transactions.")
    async def points_transaction(self, info: Info, id: strawberry.ID) -> PointsTransaction | None:
        ctx = info.context
        async with ctx.hub.db.read() as conn:
            found = await queries.own_transaction(conn, ctx.partner_id, str(id))
            if found is None:
                return None
            # Consent-checked like every member field: no longer visible once the member withdrew consent.
            view = await members.by_member_id(conn, ctx.partner_id, found[1], ctx.now)
            if view is None or "points:read" not in view.permissions:
                return None
        return PointsTransaction.of(found[0])

    @strawberry.field(
        extensions=scoped("settlement:read"), description="Who owes whom for a month (YYYY-MM), lines you are party to."
    )
    async def settlement_statement(
        self, info: Info, period: Annotated[str, strawberry.argument(description="YYYY-MM")]
    ) -> SettlementStatement:
        ctx = info.context
        async with ctx.hub.db.read() as conn:
            found = await settlement.statement(conn, ctx.partner_id, period, ctx.hub.settings.points_policy.zone)
        return SettlementStatement(
            period=found.period,
            currency="CNY",
            lines=[
                SettlementLine(
                    issuer=SettlementParty(id=strawberry.ID(line.issuer_id), name=line.issuer_name),
                    redeemer=SettlementParty(id=strawberry.ID(line.redeemer_id), name=line.redeemer_name),
                    points=BigInt(line.points),
                    value=line.value,
                )
                for line in found.lines
            ],
            receivable=found.receivable,
            payable=found.payable,
            net=found.net,
        )
