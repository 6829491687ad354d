"""GraphQL for retention (scope `analytics:read`): a member's score on Member, the partner's at-risk members, and
its retention report. Every number about a member needs that member's consent to `analytics:read`; the report's
aggregates cover only such members and suppress any group too small to hide one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types.nodes import SelectedField

from hub.consent.rule import ConsentRequired, MemberView
from hub.retention import queries
from hub.retention import report as reports
from hub.retention.profiling import PERMISSION
from hub.schema.batches import Batch, already_read, answer
from hub.schema.context import Context, Info
from hub.schema.pagination import PageInfo
from hub.schema.permissions import scoped
from hub.schema.scalars import BigInt

if TYPE_CHECKING:
    from hub.schema.members import Member


@strawberry.enum(description="RFM segments, by the first rule that holds (docs: hub/retention/scoring.py)")
class RetentionSegment(Enum):
    CHAMPIONS = "champions"
    LOYAL = "loyal"
    CANNOT_LOSE = "cannot_lose"
    AT_RISK = "at_risk"
    NEW = "new"
    PROMISING = "promising"
    NEEDS_ATTENTION = "needs_attention"
    HIBERNATING = "hibernating"
    LOST = "lost"


@strawberry.type(description="Quintiles 1-5 among your scored members, 5 best (most recent, most often, most spent)")
class Rfm:
    r: int
    f: int
    m: int


@strawberry.type(description="The fit that made a score: BG/NBD on your members' purchases")
class RetentionModel:
    id: strawberry.ID
    fitted_at: dt.datetime
    members: int


@strawberry.type(description="What the hub's churn model says of the member's relationship with you.")
class MemberRetention:
    p_alive: float = strawberry.field(description="Probability the member is still your customer (BG/NBD)")
    expected_purchases_90d: float = strawberry.field(description="Purchase days the model expects in the next 90")
    value_12m: BigInt | None = strawberry.field(
        description="Expected net spend (fen) over the next 12 months, discounted 1 % a month; null when your "
        "members' spend does not support the Gamma-Gamma model"
    )
    recency_days: int = strawberry.field(description="Days since the last purchase at your shops")
    frequency: int = strawberry.field(description="Purchase days at your shops")
    monetary: BigInt = strawberry.field(description="Net spend at your shops (fen)")
    segment: RetentionSegment
    rfm: Rfm
    at_risk: bool = strawberry.field(
        description="Below your threshold, or (never came back) away twice the usual gap between purchases"
    )
    scored_at: dt.datetime
    model: RetentionModel


def _of(score: queries.Score) -> MemberRetention:
    return MemberRetention(
        p_alive=score.p_alive,
        expected_purchases_90d=score.expected_purchases_90d,
        value_12m=BigInt(score.value_12m) if score.value_12m is not None else None,
        recency_days=score.recency_days,
        frequency=score.frequency,
        monetary=BigInt(score.monetary),
        segment=RetentionSegment(score.segment),
        rfm=Rfm(r=score.r, f=score.f, m=score.m),
        at_risk=score.at_risk,
        scored_at=score.scored_at,
        model=RetentionModel(id=strawberry.ID(score.fit.public_id), fitted_at=score.fit.fitted_at,
                             members=score.fit.members),
    )  # fmt: skip


async def _scores(ctx: Context, views: Sequence[MemberView]) -> Sequence[queries.Score | ConsentRequired | None]:
    async with ctx.hub.db.read() as conn:
        return await queries.scores_of(conn, ctx.partner_id, views)


SCORES = Batch(("retention.scores",), _scores)


def retention_needs(selected: SelectedField) -> list[Batch]:
    return [SCORES]


def member_retention(info: Info, view: MemberView) -> MemberRetention | None:
    """Null until the member is first scored (the worker's daily run)."""
    found = answer(info, SCORES, view)
    return None if found is None else _of(found)


@strawberry.type
class AtRiskMemberEdge:
    cursor: str
    node: Annotated["Member", strawberry.lazy("hub.schema.members")]  # noqa: UP037


@strawberry.type
class AtRiskMemberConnection:
    edges: list[AtRiskMemberEdge]
    page_info: PageInfo


@strawberry.type(description="Members by the month of their first purchase at your shops")
class RetentionCohort:
    month: dt.date = strawberry.field(description="The first day of the cohort's month")
    size: int | None = strawberry.field(description="Null when fewer than 10 (suppressed)")
    retained: list[float] | None = strawberry.field(
        description="The share of the cohort buying in each later month, up to the report's end"
    )
    suppressed: bool


@strawberry.type
class RetentionSegmentCount:
    segment: RetentionSegment
    members: int | None = strawberry.field(description="Null when fewer than 10 (suppressed)")
    suppressed: bool


@strawberry.type(
    description="Your programme's results over your members who consented to analytics: cohorts, activity, "
    "repurchase, churn and the current scores. Any group of fewer than 10 members is null and flagged."
)
class RetentionReport:
    from_: dt.date = strawberry.field(name="from")
    to: dt.date
    cohorts: list[RetentionCohort]
    active_members: int | None = strawberry.field(description="Bought at least once in the period")
    repurchase_rate: float | None = strawberry.field(
        description="Share of the active members with two purchase days or more in the period"
    )
    churned_members: int | None = strawberry.field(description="Had bought before the period, not during it")
    scored_members: int | None
    mean_p_alive: float | None
    segments: list[RetentionSegmentCount]
    suppressed: list[str] = strawberry.field(description="The totals above that are null because too few members")

    @classmethod
    def of(cls, found: reports.Report) -> RetentionReport:
        return cls(
            from_=found.start,
            to=found.end,
            cohorts=[RetentionCohort(month=c.month, size=c.size, retained=c.retained, suppressed=c.suppressed)
                     for c in found.cohorts],
            active_members=found.active_members,
            repurchase_rate=found.repurchase_rate,
            churned_members=found.churned_members,
            scored_members=found.scored_members,
            mean_p_alive=found.mean_p_alive,
            segments=[RetentionSegmentCount(segment=RetentionSegment(s.segment), members=s.members,
                                            suppressed=s.suppressed) for s in found.segments],
            suppressed=found.suppressed,
        )  # fmt: skip


@strawberry.type
class RetentionQueries:
    @strawberry.field(
        extensions=scoped(PERMISSION),
        description="Your members the churn model finds at risk, most valuable first (12-month value, else spend).",
    )
    async def at_risk_members(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description="At most 100; 50 if omitted")] = None,
        after: str | None = None,
        max_p_alive: Annotated[
            float | None, strawberry.argument(description="Only members whose pAlive is at most this")
        ] = None,
    ) -> AtRiskMemberConnection:
        from hub.schema.members import handing_out

        ctx = info.context
        async with ctx.hub.db.read() as conn:
            page = await queries.at_risk(
                conn, ctx.partner_id, ctx.now, first=50 if first is None else first, after=after,
                max_p_alive=max_p_alive,
            )  # fmt: skip
        views = [view for view, _ in page.members]
        # Being on this list says something of each member: it is logged as read under `analytics:read`, and
        # their scores are already read for `node { retention }`.
        for view, _ in page.members:
            ctx.record_access(view.member_id, view.consent_pk, PERMISSION)
        already_read(ctx, SCORES, page.members)
        nodes = await handing_out(info, views, "edges", "node")
        edges = [AtRiskMemberEdge(cursor=c, node=n) for c, n in zip(page.cursors, nodes, strict=True)]
        return AtRiskMemberConnection(
            edges=edges, page_info=PageInfo.of([e.cursor for e in edges], has_next=page.has_next, after=after)
        )

    @strawberry.field(extensions=scoped(PERMISSION), description="Your retention report, months from..to.")
    async def retention_report(
        self,
        info: Info,
        from_: Annotated[dt.date, strawberry.argument(name="from")],
        to: dt.date,
    ) -> RetentionReport:
        ctx = info.context
        async with ctx.hub.db.read() as conn:
            found = await reports.report(
                conn, ctx.partner_id, from_, to, ctx.hub.settings.points_policy.zone, now=ctx.now
            )
        return RetentionReport.of(found)
