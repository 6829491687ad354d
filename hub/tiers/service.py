"""Tiers. Growth value is the qualifying spend (net of refunds) of a member's purchases in the programme's window,
across every partner. An upgrade happens the moment growth reaches a threshold; a downgrade only at a review by
`hub worker`, and only after the grace period, so a member is never demoted by one refund or one quiet month.
Every change is a `tier_change` row whose reason says which figure crossed which threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Executable, Select, extract, func, insert, literal, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.consent.rule import ConsentRequired, MemberView, answers, readable
from hub.db import among
from hub.events import outbox
from hub.members.models import member
from hub.programme.config import Level, Tiers, Version
from hub.programme.earning import yuan
from hub.purchases.models import purchase
from hub.tiers.models import member_tier, tier_change


@dataclass(frozen=True)
class TierState:
    level: int
    since: datetime
    grace_until: datetime | None
    review_at: datetime | None
    birthday_gift_year: int | None
    stored: bool  # a member_tier row exists (none until the first upgrade)


@dataclass(frozen=True)
class Change:
    from_level: int
    to_level: int
    reason: str
    at: datetime


@dataclass(frozen=True)
class Progress:
    growth: int  # fen
    window_start: datetime | None
    next_level: Level | None
    growth_to_next: int
    growth_to_keep: int
    review_at: datetime | None


def months_before(moment: datetime, months: int, zone: ZoneInfo) -> datetime:
    local = moment.astimezone(zone)
    year, month = divmod(local.year * 12 + local.month - 1 - months, 12)
    day = min(local.day, [31, 29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28, 31, 30, 31, 30,
                          31, 31, 30, 31, 30, 31][month])  # fmt: skip
    return local.replace(year=year, month=month + 1, day=day)


def next_review(now: datetime, zone: ZoneInfo) -> datetime:
    """Reviews happen at the start of each month in the programme's time zone."""
    local = now.astimezone(zone)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return datetime(year, month, 1, tzinfo=zone)


def window_start(tiers: Tiers, at: datetime, zone: ZoneInfo) -> datetime | None:
    return None if tiers.window_months is None else months_before(at, tiers.window_months, zone)


# Growth value: qualifying spend net of refunds, in fen, of the purchases after a moment (all of them for None).
_NET_QUALIFYING = func.coalesce(func.sum(purchase.c.qualifying - purchase.c.refunded_qualifying), 0)


def _after(query: Any, since: datetime | None) -> Any:
    return query if since is None else query.where(purchase.c.occurred_at > since)


async def growth(conn: AsyncConnection, member_id: int, since: datetime | None) -> int:
    """One member's growth value after `since` (the write path: one member, one plain statement)."""
    query = _after(select(_NET_QUALIFYING).where(purchase.c.member_id == member_id), since)
    return int(await conn.scalar(query) or 0)


async def growth_in_windows(
    conn: AsyncConnection, windows: dict[datetime | None, list[int]]
) -> dict[datetime | None, dict[int, int]]:
    """`growth` of many members over several windows (members → the start of their window) in one statement."""
    found: dict[datetime | None, dict[int, int]] = {since: dict.fromkeys(ids, 0) for since, ids in windows.items()}
    starts = [since for since, ids in windows.items() if ids]
    if not starts:
        return found
    dialect = conn.dialect.name
    sums: list[Select[Any]] = [
        _after(
            select(literal(i).label("window"), purchase.c.member_id, _NET_QUALIFYING.label("total"))
            .where(among(dialect, purchase.c.member_id, windows[since]))
            .group_by(purchase.c.member_id),
            since,
        )
        for i, since in enumerate(starts)
    ]
    statement: Executable = union_all(*sums) if len(sums) > 1 else sums[0]
    for row in await conn.execute(statement):
        found[starts[row.window]][row.member_id] = int(row.total)
    return found


def _state(row: Any) -> TierState:
    return TierState(row.level, row.since, row.grace_until, row.review_at, row.birthday_gift_year, True)


async def state(conn: AsyncConnection, member_id: int) -> TierState:
    row = (await conn.execute(select(member_tier).where(member_tier.c.member_id == member_id))).one_or_none()
    if row is not None:
        return _state(row)
    joined = await conn.scalar(select(member.c.created_at).where(member.c.id == member_id))
    assert joined is not None, "tiers are asked only of members that exist"
    return TierState(0, joined, None, None, None, False)


async def states_of(conn: AsyncConnection, views: Sequence[MemberView]) -> list[TierState | ConsentRequired]:
    """`state` of each member a partner reached who consented to `member:read`, in one statement (no
    `member_tier` row means the first level since enrolment)."""
    ids = readable(views, "member:read")
    found: dict[int, TierState] = {}
    if ids:
        rows = await conn.execute(
            select(member.c.id, member.c.created_at, *[c for c in member_tier.c if c.name != "member_id"])
            .select_from(member.outerjoin(member_tier, member_tier.c.member_id == member.c.id))
            .where(among(conn.dialect.name, member.c.id, ids))
        )
        for row in rows:
            stored = row.level is not None
            found[row.id] = _state(row) if stored else TierState(0, row.created_at, None, None, None, False)
    return answers(views, "member:read", lambda v: found[v.member_id])


async def _set(conn: AsyncConnection, member_id: int, exists: bool, now: datetime, **values: object) -> None:
    if exists:
        await conn.execute(
            update(member_tier).where(member_tier.c.member_id == member_id).values(updated_at=now, **values)
        )
    else:
        await conn.execute(insert(member_tier).values(member_id=member_id, updated_at=now, **values))


def change_row(member_id: int, move: AfterPurchase, growth_fen: int, now: datetime) -> dict[str, Any]:
    """The `tier_change` row of a move (an upgrade or a review's downgrade)."""
    assert move.reached is not None
    return {"member_id": member_id, "from_level": move.held.level, "to_level": move.reached.level,
            "growth": growth_fen, "reason": move.reason, "at": now}  # fmt: skip


async def _change(conn: AsyncConnection, member_id: int, move: AfterPurchase, amount: int, now: datetime) -> None:
    await conn.execute(insert(tier_change).values(**change_row(member_id, move, amount, now)))
    await outbox.record(conn, "tier.changed", now=now, member_id=member_id, payload=move.payload)


def _window_words(tiers: Tiers) -> str:
    return "lifetime" if tiers.window_months is None else f"the last {tiers.window_months} months"


def upgrade_reason(tiers: Tiers, reached: Level, growth_fen: int) -> str:
    return (
        f"growth value {yuan(growth_fen)} in {_window_words(tiers)} reached {reached.name}'s threshold "
        f"{reached.threshold:.2f}"
    )


@dataclass(frozen=True)
class AfterPurchase:
    """What a purchase does to a member's tier: an upgrade (from `held` to `reached`, with its reason), or the end
    of a grace period the growth recovered from (`reached` None). A review's downgrade is written the same way."""

    held: Level
    reached: Level | None
    reason: str

    @property
    def payload(self) -> dict[str, Any]:
        """The `tier.changed` event's."""
        assert self.reached is not None
        return {"fromLevel": self.held.level, "toLevel": self.reached.level, "name": self.reached.name,
                "reason": self.reason}  # fmt: skip


def after_purchase(tiers: Tiers, level: int, growth_fen: int, grace_until: datetime | None) -> AfterPurchase | None:
    """The tier rule after a purchase, written once for `upgrade_if_due` and the import: move up at once if growth
    reached a higher threshold; end a grace period if the member is back at their level; else nothing."""
    reached = tiers.qualifying(Decimal(growth_fen) / 100)
    held = tiers.by_number(level)
    if reached.level > held.level:
        return AfterPurchase(held, reached, upgrade_reason(tiers, reached, growth_fen))
    if grace_until is not None and reached.level >= held.level:
        return AfterPurchase(held, None, "")
    return None


async def upgrade_if_due(
    conn: AsyncConnection, member_id: int, version: Version, now: datetime, zone: ZoneInfo
) -> None:
    """After a purchase: move up at once if growth reached a higher threshold; end a grace period if recovered."""
    tiers = version.tiers
    current = await state(conn, member_id)
    amount = await growth(conn, member_id, window_start(tiers, now, zone))
    move = after_purchase(tiers, current.level, amount, current.grace_until)
    if move is None:
        return
    if move.reached is not None:
        await _change(conn, member_id, move, amount, now)
        await _set(
            conn, member_id, current.stored, now,
            level=move.reached.level, since=now, grace_until=None, review_at=next_review(now, zone),
        )  # fmt: skip
    else:
        await _set(conn, member_id, True, now, grace_until=None, review_at=next_review(now, zone))


async def review(conn: AsyncConnection, member_id: int, version: Version, now: datetime, zone: ZoneInfo) -> None:
    """The periodic review: start a grace period below the threshold, downgrade when it has run out."""
    tiers = version.tiers
    current = await state(conn, member_id)
    held = tiers.by_number(current.level)
    amount = await growth(conn, member_id, window_start(tiers, now, zone))
    reached = tiers.qualifying(Decimal(amount) / 100)
    if reached.level >= held.level:
        await _set(conn, member_id, True, now, grace_until=None, review_at=next_review(now, zone))
        if reached.level > held.level:
            await upgrade_if_due(conn, member_id, version, now, zone)
        return
    if current.grace_until is None:
        grace_until = now + timedelta(days=tiers.grace_days)
        await _set(conn, member_id, True, now, grace_until=grace_until, review_at=grace_until)
        await outbox.record(
            conn,
            "tier.grace_started",
            now=now,
            member_id=member_id,
            payload={"level": held.level, "graceUntil": grace_until.isoformat(), "growthValue": yuan(amount)},
        )
        return
    if now < current.grace_until:
        await _set(conn, member_id, True, now, review_at=current.grace_until)
        return
    reason = (
        f"growth value {yuan(amount)} in {_window_words(tiers)} stayed below {held.name}'s threshold "
        f"{held.threshold:.2f} through the grace period ({tiers.grace_days} days)"
    )
    await _change(conn, member_id, AfterPurchase(held, reached, reason), amount, now)
    await _set(
        conn, member_id, True, now, level=reached.level, since=now, grace_until=None, review_at=next_review(now, zone)
    )


async def due_for_review(conn: AsyncConnection, now: datetime, limit: int) -> list[int]:
    rows = await conn.scalars(
        select(member_tier.c.member_id)
        .where(member_tier.c.review_at <= now)
        .order_by(member_tier.c.review_at)
        .limit(limit)
    )
    return list(rows.all())


async def birthday_gifts(conn: AsyncConnection, version: Version, now: datetime, zone: ZoneInfo) -> int:
    """Members at a level with a birthday gift, in their birthday month, not yet given one this year."""
    local = now.astimezone(zone)
    levels = [lv.level for lv in version.tiers.levels if lv.birthday_gift]
    if not levels:
        return 0
    due = (
        await conn.execute(
            select(member_tier.c.member_id, member_tier.c.level)
            .join(member, member.c.id == member_tier.c.member_id)
            .where(
                member_tier.c.level.in_(levels),
                member.c.status == "active",
                extract("month", member.c.birthday) == local.month,
                (member_tier.c.birthday_gift_year.is_(None)) | (member_tier.c.birthday_gift_year < local.year),
            )
            .limit(1000)
        )
    ).all()
    for row in due:
        await conn.execute(
            update(member_tier).where(member_tier.c.member_id == row.member_id).values(birthday_gift_year=local.year)
        )
        await outbox.record(
            conn,
            "member.birthday_gift",
            now=now,
            member_id=row.member_id,
            payload={"level": row.level, "name": version.tiers.by_number(row.level).name, "year": local.year},
        )
    return len(due)


@dataclass(frozen=True)
class Standing:
    """Where a member stands: the tier held, and what it takes to climb or keep it."""

    state: TierState
    progress: Progress


async def standings_of(
    conn: AsyncConnection, views: Sequence[MemberView], version: Version, now: datetime, zone: ZoneInfo
) -> list[Standing | ConsentRequired]:
    """The standing of each member who consented to `member:read` (a page of them): two statements."""
    states = zip(views, await states_of(conn, views), strict=True)
    held = {v.member_id: state for v, state in states if isinstance(state, TierState)}
    progress = await progress_of(conn, held, version, now, zone)
    return answers(views, "member:read", lambda v: Standing(held[v.member_id], progress[v.member_id]))


async def progress(
    conn: AsyncConnection, member_id: int, current: TierState, version: Version, now: datetime, zone: ZoneInfo
) -> Progress:
    return (await progress_of(conn, {member_id: current}, version, now, zone))[member_id]


async def progress_of(
    conn: AsyncConnection, states: dict[int, TierState], version: Version, now: datetime, zone: ZoneInfo
) -> dict[int, Progress]:
    """Where each member stands and what it takes to climb or stay, in one statement: the growth in the window,
    and in each distinct window as it will stand at a member's review (members reviewed the same month share it).

    `states` come from `states_of`, whose consent check they passed, or from the member's own session."""
    tiers = version.tiers
    start = window_start(tiers, now, zone)
    ids = list(states)
    review_at = {m: s.grace_until or s.review_at or next_review(now, zone) for m, s in states.items()}
    # What still counts at the review: purchases inside the window as it will stand then.
    at_review: dict[int, datetime | None] = {m: start for m in ids}
    windows: dict[datetime | None, list[int]] = {start: ids}
    if start is not None:
        for m in ids:
            at_review[m] = window_start(tiers, review_at[m], zone)
            windows.setdefault(at_review[m], [])
            if at_review[m] != start:
                windows[at_review[m]].append(m)
    sums = await growth_in_windows(conn, windows)
    result = {}
    for m, current in states.items():
        amount = sums[start][m]
        kept = sums[at_review[m]][m]
        held = tiers.by_number(current.level)
        upper = tiers.above(held)
        threshold = int(held.threshold * 100)
        result[m] = Progress(
            growth=amount,
            window_start=start.astimezone(UTC) if start else None,  # every instant leaves the hub in UTC
            next_level=upper,
            growth_to_next=max(0, int(upper.threshold * 100) - amount) if upper else 0,
            growth_to_keep=max(0, threshold - kept),
            review_at=review_at[m] if current.level > 0 else None,
        )
    return result


async def histories_of(
    conn: AsyncConnection, views: Sequence[MemberView], first: int
) -> list[list[Change] | ConsentRequired]:
    """`history` of each member who consented to `member:read` (newest first, `first` each), in one statement."""
    first = max(0, min(first, 100))
    member_ids = readable(views, "member:read")
    found: dict[int, list[Change]] = {m: [] for m in member_ids}
    if member_ids and first:
        await _histories(conn, member_ids, first, found)
    return answers(views, "member:read", lambda v: found[v.member_id])


async def _histories(conn: AsyncConnection, member_ids: list[int], first: int, found: dict[int, list[Change]]) -> None:
    numbered = (
        select(
            tier_change,
            func.row_number()
            .over(partition_by=tier_change.c.member_id, order_by=tier_change.c.id.desc())
            .label("position"),
        )
        .where(among(conn.dialect.name, tier_change.c.member_id, member_ids))
        .subquery()
    )
    rows = await conn.execute(
        select(numbered).where(numbered.c.position <= first).order_by(numbered.c.member_id, numbered.c.id.desc())
    )
    for r in rows:
        found[r.member_id].append(Change(r.from_level, r.to_level, r.reason, r.at))
