"""The catalogue: a sponsor's rewards, and what a member may claim now (or why not).

Whether a member may claim is one pure function, `refusal`, used by the listing, the portal and the claim itself
(which then makes each limit a guarded update, so the answer cannot go stale between the check and the write).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub import cursors
from hub.db import among
from hub.errors import DomainError
from hub.ids import new_id
from hub.partners.models import partner
from hub.points.ledger import MAX_POINTS
from hub.programme.config import Version
from hub.programme.earning import fen
from hub.rewards.models import reward, reward_claim, reward_usage, reward_window
from hub.tiers import service as tiers

KINDS = ("GIFT", "COUPON", "SERVICE")
PERIODS = ("DAY", "WEEK", "MONTH", "YEAR", "EVER")
MAX_PAGE = 100
MAX_QUANTITY = 100
REFUSALS = {
    "WINDOW_CLOSED": "this reward can no longer be claimed",
    "TIER_TOO_LOW": "the member's tier may not claim this reward",
    "NOT_YET_OPEN": "this reward opens for the member's tier at {opens}",
    "OUT_OF_STOCK": "not enough of this reward is left",
    "MEMBER_LIMIT_REACHED": "the member has claimed as many of this reward as a member may this period",
}


@dataclass(frozen=True)
class Window:
    min_level: int
    opens_at: datetime


@dataclass(frozen=True)
class Reward:
    id: int
    public_id: str
    sponsor_id: int
    kind: str
    name: str
    description: str | None
    points_cost: int
    face_value: int  # fen
    percent_off: int | None
    stock_total: int | None
    stock_left: int | None
    member_limit: int | None
    limit_period: str
    available_from: datetime
    available_until: datetime | None
    claim_valid_days: int
    categories: tuple[str, ...]
    redeemers: tuple[str, ...]  # partner public ids; () = the sponsor only
    status: str
    windows: tuple[Window, ...]
    sponsor_public_id: str = ""

    def redeemable_at(self, partner_public_id: str) -> bool:
        return partner_public_id in self.redeemers if self.redeemers else partner_public_id == self.sponsor_public_id


def period_of(limit_period: str, moment: datetime, zone: ZoneInfo) -> str:
    """The usage period a claim at `moment` counts against, in the programme's time zone."""
    local = moment.astimezone(zone)
    if limit_period == "DAY":
        return local.date().isoformat()
    if limit_period == "WEEK":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    if limit_period == "MONTH":
        return f"{local.year}-{local.month:02d}"
    if limit_period == "YEAR":
        return str(local.year)
    return "ever"


def opens_for(found: Reward, level: int) -> datetime | None:
    """When a member at `level` may start claiming: the window of the highest tier at or below theirs (None: no
    window admits their tier)."""
    windows = [w for w in found.windows if w.min_level <= level]
    if not windows:
        return None
    return max(max(windows, key=lambda w: w.min_level).opens_at, found.available_from)


def refusal(found: Reward, level: int, used: int, quantity: int, now: datetime) -> tuple[str, str] | None:
    """Why the member may not claim `quantity` now (code, message), or None: the catalogue's one rule."""
    if found.available_until is not None and now >= found.available_until:
        return "WINDOW_CLOSED", REFUSALS["WINDOW_CLOSED"]
    opens = opens_for(found, level)
    if opens is None:
        return "TIER_TOO_LOW", REFUSALS["TIER_TOO_LOW"]
    if now < opens:
        return "NOT_YET_OPEN", REFUSALS["NOT_YET_OPEN"].format(opens=opens.isoformat())
    if found.stock_left is not None and found.stock_left < quantity:
        return "OUT_OF_STOCK", REFUSALS["OUT_OF_STOCK"]
    if found.member_limit is not None and used + quantity > found.member_limit:
        return "MEMBER_LIMIT_REACHED", REFUSALS["MEMBER_LIMIT_REACHED"]
    return None


# -- reading -----------------------------------------------------------------------------------------------------
_SPONSOR = select(reward, partner.c.public_id.label("sponsor_public_id")).join(
    partner, partner.c.id == reward.c.sponsor_id
)


async def _windows(conn: AsyncConnection, ids: Sequence[int]) -> dict[int, tuple[Window, ...]]:
    found: dict[int, list[Window]] = {i: [] for i in ids}
    if ids:
        rows = await conn.execute(select(reward_window).where(among(conn.dialect.name, reward_window.c.reward_id, ids)))
        for row in rows:
            found[row.reward_id].append(Window(row.min_level, row.opens_at))
    return {i: tuple(sorted(w, key=lambda w: w.min_level)) for i, w in found.items()}


def _reward(row: Any, windows: tuple[Window, ...]) -> Reward:
    return Reward(
        id=row.id,
        public_id=row.public_id,
        sponsor_id=row.sponsor_id,
        kind=row.kind,
        name=row.name,
        description=row.description,
        points_cost=row.points_cost,
        face_value=row.face_value,
        percent_off=row.percent_off,
        stock_total=row.stock_total,
        stock_left=row.stock_left,
        member_limit=row.member_limit,
        limit_period=row.limit_period,
        available_from=row.available_from,
        available_until=row.available_until,
        claim_valid_days=row.claim_valid_days,
        categories=tuple(row.categories),
        redeemers=tuple(row.redeemers),
        status=row.status,
        windows=windows,
        sponsor_public_id=row.sponsor_public_id,
    )


async def _rewards(conn: AsyncConnection, query: Any) -> list[Reward]:
    rows = (await conn.execute(query)).all()
    windows = await _windows(conn, [r.id for r in rows])
    return [_reward(r, windows[r.id]) for r in rows]


def not_found(field: str = "rewardId") -> DomainError:
    return DomainError("REWARD_NOT_FOUND", "no such reward", field)


async def active_reward(conn: AsyncConnection, public_id: str, *, lock: bool = False) -> Reward:
    """An active reward by its public id; unknown and retired ones are the same REWARD_NOT_FOUND."""
    query = _SPONSOR.where(reward.c.public_id == public_id, reward.c.status == "ACTIVE")
    found = await _rewards(conn, query.with_for_update(of=reward) if lock else query)
    if not found:
        raise not_found()
    return found[0]


async def reward_by_id(conn: AsyncConnection, reward_id: int) -> Reward:
    return (await _rewards(conn, _SPONSOR.where(reward.c.id == reward_id)))[0]


async def own_reward(conn: AsyncConnection, sponsor_id: int, public_id: str, *, lock: bool = False) -> Reward:
    """The caller's own active reward; another sponsor's is as unknown as one that never existed."""
    found = await active_reward(conn, public_id, lock=lock)
    if found.sponsor_id != sponsor_id:
        raise not_found()
    return found


@dataclass(frozen=True)
class Offer:
    reward: Reward
    refusal: tuple[str, str] | None  # None: the member may claim one now (or, with no member, anyone may)


@dataclass(frozen=True)
class Page:
    offers: list[Offer]
    has_next: bool


async def used_of(
    conn: AsyncConnection, member_id: int, rewards: Sequence[Reward], now: datetime, zone: ZoneInfo
) -> dict[int, int]:
    """Units of each reward the member holds in its current period."""
    if not rewards:
        return {}
    wanted = [
        and_(reward_usage.c.reward_id == r.id, reward_usage.c.period == period_of(r.limit_period, now, zone))
        for r in rewards
    ]
    rows = await conn.execute(
        select(reward_usage.c.reward_id, reward_usage.c.used).where(reward_usage.c.member_id == member_id, or_(*wanted))
    )
    return {row.reward_id: row.used for row in rows}


async def page(
    conn: AsyncConnection,
    now: datetime,
    zone: ZoneInfo,
    *,
    first: int,
    after: str | None,
    member_id: int | None,  # from a consented look-up (or the member's own session)
) -> Page:
    """The coalition's rewards still open (by id), each with why the member may not claim one now."""
    if not 0 <= first <= MAX_PAGE:
        raise DomainError("INVALID_INPUT", f"first must be between 0 and {MAX_PAGE}", "first")
    query = (
        _SPONSOR.where(
            reward.c.status == "ACTIVE", or_(reward.c.available_until.is_(None), reward.c.available_until > now)
        )
        .order_by(reward.c.public_id)
        .limit(first + 1)
    )
    if after:
        query = query.where(reward.c.public_id > cursors.decode(after, "rwd_"))
    found = await _rewards(conn, query)
    has_next = len(found) > first
    found = found[:first]
    if member_id is None:
        return Page([Offer(r, refusal(r, 10**6, 0, 1, now)) for r in found], has_next)
    level = (await tiers.state(conn, member_id)).level
    used = await used_of(conn, member_id, found, now, zone)
    return Page([Offer(r, refusal(r, level, used.get(r.id, 0), 1, now)) for r in found], has_next)


# -- writing -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WindowInput:
    min_level: int
    opens_at: datetime


@dataclass(frozen=True)
class RewardInput:
    """createReward's fields; updateReward's are the same, each optional (None: unchanged)."""

    kind: str | None = None
    name: str | None = None
    description: str | None = None
    points_cost: int | None = None
    face_value: str | None = None  # yuan
    percent_off: int | None = None
    stock: int | None = None
    member_limit: int | None = None
    limit_period: str | None = None
    available_from: datetime | None = None
    available_until: datetime | None = None
    claim_valid_days: int | None = None
    windows: tuple[WindowInput, ...] | None = None
    redeemers: tuple[str, ...] | None = None
    categories: tuple[str, ...] | None = None


def _check(values: dict[str, Any], version: Version, now: datetime) -> None:
    """Every field of a whole reward, before anything is written."""
    if values["kind"] not in KINDS:
        raise DomainError("INVALID_INPUT", f"kind must be one of {', '.join(KINDS)}", "kind")
    if not values["name"].strip() or len(values["name"]) > 200:
        raise DomainError("INVALID_INPUT", "name must be 1 to 200 characters", "name")
    if values["description"] is not None and len(values["description"]) > 2000:
        raise DomainError("INVALID_INPUT", "description must be at most 2000 characters", "description")
    if not 0 <= values["points_cost"] <= MAX_POINTS:
        raise DomainError("INVALID_AMOUNT", f"pointsCost must be between 0 and {MAX_POINTS}", "pointsCost")
    percent = values["percent_off"]
    if percent is not None and (values["kind"] != "COUPON" or not 1 <= percent <= 100):
        raise DomainError("INVALID_INPUT", "percentOff is for coupons only, 1 to 100", "percentOff")
    if values["stock_total"] is not None and not 0 <= values["stock_total"] <= 10**9:
        raise DomainError("INVALID_INPUT", "stock must be between 0 and 1000000000, or null for unlimited", "stock")
    if values["member_limit"] is not None and not 1 <= values["member_limit"] <= 10_000:
        raise DomainError("INVALID_INPUT", "memberLimit must be between 1 and 10000, or null", "memberLimit")
    if values["limit_period"] not in PERIODS:
        raise DomainError("INVALID_INPUT", f"limitPeriod must be one of {', '.join(PERIODS)}", "limitPeriod")
    if not 1 <= values["claim_valid_days"] <= 366:
        raise DomainError("INVALID_INPUT", "claimValidDays must be 1 to 366", "claimValidDays")
    start, end = values["available_from"], values["available_until"]
    if end is not None and end <= max(start, now):
        raise DomainError("INVALID_INPUT", "availableUntil must be later than availableFrom and now", "availableUntil")
    levels = {lv.level for lv in version.tiers.levels}
    for i, window in enumerate(values["windows"]):
        if window.min_level not in levels:
            known = ", ".join(str(lv) for lv in sorted(levels))
            raise DomainError("INVALID_INPUT", f"minTier must be a tier level ({known})", f"windows[{i}].minTier")
    if len({w.min_level for w in values["windows"]}) != len(values["windows"]) or not values["windows"]:
        raise DomainError("INVALID_INPUT", "give each tier at most one window, and at least one window", "windows")
    for i, category in enumerate(values["categories"]):
        if not category.strip() or len(category) > 100:
            raise DomainError("INVALID_INPUT", "a category is 1 to 100 characters", f"categories[{i}]")


async def _check_redeemers(conn: AsyncConnection, redeemers: tuple[str, ...]) -> None:
    if len(redeemers) > 100:
        raise DomainError("INVALID_INPUT", "at most 100 redeemers", "redeemers")
    known = (
        set(
            await conn.scalars(
                select(partner.c.public_id).where(among(conn.dialect.name, partner.c.public_id, redeemers))
            )
        )
        if redeemers
        else set()
    )
    for i, public_id in enumerate(redeemers):
        if public_id not in known:
            raise DomainError("INVALID_INPUT", "no partner with this id", f"redeemers[{i}]")


def _fields(given: RewardInput, base: dict[str, Any]) -> dict[str, Any]:
    values = dict(base)
    for name in (
        "kind",
        "name",
        "description",
        "points_cost",
        "percent_off",
        "member_limit",
        "limit_period",
        "available_from",
        "available_until",
        "claim_valid_days",
        "windows",
        "redeemers",
        "categories",
    ):
        if getattr(given, name) is not None:
            values[name] = getattr(given, name)
    if given.face_value is not None:
        values["face_value"] = fen(given.face_value, "faceValue")
    if given.stock is not None:
        values["stock_total"] = given.stock
    return values


async def _write_windows(conn: AsyncConnection, reward_id: int, windows: Sequence[WindowInput]) -> None:
    await conn.execute(delete(reward_window).where(reward_window.c.reward_id == reward_id))
    await conn.execute(
        insert(reward_window),
        [{"reward_id": reward_id, "min_level": w.min_level, "opens_at": w.opens_at} for w in windows],
    )


async def _claimed(conn: AsyncConnection, found: Reward) -> int:
    """Units members hold or redeemed: what the stock has given out."""
    if found.stock_total is not None and found.stock_left is not None:
        return found.stock_total - found.stock_left
    held = await conn.scalar(
        select(
            func.coalesce(
                func.sum(
                    case(
                        (reward_claim.c.status == "REDEEMED", reward_claim.c.redeemed_quantity),
                        else_=reward_claim.c.quantity,
                    )
                ),
                0,
            )
        ).where(reward_claim.c.reward_id == found.id, reward_claim.c.status.in_(("RESERVED", "ISSUED", "REDEEMED")))
    )
    return int(held or 0)


async def create(conn: AsyncConnection, sponsor_id: int, given: RewardInput, version: Version, now: datetime) -> Reward:
    if given.kind is None or given.name is None or given.points_cost is None or given.face_value is None:
        raise DomainError("INVALID_INPUT", "a reward needs kind, name, pointsCost and faceValue", "kind")
    start = given.available_from or now
    defaults = {
        "description": None,
        "percent_off": None,
        "stock_total": None,
        "member_limit": None,
        "limit_period": "EVER",
        "available_from": start,
        "available_until": None,
        "claim_valid_days": 30,
        "windows": (WindowInput(version.tiers.levels[0].level, start),),
        "redeemers": (),
        "categories": (),
    }
    values = _fields(given, defaults)
    _check(values, version, now)
    await _check_redeemers(conn, values["redeemers"])
    windows = values.pop("windows")
    reward_id = await conn.scalar(
        insert(reward)
        .values(
            public_id=new_id("rwd", 12),
            sponsor_id=sponsor_id,
            stock_left=values["stock_total"],
            status="ACTIVE",
            created_at=now,
            updated_at=now,
            **{**values, "redeemers": list(values["redeemers"]), "categories": list(values["categories"])},
        )
        .returning(reward.c.id)
    )
    assert reward_id is not None
    await _write_windows(conn, reward_id, windows)
    return await reward_by_id(conn, reward_id)


async def update_reward(
    conn: AsyncConnection, sponsor_id: int, public_id: str, given: RewardInput, version: Version, now: datetime
) -> Reward:
    """Change the sponsor's own reward. Stock changes by the difference in its total: what members hold stays
    theirs, so the total cannot go below what is already claimed."""
    found = await own_reward(conn, sponsor_id, public_id, lock=True)  # claims of limited stock wait on this row
    if given.kind is not None and given.kind != found.kind:
        raise DomainError("INVALID_INPUT", "a reward's kind cannot change: retire it and create another", "kind")
    base = {
        name: getattr(found, name)
        for name in (
            "kind",
            "name",
            "description",
            "points_cost",
            "face_value",
            "percent_off",
            "stock_total",
            "member_limit",
            "limit_period",
            "available_from",
            "available_until",
            "claim_valid_days",
            "redeemers",
            "categories",
        )
    }
    base["windows"] = tuple(WindowInput(w.min_level, w.opens_at) for w in found.windows)
    values = _fields(given, base)
    _check(values, version, now)
    if given.redeemers is not None:
        await _check_redeemers(conn, values["redeemers"])
    windows = values.pop("windows")
    stock_change: dict[str, Any] = {}
    if given.stock is not None:
        claimed = await _claimed(conn, found)
        if given.stock < claimed:
            raise DomainError("INVALID_INPUT", f"{claimed} are already claimed: stock cannot go below that", "stock")
        stock_change = {"stock_left": given.stock - claimed}
    changed = await conn.execute(
        update(reward)
        .where(reward.c.id == found.id, reward.c.status == "ACTIVE")
        .values(
            updated_at=now,
            **{**values, "redeemers": list(values["redeemers"]), "categories": list(values["categories"])},
            **stock_change,
        )
    )
    if changed.rowcount != 1:
        raise not_found()
    if given.windows is not None:
        await _write_windows(conn, found.id, windows)
    return await reward_by_id(conn, found.id)


async def retire(conn: AsyncConnection, sponsor_id: int, public_id: str, now: datetime) -> Reward:
    """No new claims; codes already issued stay redeemable until they expire."""
    found = await own_reward(conn, sponsor_id, public_id)
    await conn.execute(update(reward).where(reward.c.id == found.id).values(status="RETIRED", updated_at=now))
    return replace(found, status="RETIRED")
