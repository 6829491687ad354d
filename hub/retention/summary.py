"""Each member's buying at one partner, as the models need it, from one SQL aggregation over that partner's
purchases: purchase days (several purchases on one day count once, as lifetimes' summary does), the first and last
of them, net spend in all and on the first day. Only members whose consent to the partner is in force now and grants
`analytics:read` are summarised, and only their purchases within the consent's data window: scoring is profiling,
and they allowed it.

Days are counted in the programme's time zone (its offset at the end of observation: a zone that changes offset
in the window moves a purchase near midnight by an hour at most)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import BigInteger, ColumnElement, Date, Integer, Subquery, and_, cast, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.consent import rule
from hub.consent.models import consent
from hub.members.models import member
from hub.purchases.models import purchase
from hub.retention import model
from hub.retention.profiling import PERMISSION

DAY = 86_400
EPOCH = date(1970, 1, 1)  # day numbers count from it, in the programme's time zone
PACK = 2**40  # a day's spend in fen stays below 2^40 (11 billion yuan); day numbers times 2^40 fit in 63 bits
WEEK_DAYS = 7.0


@dataclass(frozen=True)
class Summaries:
    """One row per member, as arrays (a million members are a million floats, not a million objects)."""

    member_id: NDArray[np.int64]
    days: NDArray[np.int64]  # purchase days
    first_day: NDArray[np.int64]  # day numbers since 1970-01-01, local
    last_day: NDArray[np.int64]
    spend: NDArray[np.int64]  # fen, net of refunds
    first_spend: NDArray[np.int64]
    as_of_day: int

    @property
    def x(self) -> NDArray[np.float64]:
        return (self.days - 1).astype(np.float64)

    @property
    def t_x(self) -> NDArray[np.float64]:
        return (self.last_day - self.first_day) / WEEK_DAYS

    @property
    def T(self) -> NDArray[np.float64]:
        return (self.as_of_day - self.first_day) / WEEK_DAYS

    @property
    def recency_days(self) -> NDArray[np.int64]:
        return self.as_of_day - self.last_day

    @property
    def repeat_spend(self) -> NDArray[np.float64]:
        """Mean net spend of the repeat purchase days (0 for a member who never came back)."""
        repeats = self.days - 1
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = (self.spend - self.first_spend) / repeats
        return np.where(repeats > 0, mean, 0.0)

    def patterns(self) -> tuple[model.Patterns, NDArray[np.intp]]:
        """The members grouped by (x, t_x, T), and each member's group."""
        return model.Patterns.of_days(self.days - 1, self.last_day - self.first_day, self.as_of_day - self.first_day)

    def __len__(self) -> int:
        return len(self.member_id)


def _day(dialect: str, column: ColumnElement[datetime], offset: int) -> ColumnElement[int]:
    """The local day number of an instant: whole days since 1970-01-01 in the zone's offset."""
    if dialect == "postgresql":
        # Date arithmetic, not EXTRACT(epoch): that is numeric since PostgreSQL 14, slow over millions of rows.
        local = func.timezone("UTC", column) + func.make_interval(0, 0, 0, 0, 0, 0, offset)
        return cast(cast(local, Date) - literal(EPOCH, Date), BigInteger)
    return cast((cast(func.strftime("%s", column), Integer) + offset) / DAY, BigInteger)


def month_of(dialect: str, column: ColumnElement[datetime], offset: int) -> ColumnElement[int]:
    """The local month number of an instant: year × 12 + month − 1."""
    if dialect == "postgresql":
        local = func.timezone("UTC", column) + func.make_interval(0, 0, 0, 0, 0, 0, offset)
        return cast(func.extract("year", local) * 12 + func.extract("month", local) - 1, BigInteger)
    shift = f"{offset:+d} seconds"
    year = cast(func.strftime("%Y", column, shift), Integer)
    return cast(year * 12 + cast(func.strftime("%m", column, shift), Integer) - 1, BigInteger)


def month_number(moment: date) -> int:
    return moment.year * 12 + moment.month - 1


def month_start(number: int) -> date:
    return date(number // 12, number % 12 + 1, 1)


def offset_of(as_of: datetime, zone: ZoneInfo) -> int:
    return int((as_of.astimezone(zone).utcoffset() or timedelta(0)).total_seconds())


def bought(
    dialect: str,
    partner_id: int,
    period: Callable[[str, ColumnElement[datetime], int], ColumnElement[int]],
    as_of: datetime,
    offset: int,
    now: datetime,
    since: datetime | None = None,
) -> Subquery:
    """(member_id, day or month, spend): each consenting member's purchase days (or months) at the partner, in
    [since, as_of), within the consent's data window; a purchase refunded in full was no visit."""
    day = period(dialect, purchase.c.occurred_at, offset).label("day")
    window = [
        purchase.c.partner_id == partner_id,
        purchase.c.occurred_at < as_of,
        purchase.c.refunded < purchase.c.amount,
        rule.reachable(now),
        rule.consent_grants(dialect, PERMISSION),
        or_(consent.c.data_window_from.is_(None), purchase.c.occurred_at >= consent.c.data_window_from),
    ]
    if since is not None:
        window.append(purchase.c.occurred_at >= since)
    return (
        select(purchase.c.member_id, day, _whole(func.sum(purchase.c.amount - purchase.c.refunded)).label("spend"))
        .join(consent, and_(consent.c.member_id == purchase.c.member_id, consent.c.partner_id == partner_id))
        .join(member, member.c.id == purchase.c.member_id)
        .where(*window)
        .group_by(purchase.c.member_id, day)
        .subquery()
    )


def _whole(total: ColumnElement[Any]) -> ColumnElement[int]:
    """A sum of fen as a bigint: PostgreSQL sums bigints as numeric, which the driver reads as slow Decimals."""
    return cast(total, BigInteger)


def _ranked(days: Subquery) -> Subquery:
    """The purchase days numbered per member from the first (1)."""
    return select(
        days.c.member_id,
        days.c.day,
        days.c.spend,
        func.row_number().over(partition_by=days.c.member_id, order_by=days.c.day).label("n"),
    ).subquery()


async def summarise(
    conn: AsyncConnection,
    partner_id: int,
    as_of: datetime,
    zone: ZoneInfo,
    *,
    now: datetime,
    since: datetime | None = None,
) -> Summaries:
    """The partner's members who consent now to its profiling them and bought there (from `since`, before
    `as_of`): one row each."""
    offset = offset_of(as_of, zone)
    days = bought(conn.dialect.name, partner_id, _day, as_of, offset, now, since)
    # The first day's spend without a window over every purchase day: the smallest (day, spend) packed into one
    # integer, its low bits the spend (about a quarter faster on PostgreSQL at a million members).
    first_spend = func.min(days.c.day * PACK + days.c.spend) % PACK
    query = select(
        days.c.member_id,
        func.count().label("days"),
        func.min(days.c.day).label("first_day"),
        func.max(days.c.day).label("last_day"),
        _whole(func.sum(days.c.spend)).label("spend"),
        first_spend.label("first_spend"),
    ).group_by(days.c.member_id)
    rows = (await conn.execute(query)).all()
    as_of_day = int((as_of.timestamp() + offset) // DAY)
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return Summaries(empty, empty, empty, empty, empty, empty, as_of_day)
    table = np.array([tuple(r) for r in rows], dtype=np.int64)
    return Summaries(table[:, 0], table[:, 1], table[:, 2], table[:, 3], table[:, 4], table[:, 5], as_of_day)


async def repeat_days_by_week(
    conn: AsyncConnection, partner_id: int, as_of: datetime, zone: ZoneInfo, *, now: datetime
) -> dict[int, int]:
    """Repeat purchase days (each member's after their first) per week, weeks numbered from 1970-01-01 local:
    what the model's expected repeat purchases are set against."""
    offset = offset_of(as_of, zone)
    ranked = _ranked(bought(conn.dialect.name, partner_id, _day, as_of, offset, now))
    week = cast(func.floor(ranked.c.day / 7), BigInteger).label("week")
    rows = await conn.execute(select(week, func.count()).where(ranked.c.n > 1).group_by(week))
    return {int(w): int(n) for w, n in rows}
