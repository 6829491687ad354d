"""Recording many purchases at once, for imports: the rules of `service.record`, written set-based.

For a batch of purchases in file order this computes, in memory, exactly what `record` would write one by one
(the earning rules of the version in force at each purchase, the member's tier as it rises purchase by purchase,
the same ledger transaction, entries, lot and events, the same tier changes with the same reasons), then writes
each table with one bulk statement: `COPY` on PostgreSQL, `executemany` on SQLite. Two cases go the per-purchase
way instead, because they depend on state this does not model: a prepaid issuer (its balance gates each earn)
and a member carrying a debt lot (an available earn repays it). `tests/test_import.py` holds the two ways equal.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db import UtcDateTime, among, bulk_insert, reserve_ids
from hub.errors import DomainError
from hub.events import outbox
from hub.events.models import event
from hub.idempotency import conflict, fingerprint
from hub.ids import new_ids
from hub.members import service as members_service
from hub.members.models import member
from hub.partners.models import partner_terms
from hub.points import ledger
from hub.points.models import (
    UNIT,
    ledger_account,
    ledger_entry,
    ledger_txn,
    point_lot,
)
from hub.points.policy import PointsPolicy
from hub.programme import earning
from hub.programme.config import Programme
from hub.purchases import service
from hub.purchases.models import purchase, purchase_line
from hub.tiers import service as tiers
from hub.tiers.models import member_tier, tier_change


class _Ids:
    """Public ids drawn from the system's randomness a thousand at a time."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.pool: list[str] = []

    def next(self) -> str:
        if not self.pool:
            self.pool = new_ids(self.prefix, 1024, 12)
        return self.pool.pop()


@dataclass
class _Member:
    member_id: int
    birthday: Any
    level: int
    growth: int
    grace_until: datetime | None
    since: datetime | None = None
    review_at: datetime | None = None
    birthday_gift_year: int | None = None
    changed: bool = False


@dataclass
class _Rows:
    purchases: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    txns: list[dict[str, Any]] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)
    lots: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    # account -> [points, entries]: an account's version counts its entries (`verify` checks it)
    balances: dict[tuple[str, str, int], list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))


async def record_many(
    conn: AsyncConnection,
    partner_id: int,
    cmds: list[service.RecordPurchase],
    *,
    now: datetime,
    programme: Programme,
    policy: PointsPolicy,
) -> dict[int, DomainError]:
    """Record `cmds` (in order) in the caller's transaction; returns the errors of the rejected, by index."""
    errors: dict[int, DomainError] = {}
    prepared: dict[int, tuple[service.RecordPurchase, list[earning.Line], str]] = {}
    for i, cmd in enumerate(cmds):
        try:
            prepared[i] = (cmd, service.validate(cmd, now), fingerprint(cmd))
        except DomainError as error:
            errors[i] = error
    if not prepared:
        return errors

    fallback = await _billing(conn, partner_id) == "prepaid"
    replays = await _replays(conn, partner_id, [p[0] for p in prepared.values()])
    views = await members_service.by_pairwise_ids(conn, partner_id, {p[0].member_id for p in prepared.values()}, now)
    in_debt = await _in_debt(conn, {v.member_id for v in views.values()})
    slow: list[int] = []
    fresh: list[int] = []
    seen: dict[str, str] = {}  # reference or key -> request hash, within the batch
    for i, (cmd, _lines, digest) in prepared.items():
        earlier = replays.get(("key", cmd.idempotency_key)) or seen.get("key:" + cmd.idempotency_key)
        if earlier is not None:
            if earlier != digest:
                errors[i] = conflict()
            continue  # a replay: the first recording stands
        earlier = replays.get(("reference", cmd.reference)) or seen.get("ref:" + cmd.reference)
        if earlier is not None:
            if earlier != digest:
                errors[i] = conflict(**service.DUPLICATE_REFERENCE)
            continue
        view = views.get(cmd.member_id)
        if view is None:
            errors[i] = DomainError("MEMBER_NOT_FOUND", "no such member", "memberId")
            continue
        if "purchases:write" not in view.permissions:
            errors[i] = DomainError(
                "CONSENT_REQUIRED", "the member has not consented to 'purchases:write' for you", "memberId"
            )
            continue
        seen["key:" + cmd.idempotency_key] = seen["ref:" + cmd.reference] = digest
        (slow if fallback or view.member_id in in_debt else fresh).append(i)

    if fresh:
        birthdays = {view.member_id: view.birthday for view in (views[prepared[i][0].member_id] for i in fresh)}
        await conn.execute(
            select(member.c.id)
            .where(among(conn.dialect.name, member.c.id, birthdays))
            .order_by(member.c.id)
            .with_for_update()
        )
        members = await _states(conn, birthdays, programme, now, policy)
        rows = _compute(partner_id, [prepared[i] for i in fresh], views, members, now, programme, policy)
        await _write(conn, partner_id, rows, members, now)
    for i in slow:  # in order, through the one-by-one path, each in a savepoint
        try:
            async with conn.begin_nested():
                await service.record(conn, partner_id, prepared[i][0], now=now, programme=programme, policy=policy)
        except DomainError as error:
            errors[i] = error
    return errors


async def _billing(conn: AsyncConnection, partner_id: int) -> str:
    billing = await conn.scalar(select(partner_terms.c.billing).where(partner_terms.c.partner_id == partner_id))
    return billing or "postpaid"


async def _replays(
    conn: AsyncConnection, partner_id: int, cmds: list[service.RecordPurchase]
) -> dict[tuple[str, str], str]:
    keys = [c.idempotency_key for c in cmds]
    references = [c.reference for c in cmds]
    dialect = conn.dialect.name
    replays: dict[tuple[str, str], str] = {}
    # Two queries, not one with OR: each then walks its own unique index.
    for name, column, values in (
        ("key", purchase.c.idempotency_key, keys),
        ("reference", purchase.c.reference, references),
    ):
        found = await conn.execute(
            select(column, purchase.c.request_hash).where(
                purchase.c.partner_id == partner_id, among(dialect, column, values)
            )
        )
        for value, digest in found:
            replays[(name, value)] = digest
    return replays


async def _in_debt(conn: AsyncConnection, member_ids: set[int]) -> set[int]:
    rows = await conn.scalars(
        select(point_lot.c.member_id)
        .where(
            among(conn.dialect.name, point_lot.c.member_id, member_ids),
            point_lot.c.status == "debt",
            point_lot.c.remaining < 0,
        )
        .distinct()
    )
    return set(rows.all())


async def _states(
    conn: AsyncConnection, birthdays: dict[int, Any], programme: Programme, now: datetime, policy: PointsPolicy
) -> dict[int, _Member]:
    """Tier and growth of each member (by id, with their birthday) before the batch."""
    member_ids = set(birthdays)
    tiers_now = programme.at(now).tiers
    start = tiers.window_start(tiers_now, now, policy.zone)
    growth_query = (
        select(purchase.c.member_id, func.sum(purchase.c.qualifying - purchase.c.refunded_qualifying).label("g"))
        .where(among(conn.dialect.name, purchase.c.member_id, member_ids))
        .group_by(purchase.c.member_id)
    )
    if start is not None:
        growth_query = growth_query.where(purchase.c.occurred_at > start)
    growth = {r.member_id: int(r.g or 0) for r in await conn.execute(growth_query)}
    rows = {
        r.member_id: r
        for r in await conn.execute(
            select(member_tier).where(among(conn.dialect.name, member_tier.c.member_id, member_ids))
        )
    }
    states = {}
    for member_id in member_ids:
        row = rows.get(member_id)
        states[member_id] = _Member(
            member_id=member_id,
            birthday=birthdays.get(member_id),
            level=row.level if row else 0,
            growth=growth.get(member_id, 0),
            grace_until=row.grace_until if row else None,
            since=row.since if row else None,
            review_at=row.review_at if row else None,
            birthday_gift_year=row.birthday_gift_year if row else None,
        )
    return states


def _compute(
    partner_id: int,
    batch: list[tuple[service.RecordPurchase, list[earning.Line], str]],
    views: dict[str, members_service.MemberView],
    members: dict[int, _Member],
    now: datetime,
    programme: Programme,
    policy: PointsPolicy,
) -> _Rows:
    rows = _Rows()
    purchase_ids, txn_ids = _Ids("pur"), _Ids("txn")
    zone = policy.zone
    tiers_now = programme.at(now).tiers
    window = tiers.window_start(tiers_now, now, zone)
    review = tiers.next_review(now, zone)
    for cmd, lines, digest in batch:
        state = members[views[cmd.member_id].member_id]
        version = programme.at(cmd.occurred_at)
        level = version.tiers.by_number(state.level)
        birthday = earning.in_birthday_month(state.birthday, cmd.occurred_at, zone)
        per_line, points, qualifying = earning.earn(version, lines, level, birthday)
        plan = service.plan_purchase(
            partner_id, state.member_id, cmd, lines, (per_line, points, qualifying), level.level, version, digest, now,
            public_id=purchase_ids.next(),
        )  # fmt: skip
        index = len(rows.purchases)
        rows.purchases.append({**plan.purchase, "earn_txn_id": None})
        rows.lines += [{"purchase": index, **line} for line in plan.lines]
        if plan.earn is not None:
            earned = ledger.plan_earn(
                partner_id, state.member_id, plan.earn, now, policy, prepaid=False, public_id=txn_ids.next()
            )
            txn_index = len(rows.txns)
            rows.purchases[index]["earn_txn_id"] = txn_index
            rows.txns.append(earned.txn)
            for movement in earned.movements:
                rows.entries.append({"txn": txn_index, "account": movement.account.code, "amount": movement.amount})
                if movement.account.member_id is not None:  # the member's cached balance, added up per batch
                    totals = rows.balances[(movement.account.code, movement.account.kind, state.member_id)]
                    totals[0] += movement.amount
                    totals[1] += 1
            rows.lots.append({**earned.lot, "txn": txn_index})
            rows.events.append(earned.event.row(now))
        # The tier, exactly as `tiers.upgrade_if_due` would move it after this purchase.
        if window is None or cmd.occurred_at > window:
            state.growth += qualifying
        move = tiers.after_purchase(tiers_now, state.level, state.growth, state.grace_until)
        if move is not None and move.reached is not None:
            rows.changes.append(tiers.change_row(state.member_id, move, state.growth, now))
            rows.events.append(outbox.Event("tier.changed", state.member_id, None, move.payload).row(now))
            state.level, state.since, state.grace_until, state.review_at = move.reached.level, now, None, review
            state.changed = True
        elif move is not None:
            state.grace_until, state.review_at, state.changed = None, review, True
        rows.events.append(plan.event.row(now))
    return rows


def _account_upsert(dialect: str) -> Any:
    insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert_(ledger_account).values(
        code=bindparam("b_code"),
        kind=bindparam("b_kind"),
        unit=UNIT,
        member_id=bindparam("b_member"),
        partner_id=None,
        balance=bindparam("b_amount"),
        version=bindparam("b_entries"),
        created_at=bindparam("b_now", type_=UtcDateTime()),
    )
    return stmt.on_conflict_do_update(
        index_elements=[ledger_account.c.code],
        set_={
            "balance": ledger_account.c.balance + stmt.excluded.balance,
            "version": ledger_account.c.version + stmt.excluded.version,
        },
    )


_UNNEST_ACCOUNTS = text(
    """
    INSERT INTO ledger_account (code, kind, unit, member_id, partner_id, balance, version, created_at)
    SELECT code, kind, :unit, member_id, NULL, amount, entries, :now
    FROM unnest(CAST(:codes AS text[]), CAST(:kinds AS text[]), CAST(:members AS bigint[]),
                CAST(:amounts AS bigint[]), CAST(:entries AS bigint[])) AS t(code, kind, member_id, amount, entries)
    ON CONFLICT (code) DO UPDATE SET balance = ledger_account.balance + excluded.balance,
                                     version = ledger_account.version + excluded.version
    """
).bindparams(bindparam("now", type_=UtcDateTime()))


def _tier_upsert(dialect: str) -> Any:
    insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert_(member_tier)
    return stmt.on_conflict_do_update(
        index_elements=[member_tier.c.member_id],
        set_={
            "level": stmt.excluded.level,
            "since": stmt.excluded.since,
            "grace_until": stmt.excluded.grace_until,
            "review_at": stmt.excluded.review_at,
            "updated_at": stmt.excluded.updated_at,
        },
    )


async def _write(
    conn: AsyncConnection, partner_id: int, rows: _Rows, members: dict[int, _Member], now: datetime
) -> None:
    purchase_ids = await reserve_ids(conn, purchase, len(rows.purchases))
    txn_ids = await reserve_ids(conn, ledger_txn, len(rows.txns))
    # Accounts first: entries point at them.
    if rows.balances:
        if conn.dialect.name == "postgresql":
            keys = list(rows.balances)
            await conn.execute(
                _UNNEST_ACCOUNTS,
                {
                    "unit": UNIT,
                    "now": now,
                    "codes": [k[0] for k in keys],
                    "kinds": [k[1] for k in keys],
                    "members": [k[2] for k in keys],
                    "amounts": [rows.balances[k][0] for k in keys],
                    "entries": [rows.balances[k][1] for k in keys],
                },
            )
        else:
            await conn.execute(
                _account_upsert("sqlite"),
                [
                    {
                        "b_code": code,
                        "b_kind": kind,
                        "b_member": member_id,
                        "b_amount": amount,
                        "b_entries": entries,
                        "b_now": now,
                    }
                    for (code, kind, member_id), (amount, entries) in rows.balances.items()
                ],
            )
    await bulk_insert(conn, ledger_txn, [{"id": txn_ids[i], **row} for i, row in enumerate(rows.txns)])
    await bulk_insert(
        conn,
        purchase,
        [
            {
                "id": purchase_ids[i],
                **row,
                "earn_txn_id": None if row["earn_txn_id"] is None else txn_ids[row["earn_txn_id"]],
            }
            for i, row in enumerate(rows.purchases)
        ],
    )
    await bulk_insert(
        conn,
        purchase_line,
        [{"purchase_id": purchase_ids[row.pop("purchase")], **row} for row in rows.lines],
    )
    await bulk_insert(conn, ledger_entry, [{"txn_id": txn_ids[row.pop("txn")], **row} for row in rows.entries])
    await bulk_insert(conn, point_lot, [{"earn_txn_id": txn_ids[row.pop("txn")], **row} for row in rows.lots])
    await bulk_insert(conn, tier_change, rows.changes)
    await bulk_insert(conn, event, rows.events)
    changed = [
        {
            "member_id": m.member_id,
            "level": m.level,
            "since": m.since,
            "grace_until": m.grace_until,
            "review_at": m.review_at,
            "birthday_gift_year": m.birthday_gift_year,
            "updated_at": now,
        }
        for m in members.values()
        if m.changed
    ]
    if changed:
        await conn.execute(_tier_upsert(conn.dialect.name), changed)
