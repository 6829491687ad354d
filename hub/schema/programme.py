"""GraphQL for what the programme says about a member: tier (with its reasons) and purchase summary, each read
for a whole page of members at once."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from decimal import Decimal

import strawberry
from strawberry.types.nodes import SelectedField

from hub.consent.rule import ConsentRequired, MemberView
from hub.programme.config import Level
from hub.purchases import service as purchases
from hub.schema.batches import Batch, answer, argument, fields_of
from hub.schema.context import Context, Info
from hub.tiers import service as tiers


def yuan_of(fen: int) -> Decimal:
    return Decimal(fen).scaleb(-2)  # 523000 -> 5230.00 (a plain division would give 5.23E+3)


@strawberry.type(description="What a level gives at the till")
class TierBenefits:
    discount_rate: Decimal = strawberry.field(description="Price multiplier: 0.80 is 8折 (20 % off)")
    points_multiplier: Decimal
    birthday_gift: bool
    free_health_check: bool
    priority_purchase: bool


@strawberry.type
class TierLevel:
    level: int
    name: str
    threshold: Decimal = strawberry.field(description="Growth value (yuan) in the window that reaches this level")


@strawberry.type(description="Why the member is where they are, and what it takes to keep or climb")
class TierProgress:
    growth_value: Decimal = strawberry.field(description="Qualifying spend (yuan) net of refunds in the window")
    window_start: dt.datetime | None = strawberry.field(description="Start of the window; null for lifetime")
    next_level: TierLevel | None
    growth_to_next_level: Decimal
    growth_to_keep_level: Decimal = strawberry.field(
        description="More growth value needed (counted as the window will stand at reviewAt) to keep this level"
    )
    review_at: dt.datetime | None = strawberry.field(description="When the level is next reviewed for a downgrade")


@strawberry.type
class TierChange:
    from_level: int
    to_level: int
    reason: str
    at: dt.datetime


def tier_history_batch(first: int | None) -> Batch:
    first = 10 if first is None else first

    async def load(ctx: Context, views: Sequence[MemberView]) -> Sequence[list[tiers.Change] | ConsentRequired]:
        async with ctx.hub.db.read() as conn:
            return await tiers.histories_of(conn, views, first)

    return Batch(("tiers.history", first), load)


async def _standings(ctx: Context, views: Sequence[MemberView]) -> Sequence[tiers.Standing | ConsentRequired]:
    settings = ctx.hub.settings
    async with ctx.hub.db.read() as conn:
        return await tiers.standings_of(
            conn, views, settings.programme.at(ctx.now), ctx.now, settings.points_policy.zone
        )


STANDINGS = Batch(("tiers.standing",), _standings)


def tier_needs(selected: SelectedField) -> list[Batch]:
    """`Member.tier` and the `history` lists asked inside it."""
    history = [f for f in fields_of(selected.selections) if f.name == "history"]
    return [STANDINGS, *(tier_history_batch(argument(f, "first", int)) for f in history)]


@strawberry.type
class MemberTier:
    level: int
    name: str
    since: dt.datetime
    benefits: TierBenefits
    progress: TierProgress
    view: strawberry.Private[MemberView]

    @strawberry.field(description="Changes of level, newest first (at most 100).")
    def history(self, info: Info, first: int | None = 10) -> list[TierChange]:
        changes = answer(info, tier_history_batch(first), self.view)
        return [TierChange(from_level=c.from_level, to_level=c.to_level, reason=c.reason, at=c.at) for c in changes]


# A level's description is the same for every member who holds it: built once per level, shared by a page.
@functools.cache
def _level(level: Level) -> TierLevel:
    return TierLevel(level=level.level, name=level.name, threshold=level.threshold.quantize(Decimal("0.01")))


@functools.cache
def _benefits(level: Level) -> TierBenefits:
    return TierBenefits(
        discount_rate=level.discount_rate,
        points_multiplier=level.points_multiplier,
        birthday_gift=level.birthday_gift,
        free_health_check=level.free_health_check,
        priority_purchase=level.priority_purchase,
    )


def member_tier(info: Info, view: MemberView) -> MemberTier:
    standing = answer(info, STANDINGS, view)
    current, progress = standing.state, standing.progress
    version = info.context.hub.settings.programme.at(info.context.now)
    level = version.tiers.by_number(current.level)
    return MemberTier(
        level=level.level,
        name=level.name,
        since=current.since,
        benefits=_benefits(level),
        progress=TierProgress(
            growth_value=yuan_of(progress.growth),
            window_start=progress.window_start,
            next_level=_level(progress.next_level) if progress.next_level else None,
            growth_to_next_level=yuan_of(progress.growth_to_next),
            growth_to_keep_level=yuan_of(progress.growth_to_keep),
            review_at=progress.review_at,
        ),
        view=view,
    )


@strawberry.type
class CategorySpend:
    category: str
    spend: Decimal


@strawberry.type(description="The member's purchases at every partner, within your consent's data window")
class PurchaseSummary:
    months: int
    since: dt.datetime
    spend: Decimal = strawberry.field(description="Yuan, net of refunds")
    visits: int
    categories: list[CategorySpend]


def summary_batch(months: int | None) -> Batch:
    months = 12 if months is None else months

    async def load(ctx: Context, views: Sequence[MemberView]) -> Sequence[purchases.Summary | ConsentRequired]:
        async with ctx.hub.db.read() as conn:
            return await purchases.summaries_of(conn, views, months, ctx.now, ctx.hub.settings.points_policy.zone)

    return Batch(("purchases.summary", months), load)


def summary_needs(selected: SelectedField) -> list[Batch]:
    return [summary_batch(argument(selected, "months", int))]


def purchase_summary(info: Info, view: MemberView, months: int | None) -> PurchaseSummary:
    found = answer(info, summary_batch(months), view)
    return PurchaseSummary(
        months=found.months,
        since=found.since,
        spend=yuan_of(found.spend),
        visits=found.visits,
        categories=[CategorySpend(category=c, spend=yuan_of(s)) for c, s in found.categories],
    )
