"""GraphQL for purchases and refunds."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import Enum

import strawberry

from hub.idempotency import retrying
from hub.purchases import service as purchases
from hub.schema.baskets import PurchaseLineInput
from hub.schema.context import Info
from hub.schema.errors import mutation
from hub.schema.members import Member, member_of
from hub.schema.permissions import scoped
from hub.schema.programme import yuan_of


@strawberry.enum
class PurchaseErrorCode(Enum):
    INVALID_INPUT = "INVALID_INPUT"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    MEMBER_NOT_FOUND = "MEMBER_NOT_FOUND"
    CONSENT_REQUIRED = "CONSENT_REQUIRED"
    DUPLICATE_REFERENCE = "DUPLICATE_REFERENCE"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    PURCHASE_NOT_FOUND = "PURCHASE_NOT_FOUND"
    REFUND_EXCEEDS_PURCHASE = "REFUND_EXCEEDS_PURCHASE"
    PREPAID_BALANCE_EXHAUSTED = "PREPAID_BALANCE_EXHAUSTED"
    INSUFFICIENT_POINTS = "INSUFFICIENT_POINTS"
    NEGATIVE_BALANCE = "NEGATIVE_BALANCE"
    ACTIVITY_NOT_ALLOWED = "ACTIVITY_NOT_ALLOWED"
    QUOTE_NOT_FOUND = "QUOTE_NOT_FOUND"
    QUOTE_EXPIRED = "QUOTE_EXPIRED"
    BASKET_CHANGED = "BASKET_CHANGED"


@strawberry.type
class PurchaseError:
    field: str | None
    message: str
    code: PurchaseErrorCode


@strawberry.input
class RecordPurchaseInput:
    member_id: strawberry.ID
    reference: str = strawberry.field(description="Your receipt number; unique among your purchases")
    occurred_at: dt.datetime
    store_id: str | None = None
    lines: list[PurchaseLineInput]
    quote_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="The quote of this basket (quoteBasket): the lines are the quoted ones at list price, and what "
        "is recorded is what the quote said is paid and earned; QUOTE_EXPIRED or BASKET_CHANGED otherwise",
    )
    idempotency_key: str


@strawberry.type
class PurchaseType:
    id: strawberry.ID
    reference: str
    points_earned: int = strawberry.field(description="Points it still carries (net of refunds)")
    growth_value: Decimal = strawberry.field(description="Qualifying spend (yuan) it still counts (net of refunds)")
    amount: Decimal
    refunded: Decimal

    @classmethod
    def of(cls, found: purchases.Purchase) -> PurchaseType:
        return cls(
            id=strawberry.ID(found.public_id),
            reference=found.reference,
            points_earned=found.points,
            growth_value=yuan_of(found.growth),
            amount=yuan_of(found.amount),
            refunded=yuan_of(found.refunded),
        )


@strawberry.type
class RecordPurchasePayload:
    purchase: PurchaseType | None = None
    member: Member | None = None
    errors: list[PurchaseError]


@strawberry.input
class RefundLineInput:
    sku: str
    amount: str


@strawberry.input
class RefundPurchaseInput:
    purchase_reference: str
    lines: list[RefundLineInput] | None = strawberry.field(default=None, description="What was returned, per SKU")
    amount: str | None = strawberry.field(default=None, description="Or an amount, spread over the lines")
    idempotency_key: str


@strawberry.type
class RefundType:
    id: strawberry.ID
    amount: Decimal
    points_reversed: int
    growth_value_reversed: Decimal


@strawberry.type
class RefundPurchasePayload:
    refund: RefundType | None = None
    purchase: PurchaseType | None = None
    member: Member | None = None
    errors: list[PurchaseError]


@strawberry.type
class PurchaseMutations:
    @mutation(extensions=scoped("purchases:write"), description="Record a purchase: points and growth.")
    async def record_purchase(self, info: Info, input: RecordPurchaseInput) -> RecordPurchasePayload:
        ctx, settings = info.context, info.context.hub.settings
        cmd = purchases.RecordPurchase(
            member_id=str(input.member_id),
            reference=input.reference,
            occurred_at=input.occurred_at,
            store_id=input.store_id,
            lines=tuple(
                purchases.LineInput(
                    line.sku,
                    line.category,
                    line.amount,
                    line.quantity,
                    line.prescription,
                    line.insurer_paid,
                    line.discountable,
                )
                for line in input.lines
            ),
            idempotency_key=input.idempotency_key,
            quote_id=None if input.quote_id is None else str(input.quote_id),
        )
        found = await retrying(
            ctx.hub.db,
            lambda conn: purchases.record(
                conn, ctx.partner_id, cmd, now=ctx.now, programme=settings.programme, policy=settings.points_policy
            ),
        )
        return RecordPurchasePayload(
            purchase=PurchaseType.of(found), member=await member_of(info, found.member_id), errors=[]
        )

    @mutation(
        extensions=scoped("purchases:write"), description="Refund (part of) a purchase: its points and growth go back."
    )
    async def refund_purchase(self, info: Info, input: RefundPurchaseInput) -> RefundPurchasePayload:
        ctx, settings = info.context, info.context.hub.settings
        cmd = purchases.RefundPurchase(
            purchase_reference=input.purchase_reference,
            lines=tuple(purchases.RefundLine(line.sku, line.amount) for line in input.lines)
            if input.lines is not None
            else None,
            amount=input.amount,
            idempotency_key=input.idempotency_key,
        )
        done = await retrying(
            ctx.hub.db,
            lambda conn: purchases.refund(conn, ctx.partner_id, cmd, now=ctx.now, policy=settings.points_policy),
        )
        return RefundPurchasePayload(
            refund=RefundType(
                id=strawberry.ID(done.public_id),
                amount=yuan_of(done.amount),
                points_reversed=done.points_reversed,
                growth_value_reversed=yuan_of(done.growth_reversed),
            ),
            purchase=PurchaseType.of(done.purchase),
            member=await member_of(info, done.purchase.member_id),
            errors=[],
        )
