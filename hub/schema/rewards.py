"""GraphQL for rewards: the catalogue, claims and their codes, the till's quote, and Member.rewardClaims."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from enum import Enum
from typing import Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection
from strawberry.types.nodes import SelectedField

from hub import cursors
from hub.consent.rule import ConsentRequired, MemberView, answers
from hub.errors import DomainError
from hub.idempotency import retrying
from hub.members import service as members
from hub.rewards import catalogue, claims
from hub.rewards import quote as quotes
from hub.schema.baskets import PurchaseLineInput
from hub.schema.batches import Batch, answer, argument
from hub.schema.context import Context, Info
from hub.schema.errors import mutation
from hub.schema.pagination import PageInfo
from hub.schema.permissions import scoped
from hub.schema.programme import yuan_of


@strawberry.enum
class RewardErrorCode(Enum):
    INVALID_INPUT = "INVALID_INPUT"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    INVALID_CURSOR = "INVALID_CURSOR"
    MEMBER_NOT_FOUND = "MEMBER_NOT_FOUND"
    CONSENT_REQUIRED = "CONSENT_REQUIRED"
    REWARD_NOT_FOUND = "REWARD_NOT_FOUND"
    TIER_TOO_LOW = "TIER_TOO_LOW"
    NOT_YET_OPEN = "NOT_YET_OPEN"
    OUT_OF_STOCK = "OUT_OF_STOCK"
    MEMBER_LIMIT_REACHED = "MEMBER_LIMIT_REACHED"
    WINDOW_CLOSED = "WINDOW_CLOSED"
    INSUFFICIENT_POINTS = "INSUFFICIENT_POINTS"
    NEGATIVE_BALANCE = "NEGATIVE_BALANCE"
    INVALID_CODE = "INVALID_CODE"
    CLAIM_NOT_FOUND = "CLAIM_NOT_FOUND"
    CLAIM_REDEEMED = "CLAIM_REDEEMED"
    CLAIM_EXPIRED = "CLAIM_EXPIRED"
    CLAIM_VOIDED = "CLAIM_VOIDED"
    CLAIM_NOT_ACTIVE = "CLAIM_NOT_ACTIVE"
    QUOTE_REQUIRED = "QUOTE_REQUIRED"
    QUOTE_NOT_FOUND = "QUOTE_NOT_FOUND"
    QUOTE_EXPIRED = "QUOTE_EXPIRED"
    BASKET_CHANGED = "BASKET_CHANGED"
    OFFSET_CAP_EXCEEDED = "OFFSET_CAP_EXCEEDED"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"


@strawberry.type
class RewardError:
    field: str | None
    message: str
    code: RewardErrorCode


@strawberry.enum
class RewardKind(Enum):
    GIFT = "GIFT"
    COUPON = "COUPON"
    SERVICE = "SERVICE"


@strawberry.enum
class LimitPeriod(Enum):
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"
    YEAR = "YEAR"
    EVER = "EVER"


@strawberry.enum(description="Why a member may not claim a reward now")
class RewardUnavailableReason(Enum):
    TIER_TOO_LOW = "TIER_TOO_LOW"
    NOT_YET_OPEN = "NOT_YET_OPEN"
    OUT_OF_STOCK = "OUT_OF_STOCK"
    MEMBER_LIMIT_REACHED = "MEMBER_LIMIT_REACHED"
    WINDOW_CLOSED = "WINDOW_CLOSED"


@strawberry.enum
class RewardClaimStatus(Enum):
    RESERVED = "RESERVED"
    ISSUED = "ISSUED"
    REDEEMED = "REDEEMED"
    VOIDED = "VOIDED"
    EXPIRED = "EXPIRED"
    REVERSED = "REVERSED"


@strawberry.type(description="When a tier may start claiming (priority purchase: higher tiers open earlier)")
class RewardWindow:
    min_tier: int = strawberry.field(description="Members at this tier level or above (up to the next window's)")
    opens_at: dt.datetime


@strawberry.type
class Reward:
    id: strawberry.ID
    sponsor_id: strawberry.ID = strawberry.field(description="The partner that offers it and pays for it")
    kind: RewardKind
    name: str
    description: str | None
    points_cost: int
    face_value: Decimal = strawberry.field(description="Yuan a unit is worth (a percentage coupon's cap)")
    percent_off: int | None
    stock: int | None = strawberry.field(description="Total units; null: unlimited")
    stock_left: int | None
    member_limit: int | None = strawberry.field(description="Units a member may hold per limitPeriod")
    limit_period: LimitPeriod
    available_from: dt.datetime
    available_until: dt.datetime | None
    claim_valid_days: int
    windows: list[RewardWindow]
    redeemable_at: list[strawberry.ID] = strawberry.field(description="Partners where it may be redeemed")
    categories: list[str] = strawberry.field(description="Basket categories a coupon applies to (empty: all)")
    retired: bool

    @classmethod
    def of(cls, found: catalogue.Reward) -> Reward:
        return cls(
            id=strawberry.ID(found.public_id),
            sponsor_id=strawberry.ID(found.sponsor_public_id),
            kind=RewardKind[found.kind],
            name=found.name,
            description=found.description,
            points_cost=found.points_cost,
            face_value=yuan_of(found.face_value),
            percent_off=found.percent_off,
            stock=found.stock_total,
            stock_left=found.stock_left,
            member_limit=found.member_limit,
            limit_period=LimitPeriod[found.limit_period],
            available_from=found.available_from,
            available_until=found.available_until,
            claim_valid_days=found.claim_valid_days,
            windows=[RewardWindow(min_tier=w.min_level, opens_at=w.opens_at) for w in found.windows],
            redeemable_at=[strawberry.ID(p) for p in (found.redeemers or (found.sponsor_public_id,))],
            categories=list(found.categories),
            retired=found.status == "RETIRED",
        )


@strawberry.type
class RewardEdge:
    cursor: str
    node: Reward
    claimable: bool = strawberry.field(description="The member (or, with no member, anyone eligible) may claim now")
    reason: RewardUnavailableReason | None
    reason_message: str | None


@strawberry.type
class RewardConnection:
    edges: list[RewardEdge]
    page_info: PageInfo


@strawberry.type
class RewardClaim:
    id: strawberry.ID
    reward_id: strawberry.ID
    reward_name: str
    kind: RewardKind
    status: RewardClaimStatus
    quantity: int
    points: int = strawberry.field(description="Points held for it (captured when redeemed)")
    value: Decimal = strawberry.field(description="Yuan: face value × quantity")
    code: str | None = strawberry.field(
        description="The coupon code (like 7K3M9-Q2XTB-N): shown only to the partner that claimed it"
    )
    code_last4: str
    expires_at: dt.datetime
    created_at: dt.datetime
    redeemed_quantity: int
    redeemed_value: Decimal
    order_reference: str | None

    @classmethod
    def of(cls, found: claims.Claim, viewer_id: int | None) -> RewardClaim:
        return cls(
            id=strawberry.ID(found.public_id),
            reward_id=strawberry.ID(found.reward_public_id),
            reward_name=found.reward_name,
            kind=RewardKind[found.kind],
            status=RewardClaimStatus[found.status],
            quantity=found.quantity,
            points=found.points,
            value=yuan_of(found.value),
            code=found.code if viewer_id is not None and found.claimant_id == viewer_id else None,
            code_last4=found.code_last4,
            expires_at=found.expires_at,
            created_at=found.created_at,
            redeemed_quantity=found.redeemed_quantity,
            redeemed_value=yuan_of(found.redeemed_value),
            order_reference=found.order_reference,
        )


def claims_batch(first: int | None) -> Batch:
    first = 20 if first is None else first

    async def load(ctx: Context, views: Sequence[MemberView]) -> Sequence[list[claims.Claim] | ConsentRequired]:
        if not 0 <= first <= 100:
            raise DomainError("INVALID_INPUT", "first must be between 0 and 100", "first")
        async with ctx.hub.db.read() as conn:
            found = await claims.claims_of(
                conn,
                ctx.hub.reward_key,
                [v.member_id for v in views if v.permits("points:read")],
                ctx.now,
                first=first,
                claimant_id=ctx.partner_id,
            )
        return answers(views, "points:read", lambda view: found[view.member_id])

    return Batch(("rewards.claims", first), load)


def claims_needs(selected: SelectedField) -> list[Batch]:
    return [claims_batch(argument(selected, "first", int))]


def member_reward_claims(info: Info, view: MemberView, first: int | None) -> list[RewardClaim]:
    return [RewardClaim.of(c, info.context.partner_id) for c in answer(info, claims_batch(first), view)]


# -- catalogue mutations -------------------------------------------------------------------------------------------
@strawberry.input
class RewardWindowInput:
    min_tier: int
    opens_at: dt.datetime


@strawberry.input
class CreateRewardInput:
    kind: RewardKind
    name: str
    description: str | None = None
    points_cost: int
    face_value: str = strawberry.field(description='Yuan a unit is worth, a decimal string: "30.00"')
    percent_off: int | None = strawberry.field(default=None, description="A coupon's percent off, capped by faceValue")
    stock: int | None = strawberry.field(default=None, description="Total units; omit for unlimited")
    member_limit: int | None = None
    limit_period: LimitPeriod = LimitPeriod.EVER
    available_from: dt.datetime | None = None
    available_until: dt.datetime | None = None
    claim_valid_days: int = 30
    windows: list[RewardWindowInput] | None = strawberry.field(
        default=None, description="Per tier, when claiming opens; default: every tier from availableFrom"
    )
    redeemable_at: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Partners where it may be redeemed; default: you only"
    )
    categories: list[str] | None = None


@strawberry.input
class UpdateRewardInput:
    id: strawberry.ID
    name: str | None = None
    description: str | None = None
    points_cost: int | None = None
    face_value: str | None = None
    percent_off: int | None = None
    stock: int | None = strawberry.field(default=None, description="The new total; what is claimed stays claimed")
    member_limit: int | None = None
    limit_period: LimitPeriod | None = None
    available_until: dt.datetime | None = None
    claim_valid_days: int | None = None
    windows: list[RewardWindowInput] | None = None
    redeemable_at: list[strawberry.ID] | None = None
    categories: list[str] | None = None


@strawberry.input
class RetireRewardInput:
    id: strawberry.ID


@strawberry.type
class RewardPayload:
    reward: Reward | None = None
    errors: list[RewardError]


def _windows(given: list[RewardWindowInput] | None) -> tuple[catalogue.WindowInput, ...] | None:
    return None if given is None else tuple(catalogue.WindowInput(w.min_tier, w.opens_at) for w in given)


def _fields(input: CreateRewardInput | UpdateRewardInput) -> dict[str, Any]:
    return {
        "name": input.name,
        "description": input.description,
        "points_cost": input.points_cost,
        "face_value": input.face_value,
        "percent_off": input.percent_off,
        "stock": input.stock,
        "member_limit": input.member_limit,
        "limit_period": input.limit_period.value if input.limit_period is not None else None,
        "available_until": input.available_until,
        "claim_valid_days": input.claim_valid_days,
        "windows": _windows(input.windows),
        "redeemers": None if input.redeemable_at is None else tuple(str(p) for p in input.redeemable_at),
        "categories": None if input.categories is None else tuple(input.categories),
    }


# -- claims, the quote --------------------------------------------------------------------------------------------
@strawberry.input
class ClaimRewardInput:
    member_id: strawberry.ID
    reward_id: strawberry.ID
    quantity: int = 1
    quote_id: strawberry.ID | None = strawberry.field(
        default=None, description="Claiming at a till for a quoted basket: the claim is RESERVED for 15 minutes"
    )
    idempotency_key: str


@strawberry.input
class RedeemRewardClaimInput:
    claim_id: strawberry.ID | None = None
    code: str | None = strawberry.field(default=None, description="Or the code the member shows (any case, hyphens)")
    order_reference: str = strawberry.field(description="Your receipt number: a full refund of it reverses the claim")
    quantity: int | None = strawberry.field(default=None, description="Units taken; default: all (the rest go back)")
    quote_id: strawberry.ID | None = strawberry.field(
        default=None, description="The quote that priced the coupon: it is redeemed for what the quote took off"
    )
    idempotency_key: str


@strawberry.input
class VoidRewardClaimInput:
    claim_id: strawberry.ID
    idempotency_key: str


@strawberry.type
class RewardClaimPayload:
    claim: RewardClaim | None = None
    errors: list[RewardError]


@strawberry.input
class QuoteBasketInput:
    member_id: strawberry.ID
    store_id: str | None = None
    lines: list[PurchaseLineInput] = strawberry.field(description="At list price")
    coupon_codes: list[str] = strawberry.field(default_factory=list)
    points_to_redeem: int | None = strawberry.field(default=None, description="Points the member wants to pay with")


@strawberry.type
class QuoteTier:
    level: int
    name: str
    reason: str = strawberry.field(description='The discount and why: "金卡: 7折 on discountable lines"')


@strawberry.type
class QuoteLine:
    sku: str
    amount: Decimal = strawberry.field(description="List price, yuan")
    tier_discount: Decimal
    coupon_discount: Decimal
    points_discount: Decimal
    amount_to_pay: Decimal
    points_earned: int
    earns: str = strawberry.field(description="Which rule gave its points")


@strawberry.type
class QuoteCoupon:
    claim_id: strawberry.ID
    code_last4: str
    name: str
    kind: RewardKind
    amount: Decimal = strawberry.field(description="Yuan off the basket (0 for a gift or service: hand it over)")


@strawberry.type
class QuoteRefusal:
    code: str = strawberry.field(description="The code as typed, or its last four symbols")
    reason: str
    message: str


@strawberry.type
class BasketQuote:
    id: strawberry.ID
    expires_at: dt.datetime
    tier: QuoteTier
    lines: list[QuoteLine]
    coupons: list[QuoteCoupon]
    refused: list[QuoteRefusal]
    max_points_to_redeem: int = strawberry.field(description="The most points that may pay for this basket")
    max_points_value: Decimal
    points_to_redeem: int
    points_value: Decimal
    amount: Decimal
    amount_to_pay: Decimal
    points_earned: int
    growth_value: Decimal
    earning_rule: str

    @classmethod
    def of(cls, found: quotes.Quote) -> BasketQuote:
        p = found.plan
        return cls(
            id=strawberry.ID(found.public_id),
            expires_at=found.expires_at,
            tier=QuoteTier(level=p.level, name=p.tier_name, reason=p.tier_reason),
            lines=[
                QuoteLine(
                    sku=line.sku,
                    amount=yuan_of(line.amount),
                    tier_discount=yuan_of(line.tier_discount),
                    coupon_discount=yuan_of(line.coupon_discount),
                    points_discount=yuan_of(line.points_discount),
                    amount_to_pay=yuan_of(line.to_pay),
                    points_earned=line.points,
                    earns=line.rule,
                )
                for line in p.lines
            ],
            coupons=[
                QuoteCoupon(
                    claim_id=strawberry.ID(c.claim_id),
                    code_last4=c.code_last4,
                    name=c.name,
                    kind=RewardKind[c.kind],
                    amount=yuan_of(c.amount),
                )
                for c in p.coupons
            ],
            refused=[QuoteRefusal(code=r.code, reason=r.reason, message=r.message) for r in p.refused],
            max_points_to_redeem=p.max_points,
            max_points_value=yuan_of(p.max_points_value),
            points_to_redeem=p.points_used,
            points_value=yuan_of(p.points_value),
            amount=yuan_of(p.amount),
            amount_to_pay=yuan_of(p.to_pay),
            points_earned=p.points_earned,
            growth_value=yuan_of(p.qualifying),
            earning_rule=p.earn_rule,
        )


@strawberry.type
class QuoteBasketPayload:
    quote: BasketQuote | None = None
    errors: list[RewardError]


async def _redeemer_reaches(conn: AsyncConnection, partner_id: int, member_id: int, now: dt.datetime, field: str):
    """The redeemer's own consented view of the claim's member; anyone else's claim is not found."""
    view = await members.by_member_id(conn, partner_id, member_id, now)
    if view is None:
        raise claims.not_found(field)
    view.require("points:redeem")


@strawberry.type
class RewardMutations:
    @mutation(extensions=scoped("rewards:manage"), description="Offer a reward; you are its sponsor.")
    async def create_reward(self, info: Info, input: CreateRewardInput) -> RewardPayload:
        ctx, programme = info.context, info.context.hub.settings.programme
        given = catalogue.RewardInput(kind=input.kind.value, available_from=input.available_from, **_fields(input))
        async with ctx.hub.db.write() as conn:
            found = await catalogue.create(conn, ctx.partner_id, given, programme.at(ctx.now), ctx.now)
        return RewardPayload(reward=Reward.of(found), errors=[])

    @mutation(extensions=scoped("rewards:manage"), description="Change one of your rewards.")
    async def update_reward(self, info: Info, input: UpdateRewardInput) -> RewardPayload:
        ctx, programme = info.context, info.context.hub.settings.programme
        given = catalogue.RewardInput(**_fields(input))
        async with ctx.hub.db.write() as conn:
            found = await catalogue.update_reward(
                conn, ctx.partner_id, str(input.id), given, programme.at(ctx.now), ctx.now
            )
        return RewardPayload(reward=Reward.of(found), errors=[])

    @mutation(extensions=scoped("rewards:manage"), description="Stop new claims; issued codes stay redeemable.")
    async def retire_reward(self, info: Info, input: RetireRewardInput) -> RewardPayload:
        ctx = info.context
        async with ctx.hub.db.write() as conn:
            found = await catalogue.retire(conn, ctx.partner_id, str(input.id), ctx.now)
        return RewardPayload(reward=Reward.of(found), errors=[])

    @mutation(
        extensions=scoped("rewards:redeem"),
        description="Claim a reward for a member (consent points:redeem): stock, the member's limit and the points "
        "are reserved together, and a coupon code is issued.",
    )
    async def claim_reward(self, info: Info, input: ClaimRewardInput) -> RewardClaimPayload:
        ctx, settings = info.context, info.context.hub.settings
        cmd = claims.ClaimReward(
            str(input.reward_id),
            input.quantity,
            input.idempotency_key,
            None if input.quote_id is None else str(input.quote_id),
        )

        async def work(conn: AsyncConnection) -> claims.Claim:
            view = await members.consented_member(conn, ctx.partner_id, str(input.member_id), "points:redeem", ctx.now)
            quoted = None
            if cmd.quote_id is not None:
                quoted = (await quotes.quoted(conn, ctx.partner_id, view.member_id, cmd.quote_id, ctx.now)).id
            return await claims.claim(
                conn,
                ctx.hub.reward_key,
                cmd,
                member_id=view.member_id,
                claimant_id=ctx.partner_id,
                now=ctx.now,
                zone=settings.points_policy.zone,
                quote_pk=quoted,
            )

        found = await retrying(ctx.hub.db, work)
        return RewardClaimPayload(claim=RewardClaim.of(found, ctx.partner_id), errors=[])

    @mutation(extensions=scoped("rewards:redeem"), description="Redeem a claim at your till (by its id or code).")
    async def redeem_reward_claim(self, info: Info, input: RedeemRewardClaimInput) -> RewardClaimPayload:
        ctx = info.context
        quote_id = None if input.quote_id is None else str(input.quote_id)
        cmd = claims.RedeemClaim(
            None if input.claim_id is None else str(input.claim_id),
            input.code,
            input.order_reference,
            input.idempotency_key,
            input.quantity,
            quote_id,
        )

        async def reaches(conn: AsyncConnection, member_id: int, field: str) -> None:
            await _redeemer_reaches(conn, ctx.partner_id, member_id, ctx.now, field)

        async def quoted_value(conn: AsyncConnection, member_id: int, claim_id: str) -> int | None:
            if quote_id is None:
                return None
            found = await quotes.quoted(conn, ctx.partner_id, member_id, quote_id, ctx.now)
            if claim_id not in found.coupons:
                raise DomainError("BASKET_CHANGED", "this claim was not in the quoted basket", "quoteId")
            return found.coupons[claim_id]

        async def work(conn: AsyncConnection) -> claims.Claim:
            return await claims.redeem(
                conn, ctx.hub.reward_key, ctx.partner_id, cmd, reaches=reaches, quoted_value=quoted_value, now=ctx.now
            )

        found = await retrying(ctx.hub.db, work)
        return RewardClaimPayload(claim=RewardClaim.of(found, ctx.partner_id), errors=[])

    @mutation(
        extensions=scoped("rewards:redeem"),
        description="Void a claim you made: its points, stock and the member's limit are released.",
    )
    async def void_reward_claim(self, info: Info, input: VoidRewardClaimInput) -> RewardClaimPayload:
        ctx = info.context
        cmd = claims.VoidClaim(str(input.claim_id), input.idempotency_key)
        found = await retrying(
            ctx.hub.db,
            lambda conn: claims.void(
                conn, ctx.hub.reward_key, cmd, claimant_id=ctx.partner_id, member_id=None, now=ctx.now
            ),
        )
        return RewardClaimPayload(claim=RewardClaim.of(found, ctx.partner_id), errors=[])

    @mutation(
        extensions=scoped("purchases:write"),
        description="Price a basket for a member before the receipt prints: tier discount, coupons, points as cash, "
        "points earned. Writes only the quote (valid 5 minutes); record it with recordPurchase(quoteId).",
    )
    async def quote_basket(self, info: Info, input: QuoteBasketInput) -> QuoteBasketPayload:
        ctx, settings = info.context, info.context.hub.settings
        cmd = quotes.QuoteBasket(
            str(input.member_id), input.store_id, tuple(input.lines), tuple(input.coupon_codes), input.points_to_redeem
        )
        async with ctx.hub.db.read() as conn:
            view = await members.consented_member(conn, ctx.partner_id, cmd.member_id, "purchases:write", ctx.now)
            found = await quotes.prepare(
                conn,
                ctx.hub.reward_key,
                ctx.partner_id,
                view,
                cmd,
                now=ctx.now,
                programme=settings.programme,
                zone=settings.points_policy.zone,
            )
        async with ctx.hub.db.single_statement() as conn:
            await quotes.keep(conn, ctx.partner_id, found, ctx.now)
        return QuoteBasketPayload(quote=BasketQuote.of(found), errors=[])


@strawberry.type
class RewardQueries:
    @strawberry.field(
        extensions=scoped("rewards:redeem"),
        description="Rewards open in the coalition; with memberId (consent points:redeem), whether that member may "
        "claim each now, and why not.",
    )
    async def rewards(
        self, info: Info, first: int = 20, after: str | None = None, member_id: strawberry.ID | None = None
    ) -> RewardConnection:
        ctx, settings = info.context, info.context.hub.settings
        zone = settings.points_policy.zone
        async with ctx.hub.db.read() as conn:
            member = None
            if member_id is not None:
                view = await members.consented_member(conn, ctx.partner_id, str(member_id), "points:redeem", ctx.now)
                ctx.record_access(view.member_id, view.consent_pk, "points:redeem")
                member = view.member_id
            found = await catalogue.page(conn, ctx.now, zone, first=first, after=after, member_id=member)
        edges = [
            RewardEdge(
                cursor=cursors.encode(offer.reward.public_id),
                node=Reward.of(offer.reward),
                claimable=offer.refusal is None,
                reason=None if offer.refusal is None else RewardUnavailableReason[offer.refusal[0]],
                reason_message=None if offer.refusal is None else offer.refusal[1],
            )
            for offer in found.offers
        ]
        return RewardConnection(
            edges=edges, page_info=PageInfo.of([e.cursor for e in edges], has_next=found.has_next, after=after)
        )
