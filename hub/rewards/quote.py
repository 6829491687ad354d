"""The till's quote: what a basket costs this member, line by line, before the receipt prints.

`plan` is pure arithmetic, in fen and whole points, in a fixed order:
1. the tier discount (the level's price multiplier, rounded to the fen) on every offsettable line;
2. each accepted coupon, on the offsettable lines of its categories, spread over them by largest remainder;
3. points as cash: at most the programme's share of what offsettable lines still cost, in whole steps, never
   more than the member's available points; their value spread the same way;
4. the points the basket earns: the programme's earning rule (`earning.earn`) on what each line is paid in money.
So no line's amount to pay goes below zero, and the basket's never does.

`prepare` reads and plans; `keep` stores the answer for 5 minutes under the basket's hash, in one statement.
Recording the purchase with the quote's id (`quoted`) writes exactly the quoted lines and points, or refuses with
QUOTE_EXPIRED or BASKET_CHANGED.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, ClassVar

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.consent.rule import MemberView
from hub.errors import DomainError
from hub.ids import new_id
from hub.points.ledger import MEMBER_AVAILABLE, member_account
from hub.points.models import ledger_account
from hub.programme import earning
from hub.programme.config import Level, Programme, Version
from hub.rewards import catalogue, claims
from hub.rewards.codes import RewardKey, parse
from hub.rewards.models import pos_quote, reward_claim
from hub.tiers import service as tiers

QUOTE_TTL = timedelta(minutes=5)
MAX_COUPONS = 10


@dataclass(frozen=True)
class Coupon:
    claim_id: str
    code_last4: str
    name: str
    kind: str
    value: int  # fen: face value × quantity (a percentage coupon's cap)
    percent_off: int | None
    categories: tuple[str, ...]


@dataclass(frozen=True)
class LinePlan:
    sku: str
    amount: int  # fen, list price
    tier_discount: int
    coupon_discount: int
    points_discount: int
    to_pay: int
    qualifying: bool
    points: int
    rule: str  # how it earns, in words


@dataclass(frozen=True)
class CouponEffect:
    claim_id: str
    code_last4: str
    name: str
    kind: str
    amount: int  # fen off the basket (0 for a gift or service: hand it over)


@dataclass(frozen=True)
class Refusal:
    code: str  # what the till typed, or the claim's last four symbols
    reason: str  # INVALID_CODE, CLAIM_NOT_FOUND, CLAIM_REDEEMED, CLAIM_EXPIRED, CLAIM_VOIDED, NO_ELIGIBLE_LINES, ...
    message: str


@dataclass(frozen=True)
class Plan:
    level: int
    tier_name: str
    tier_reason: str
    lines: list[LinePlan]
    coupons: list[CouponEffect]
    refused: list[Refusal]
    max_points: int
    max_points_value: int
    points_used: int
    points_value: int
    amount: int
    to_pay: int
    points_earned: int
    qualifying: int
    earn_rule: str


def _zhe(rate: Decimal) -> str:
    """0.7 → "7折", 0.85 → "8.5折"."""
    return f"{(rate * 10).normalize():f}折"


def _spread(plans: list[dict[str, Any]], eligible: list[int], amount: int, key: str) -> None:
    split = earning.shares([plans[i]["to_pay"] for i in eligible], amount)
    for i, share in zip(eligible, split, strict=True):
        plans[i][key] += share
        plans[i]["to_pay"] -= share


def plan(
    version: Version,
    level: Level,
    birthday_month: bool,
    lines: Sequence[earning.Line],
    coupons: Sequence[Coupon],
    points_to_redeem: int | None,
    balance: int,
    refused: Sequence[Refusal] = (),
) -> Plan:
    """The quote's arithmetic (module docstring). Raises OFFSET_CAP_EXCEEDED when `points_to_redeem` is more
    than may be used."""
    rate = level.discount_rate
    plans = []
    for line in lines:
        price = int((line.amount * rate).to_integral_value(rounding=ROUND_HALF_UP)) if line.offsettable else line.amount
        plans.append(
            {"tier_discount": line.amount - price, "coupon_discount": 0, "points_discount": 0, "to_pay": price}
        )
    refusals = list(refused)
    effects = []
    for coupon in coupons:
        eligible = [
            i
            for i, line in enumerate(lines)
            if line.offsettable and (not coupon.categories or line.category in coupon.categories)
        ]
        base = sum(plans[i]["to_pay"] for i in eligible)
        if coupon.kind != "COUPON":
            effects.append(CouponEffect(coupon.claim_id, coupon.code_last4, coupon.name, coupon.kind, 0))
            continue
        if base == 0:
            refusals.append(Refusal(coupon.code_last4, "NO_ELIGIBLE_LINES", "no line of this basket may take it"))
            continue
        off = coupon.value if coupon.percent_off is None else min(coupon.value, base * coupon.percent_off // 100)
        off = min(off, base)
        _spread(plans, eligible, off, "coupon_discount")
        effects.append(CouponEffect(coupon.claim_id, coupon.code_last4, coupon.name, coupon.kind, off))

    rule = version.offset
    offsettable = [i for i, line in enumerate(lines) if line.offsettable]
    cap = int(sum(plans[i]["to_pay"] for i in offsettable) * rule.max_share)
    usable = balance - balance % rule.step_points
    max_points = min(usable, rule.points_for(cap))
    used = points_to_redeem or 0
    if used < 0 or used % rule.step_points:
        raise DomainError(
            "INVALID_INPUT",
            f"pointsToRedeem must be a whole number of {rule.step_points}-point steps",
            "pointsToRedeem",
        )
    if used > max_points:
        raise DomainError(
            "OFFSET_CAP_EXCEEDED",
            f"at most {max_points} points may pay for this basket (worth {earning.yuan(rule.value(max_points))} yuan)",
            "pointsToRedeem",
        )
    _spread(plans, offsettable, rule.value(used), "points_discount")

    paid = [
        earning.Line(line.sku, line.category, p["to_pay"], line.quantity, line.prescription, line.insurer_paid)
        for line, p in zip(lines, plans, strict=True)
    ]
    per_line, points, qualifying = earning.earn(version, paid, level, birthday_month)
    rules = version.earning
    multiplier = level.points_multiplier * (rules.birthday_month_multiplier if birthday_month else 1)
    earn_rule = (
        f"programme from {version.effective_from.date()}: {rules.points_per_yuan} point a yuan paid, "
        f"× {multiplier} ({level.name}{', birthday month' if birthday_month else ''})"
    )
    line_plans = [
        LinePlan(
            sku=line.sku,
            amount=line.amount,
            tier_discount=p["tier_discount"],
            coupon_discount=p["coupon_discount"],
            points_discount=p["points_discount"],
            to_pay=p["to_pay"],
            qualifying=e.qualifying,
            points=e.points,
            rule=_line_rule(version, line, e.qualifying),
        )
        for line, p, e in zip(lines, plans, per_line, strict=True)
    ]
    return Plan(
        level=level.level,
        tier_name=level.name,
        tier_reason=f"{level.name}: {_zhe(rate)} on discountable lines" if rate < 1 else f"{level.name}: no discount",
        lines=line_plans,
        coupons=effects,
        refused=refusals,
        max_points=max_points,
        max_points_value=rule.value(max_points),
        points_used=used,
        points_value=rule.value(used),
        amount=sum(line.amount for line in lines),
        to_pay=sum(p.to_pay for p in line_plans),
        points_earned=points,
        qualifying=qualifying,
        earn_rule=earn_rule,
    )


def _line_rule(version: Version, line: earning.Line, qualifying: bool) -> str:
    if not qualifying:
        return "earns nothing: " + ("prescription" if line.prescription else "insurer-paid")
    multiplier = version.earning.category_multipliers.get(line.category)
    return f"category {line.category} × {multiplier}" if multiplier is not None else "standard rate"


def basket_hash(member_id: int, store_id: str | None, lines: Sequence[earning.Line]) -> str:
    canonical = {"member": member_id, "store": store_id, "lines": [asdict(line) for line in lines]}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


# -- the quote -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QuoteBasket:
    COMMAND: ClassVar[str] = "quoteBasket"
    member_id: str
    store_id: str | None
    lines: tuple[Any, ...]
    coupon_codes: tuple[str, ...] = ()
    points_to_redeem: int | None = None


@dataclass(frozen=True)
class Quote:
    public_id: str
    member_id: int
    store_id: str | None
    basket_hash: str
    expires_at: datetime
    plan: Plan


async def _coupons(
    conn: AsyncConnection, key: RewardKey, partner_public_id: str, member_id: int, codes: Sequence[str], now: datetime
) -> tuple[list[Coupon], list[Refusal]]:
    accepted: list[Coupon] = []
    refused: list[Refusal] = []
    seen: set[str] = set()
    for i, text in enumerate(codes):
        try:
            body = parse(text, f"couponCodes[{i}]")
        except DomainError as bad:
            refused.append(Refusal(text[:20], bad.code, bad.message))
            continue
        if body in seen:
            refused.append(Refusal(body[-4:], "DUPLICATE_CODE", "this code is already in the basket"))
            continue
        seen.add(body)
        row = (
            await conn.execute(select(reward_claim).where(reward_claim.c.code_hash == key.lookup_hash(body)))
        ).one_or_none()
        found = None if row is None else await catalogue.reward_by_id(conn, row.reward_id)
        if row is None or row.member_id != member_id or found is None or not found.redeemable_at(partner_public_id):
            refused.append(
                Refusal(body[-4:], "CLAIM_NOT_FOUND", "no claim of this member with this code is redeemable here")
            )
            continue
        try:
            claims.refuse_state(row, now, "couponCodes")
        except DomainError as stale:
            refused.append(Refusal(body[-4:], stale.code, stale.message))
            continue
        accepted.append(
            Coupon(
                row.public_id, row.code_last4, found.name, found.kind, row.value, found.percent_off, found.categories
            )
        )
    return accepted, refused


async def available_points(conn: AsyncConnection, member_id: int) -> int:
    code = member_account(MEMBER_AVAILABLE, member_id).code
    return int(await conn.scalar(select(ledger_account.c.balance).where(ledger_account.c.code == code)) or 0)


async def prepare(
    conn: AsyncConnection,
    key: RewardKey,
    partner_id: int,
    view: MemberView,
    cmd: QuoteBasket,
    *,
    now: datetime,
    programme: Programme,
    zone: Any,
) -> Quote:
    """Quote a basket for a member the till may record purchases for (`purchases:write`); coupons and points
    need `points:redeem` too. Reads only: `keep` writes the quote."""
    lines = earning.parse_lines(cmd.lines)
    if cmd.store_id is not None and len(cmd.store_id) > 100:
        raise DomainError("INVALID_INPUT", "storeId must be at most 100 characters", "storeId")
    if len(cmd.coupon_codes) > MAX_COUPONS:
        raise DomainError("INVALID_INPUT", f"at most {MAX_COUPONS} coupon codes", "couponCodes")
    if cmd.coupon_codes or cmd.points_to_redeem:
        view.require("points:redeem")
    version = programme.at(now)
    level = version.tiers.by_number((await tiers.state(conn, view.member_id)).level)
    birthday = earning.in_birthday_month(view.birthday, now, zone)
    coupons: list[Coupon] = []
    refused: list[Refusal] = []
    if cmd.coupon_codes:
        here = await claims.partner_public_id(conn, partner_id)
        coupons, refused = await _coupons(conn, key, here, view.member_id, cmd.coupon_codes, now)
    balance = await available_points(conn, view.member_id) if view.permits("points:redeem") else 0
    planned = plan(version, level, birthday, lines, coupons, cmd.points_to_redeem, balance, refused)
    return Quote(
        public_id=new_id("quo", 12),
        member_id=view.member_id,
        store_id=cmd.store_id,
        basket_hash=basket_hash(view.member_id, cmd.store_id, lines),
        expires_at=now + QUOTE_TTL,
        plan=planned,
    )


async def keep(conn: AsyncConnection, partner_id: int, found: Quote, now: datetime) -> None:
    """The quote's one write, a statement of its own."""
    await conn.execute(
        insert(pos_quote).values(
            public_id=found.public_id,
            partner_id=partner_id,
            member_id=found.member_id,
            store_id=found.store_id,
            basket_hash=found.basket_hash,
            answer=_stored(found.plan),
            expires_at=found.expires_at,
            created_at=now,
        )
    )


def _stored(planned: Plan) -> dict[str, Any]:
    """What recording against the quote needs back: per line what is paid, whether it qualifies, its points."""
    return {
        "level": planned.level,
        "lines": [[line.to_pay, line.qualifying, line.points] for line in planned.lines],
        "points": planned.points_earned,
        "qualifying": planned.qualifying,
        "maxPoints": planned.max_points,
        "pointsUsed": planned.points_used,
        "coupons": {effect.claim_id: effect.amount for effect in planned.coupons},
    }


@dataclass(frozen=True)
class Quoted:
    """A stored quote, checked for the basket that is being recorded or paid."""

    id: int
    level: int
    lines: list[tuple[int, bool, int]]  # (to pay, qualifying, points) per line
    points: int
    qualifying: int
    max_points: int
    coupons: dict[str, int]


async def quoted(
    conn: AsyncConnection,
    partner_id: int,
    member_id: int,
    quote_id: str,
    now: datetime,
    *,
    store_id: str | None = None,
    lines: Sequence[earning.Line] | None = None,
) -> Quoted:
    """The caller's quote for this member, unexpired, and (with `lines`) for exactly this basket."""
    row = (
        await conn.execute(
            select(pos_quote).where(
                pos_quote.c.public_id == quote_id,
                pos_quote.c.partner_id == partner_id,
                pos_quote.c.member_id == member_id,
            )
        )
    ).one_or_none()
    if row is None:
        raise DomainError("QUOTE_NOT_FOUND", "no quote of yours for this member with this id", "quoteId")
    if row.expires_at <= now:
        raise DomainError("QUOTE_EXPIRED", "the quote has expired: quote the basket again", "quoteId")
    if lines is not None and basket_hash(member_id, store_id, lines) != row.basket_hash:
        raise DomainError("BASKET_CHANGED", "this is not the basket that was quoted: quote it again", "quoteId")
    answer = row.answer
    return Quoted(
        id=row.id,
        level=answer["level"],
        lines=[(int(a), bool(q), int(p)) for a, q, p in answer["lines"]],
        points=answer["points"],
        qualifying=answer["qualifying"],
        max_points=answer["maxPoints"],
        coupons=answer["coupons"],
    )


async def check_points(
    conn: AsyncConnection, partner_id: int, member_id: int, quote_id: str, points: int, now: datetime
) -> None:
    """`redeemPoints` for a quoted basket: never more than the quote's cap."""
    found = await quoted(conn, partner_id, member_id, quote_id, now)
    if points > found.max_points:
        raise DomainError(
            "OFFSET_CAP_EXCEEDED", f"at most {found.max_points} points may pay for the quoted basket", "points"
        )
