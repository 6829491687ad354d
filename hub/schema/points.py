"""GraphQL for points: the ledger's mutations, balances and history on Member, transactions and settlement."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection
from strawberry.types.nodes import SelectedField

from hub import cursors
from hub.consent.rule import ConsentRequired, MemberView
from hub.points import ledger, queries, settlement
from hub.rewards import quote as quotes
from hub.schema.batches import Batch, answer, argument, fields_of
from hub.schema.context import Context, Info
from hub.schema.errors import mutation
from hub.schema.pagination import PageInfo
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
    QUOTE_NOT_FOUND = "QUOTE_NOT_FOUND"
    QUOTE_EXPIRED = "QUOTE_EXPIRED"
    OFFSET_CAP_EXCEEDED = "OFFSET_CAP_EXCEEDED"


@strawberry.type
class PointsError:
    field: str | None
    message: str
    code: PointsErrorCode


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


async def _balances(ctx: Context, views: Sequence[MemberView]) -> Sequence[queries.Balances | ConsentRequired]:
    async with ctx.hub.db.read() as conn:
        return await queries.balances_of(conn, views)


BALANCES = Batch(("points.balances",), _balances)


def expiring_batch(first: int | None) -> Batch:
    first = 10 if first is None else first

    async def load(ctx: Context, views: Sequence[MemberView]) -> Sequence[list[queries.Expiring] | ConsentRequired]:
        async with ctx.hub.db.read() as conn:
            return await queries.expiring_of(conn, views, first)

    return Batch(("points.expiring", first), load)


def history_batch(first: int | None, after: str | None) -> Batch:
    first = 20 if first is None else first

    async def load(ctx: Context, views: Sequence[MemberView]) -> Sequence[queries.HistoryPage | ConsentRequired]:
        async with ctx.hub.db.read() as conn:
            return await queries.histories_of(conn, ctx.partner_id, views, first=first, after=after)

    return Batch(("points.history", first, after), load)


def points_needs(selected: SelectedField) -> list[Batch]:
    """`Member.points` and the `expiring` lists asked inside it."""
    expiring = [f for f in fields_of(selected.selections) if f.name == "expiring"]
    return [BALANCES, *(expiring_batch(argument(f, "first", int)) for f in expiring)]


def history_needs(selected: SelectedField) -> list[Batch]:
    return [history_batch(argument(selected, "first", int), argument(selected, "after", str))]


@strawberry.type
class MemberPoints:
    available: BigInt
    pending: BigInt
    held: BigInt
    lifetime_earned: BigInt
    view: strawberry.Private[MemberView]

    @strawberry.field(description="Available points by the date they expire, soonest first (at most 100).")
    def expiring(self, info: Info, first: int | None = 10) -> list[ExpiringPoints]:
        rows = answer(info, expiring_batch(first), self.view)
        return [ExpiringPoints(points=BigInt(r.points), expires_at=r.expires_at) for r in rows]


def member_points(info: Info, view: MemberView) -> MemberPoints:
    found = answer(info, BALANCES, view)
    return MemberPoints(
        available=BigInt(found.available),
        pending=BigInt(found.pending),
        held=BigInt(found.held),
        lifetime_earned=BigInt(found.lifetime_earned),
        view=view,
    )


@strawberry.type
class PointsTransactionEdge:
    cursor: str
    node: PointsTransaction


@strawberry.type
class PointsTransactionConnection:
    edges: list[PointsTransactionEdge]
    page_info: PageInfo


def member_points_history(
    info: Info, view: MemberView, first: int | None, after: str | None
) -> PointsTransactionConnection:
    page = answer(info, history_batch(first, after), view)
    edges = [
        PointsTransactionEdge(cursor=cursors.encode(t.public_id), node=PointsTransaction.of(t))
        for t in page.transactions
    ]
    return PointsTransactionConnection(
        edges=edges, page_info=PageInfo.of([e.cursor for e in edges], has_next=page.has_next, after=after)
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
    quote_id: strawberry.ID | None = strawberry.field(
        default=None, description="The quoted basket the points pay for: at most its maxPointsToRedeem"
    )
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
    transaction: PointsTransaction | None = None
    errors: list[PointsError]


@strawberry.type
class PointsHoldPayload:
    hold: PointsHold | None = None
    errors: list[PointsError]


async def _transaction(
    info: Info, cmd: Any, command: Callable[[AsyncConnection], Awaitable[ledger.Txn]]
) -> PointsTransactionPayload:
    key = ledger.Idempotency.of(info.context.partner_id, cmd)
    txn = await ledger.run(info.context.hub.db, key, command, ledger.load_txn)
    return PointsTransactionPayload(transaction=PointsTransaction.of(txn), errors=[])


async def _hold(
    info: Info, cmd: Any, command: Callable[[AsyncConnection], Awaitable[ledger.Hold]]
) -> PointsHoldPayload:
    key = ledger.Idempotency.of(info.context.partner_id, cmd)
    found = await ledger.run(info.context.hub.db, key, command, ledger.load_hold_of_txn)
    return PointsHoldPayload(hold=PointsHold.of(found), errors=[])


@strawberry.type
class PointsMutations:
    @mutation(extensions=scoped("points:earn"), description="Award points; you are the issuer.")
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

    @mutation(extensions=scoped("points:redeem"), description="Spend points in one step.")
    async def redeem_points(self, info: Info, input: RedeemPointsInput) -> PointsTransactionPayload:
        ctx = info.context
        if input.quote_id is None:
            cmd = ledger.Redeem(str(input.member_id), input.points, input.reference, input.idempotency_key)
            return await _transaction(info, cmd, lambda conn: ledger.redeem(conn, ctx.partner_id, cmd, ctx.now))
        basket = ledger.RedeemForBasket(
            str(input.member_id), input.points, input.reference, str(input.quote_id), input.idempotency_key
        )

        async def within_quote(conn: AsyncConnection, member_id: int) -> None:
            await quotes.check_points(conn, ctx.partner_id, member_id, basket.quote_id, basket.points, ctx.now)

        return await _transaction(
            info, basket, lambda conn: ledger.redeem(conn, ctx.partner_id, basket, ctx.now, within_quote)
        )

    @mutation(extensions=scoped("points:redeem"), description="Reserve points at a till (authorise).")
    async def hold_points(self, info: Info, input: HoldPointsInput) -> PointsHoldPayload:
        ctx, policy = info.context, info.context.hub.settings.points_policy
        cmd = ledger.PlaceHold(
            str(input.member_id), input.points, input.reference, input.expires_in_seconds, input.idempotency_key
        )
        return await _hold(info, cmd, lambda conn: ledger.hold(conn, ctx.partner_id, cmd, ctx.now, policy))

    @mutation(extensions=scoped("points:redeem"), description="Capture all or part of a hold.")
    async def capture_hold(self, info: Info, input: CaptureHoldInput) -> PointsTransactionPayload:
        ctx = info.context
        cmd = ledger.Capture(str(input.hold_id), input.points, input.idempotency_key)
        return await _transaction(info, cmd, lambda conn: ledger.capture(conn, ctx.partner_id, cmd, ctx.now))

    @mutation(extensions=scoped("points:redeem"), description="Release a hold without spending.")
    async def void_hold(self, info: Info, input: VoidHoldInput) -> PointsHoldPayload:
        ctx = info.context
        cmd = ledger.Void(str(input.hold_id), input.idempotency_key)
        return await _hold(info, cmd, lambda conn: ledger.void(conn, ctx.partner_id, cmd, ctx.now))

    @mutation(extensions=scoped("points:reverse"), description="Reverse (part of) one of your earns or redemptions.")
    async def reverse_transaction(self, info: Info, input: ReverseTransactionInput) -> PointsTransactionPayload:
        ctx, policy = info.context, info.context.hub.settings.points_policy
        cmd = ledger.Reverse(str(input.transaction_id), input.points, input.reason, input.idempotency_key)
        return await _transaction(info, cmd, lambda conn: ledger.reverse(conn, ctx.partner_id, cmd, ctx.now, policy))


# -- queries ---------------------------------------------------------------------------------------------------------
@strawberry.type
class SettlementParty:
    id: strawberry.ID
    name: str


@strawberry.enum(description="What a settlement line is for")
class SettlementBasis(Enum):
    POINTS = strawberry.enum_value("POINTS", description="Points redeemed: their issuer owes the redeemer")
    REWARD_POINTS = strawberry.enum_value(
        "REWARD_POINTS", description="Points that paid for reward claims: their issuer owes the redeemer"
    )
    REWARD_SPONSOR = strawberry.enum_value(
        "REWARD_SPONSOR", description="The rest of redeemed rewards' value: the sponsor owes the redeemer"
    )


@strawberry.type
class SettlementLine:
    issuer: SettlementParty = strawberry.field(description="Who owes: the points' issuer, or the reward's sponsor")
    redeemer: SettlementParty
    basis: SettlementBasis
    points: BigInt
    value: Decimal = strawberry.field(description="Yuan the issuer (or sponsor) owes the redeemer")


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
            found = await queries.readable_transaction(conn, ctx.partner_id, str(id), ctx.now)
        if found is None:
            return None
        txn, view = found
        ctx.record_access(view.member_id, view.consent_pk, "points:read")
        return PointsTransaction.of(txn)

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
                    basis=SettlementBasis[line.basis],
                    points=BigInt(line.points),
                    value=line.value,
                )
                for line in found.lines
            ],
            receivable=found.receivable,
            payable=found.payable,
            net=found.net,
        )
