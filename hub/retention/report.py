"""The programme's measured results for one partner (the first seed's 效果评估: retention, repurchase, active
members), over its own members who let it profile them.

- **Cohorts**: members by the month of their first purchase at the partner (from `start` to `end`), and the share of
  each cohort that bought again in each later month up to `end`.
- **Active** members bought at least once from `start` to `end`; the **repurchase rate** is the share of them with
  two purchase days or more in that time; **churned** members had bought before `start` and not since.
- **Mean P(alive)** and the **segments** are those of the partner's current scores.

No aggregate singles anyone out: a cohort, a segment or a total of fewer than `MIN_GROUP` members is reported as
null with a flag (a rate or a mean is suppressed with the count it rests on).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.consent import rule
from hub.consent.models import consent
from hub.errors import DomainError
from hub.members.models import member
from hub.retention import model
from hub.retention.models import retention_fit, retention_score
from hub.retention.profiling import PERMISSION
from hub.retention.scoring import SEGMENT_NAMES
from hub.retention.summary import (
    EPOCH,
    bought,
    month_number,
    month_of,
    month_start,
    offset_of,
    repeat_days_by_week,
    summarise,
)

MIN_GROUP = 10
MAX_DAYS = 5 * 366  # five years, leap days included


@dataclass(frozen=True)
class Cohort:
    month: date
    size: int | None  # None: suppressed
    retained: list[float] | None  # share buying in each later month, 1 .. up to the report's end (none if empty)
    suppressed: bool


@dataclass(frozen=True)
class SegmentCount:
    segment: str
    members: int | None
    suppressed: bool


@dataclass(frozen=True)
class Report:
    start: date
    end: date
    cohorts: list[Cohort]
    active_members: int | None
    repurchase_rate: float | None
    churned_members: int | None
    scored_members: int | None
    mean_p_alive: float | None
    segments: list[SegmentCount]
    suppressed: list[str]  # the totals reported as null because too few members stand behind them


def _window(start: date, end: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    if end < start:
        raise DomainError("INVALID_INPUT", "the report ends before it starts", "to")
    if (end - start).days > MAX_DAYS:
        raise DomainError("INVALID_INPUT", "a report covers five years at most", "to")
    return datetime.combine(start, time(), zone), datetime.combine(end + timedelta(days=1), time(), zone)


def _kept(count: int) -> int | None:
    """The count, unless so few (but some) members stand behind it that it could single one out."""
    return count if count >= MIN_GROUP or count == 0 else None


async def report(
    conn: AsyncConnection, partner_id: int, start: date, end: date, zone: ZoneInfo, *, now: datetime
) -> Report:
    since, until = _window(start, end, zone)
    until = min(until, now)
    cohorts = await _cohorts(conn, partner_id, start, end, until, zone, now)
    during = await summarise(conn, partner_id, until, zone, now=now, since=since)
    before = await summarise(conn, partner_id, since, zone, now=now)
    active = len(during)
    repeat = int((during.days >= 2).sum())
    churned = int((~np.isin(before.member_id, during.member_id)).sum())
    scored, mean_p_alive, segments = await _current_scores(conn, partner_id, now)
    suppressed = []
    if _kept(active) is None:
        suppressed += ["activeMembers", "repurchaseRate"]
    if _kept(churned) is None:
        suppressed.append("churnedMembers")
    if _kept(scored) is None:
        suppressed += ["scoredMembers", "meanPAlive"]
    # (With no one at all, a count is 0 and a rate or mean has nothing to rest on: null, not suppressed.)
    return Report(
        start=start,
        end=end,
        cohorts=cohorts,
        active_members=_kept(active),
        repurchase_rate=repeat / active if active >= MIN_GROUP else None,
        churned_members=_kept(churned),
        scored_members=_kept(scored),
        mean_p_alive=mean_p_alive if scored >= MIN_GROUP else None,
        segments=segments,
        suppressed=suppressed,
    )


async def _cohorts(
    conn: AsyncConnection, partner_id: int, start: date, end: date, until: datetime, zone: ZoneInfo, now: datetime
) -> list[Cohort]:
    """Members per (month of first purchase, month bought in), in one statement."""
    months = bought(conn.dialect.name, partner_id, month_of, until, offset_of(until, zone), now)
    firsts = select(months.c.member_id, func.min(months.c.day).label("first")).group_by(months.c.member_id).subquery()
    first_month, last_month = month_number(start), month_number(end)
    rows = await conn.execute(
        select(firsts.c.first, months.c.day, func.count())
        .join(firsts, firsts.c.member_id == months.c.member_id)
        .where(firsts.c.first.between(first_month, last_month), months.c.day <= last_month)
        .group_by(firsts.c.first, months.c.day)
    )
    buying: dict[int, dict[int, int]] = {}
    for cohort, month, count in rows:
        buying.setdefault(int(cohort), {})[int(month)] = int(count)
    found = []
    for cohort in range(first_month, last_month + 1):
        counts = buying.get(cohort, {})
        size = counts.get(cohort, 0)
        if _kept(size) is None:
            found.append(Cohort(month_start(cohort), None, None, True))
            continue
        retained = [counts.get(later, 0) / size for later in range(cohort + 1, last_month + 1)] if size else []
        found.append(Cohort(month_start(cohort), size, retained, False))
    return found


async def _current_scores(
    conn: AsyncConnection, partner_id: int, now: datetime
) -> tuple[int, float | None, list[SegmentCount]]:
    rows = await conn.execute(
        select(retention_score.c.segment, func.count(), func.avg(retention_score.c.p_alive))
        .join(
            consent,
            (consent.c.member_id == retention_score.c.member_id)
            & (consent.c.partner_id == retention_score.c.partner_id),
        )
        .join(member, member.c.id == retention_score.c.member_id)
        .where(
            retention_score.c.partner_id == partner_id,
            rule.reachable(now),
            rule.consent_grants(conn.dialect.name, PERMISSION),
        )
        .group_by(retention_score.c.segment)
    )
    counts: dict[str, tuple[int, float]] = {r[0]: (int(r[1]), float(r[2])) for r in rows}
    scored = sum(n for n, _ in counts.values())
    mean = sum(n * p for n, p in counts.values()) / scored if scored else None
    sizes = {name: counts.get(name, (0, 0.0))[0] for name in SEGMENT_NAMES}
    segments = [SegmentCount(name, _kept(n), _kept(n) is None) for name, n in sizes.items()]
    return scored, mean, segments


@dataclass(frozen=True)
class WeeklyCheck:
    """The latest fit against what happened: repeat purchase days per week, and the model's expectation of them
    given when each member first bought (lifetimes' "tracking" plot)."""

    weeks: list[date]
    actual: list[int]
    expected: list[float]


async def weekly_check(conn: AsyncConnection, partner_id: int, zone: ZoneInfo, *, now: datetime) -> WeeklyCheck | None:
    fit = (
        await conn.execute(
            select(retention_fit.c.params, retention_fit.c.observed_until)
            .where(retention_fit.c.partner_id == partner_id)
            .order_by(retention_fit.c.id.desc())
            .limit(1)
        )
    ).one_or_none()
    if fit is None:
        return None
    as_of = fit.observed_until
    members = await summarise(conn, partner_id, as_of, zone, now=now)
    actual = await repeat_days_by_week(conn, partner_id, as_of, zone, now=now)
    if not len(members):
        return None
    params = model.BgNbd(**fit.params)
    firsts, counts = np.unique(members.first_day, return_counts=True)
    first_week, last_week = int(firsts.min()) // 7, members.as_of_day // 7
    weeks = np.arange(first_week, last_week + 1)
    # Days since each first purchase (columns) at each week's start and end (rows), the last week cut at as_of.
    starts = (weeks[:, None] * 7 - firsts[None, :]).astype(np.float64)
    through = np.minimum(starts + 7.0, (members.as_of_day - firsts[None, :]).astype(np.float64))
    cumulative = model.expected_purchases_unconditional
    expected = cumulative(params, through / 7.0) - cumulative(params, starts / 7.0)
    per_week = (np.clip(expected, 0, None) * counts[None, :]).sum(axis=1)
    return WeeklyCheck(
        weeks=[EPOCH + timedelta(days=int(w) * 7) for w in weeks],
        actual=[actual.get(int(w), 0) for w in weeks],
        expected=[float(e) for e in per_week],
    )
