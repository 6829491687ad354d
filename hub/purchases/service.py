"""Recording purchases and refunds: points through the ledger, growth value for tiers, one transaction each.

A purchase earns by the programme version in force at its `occurredAt` and the member's tier when it is
recorded; its points stay pending for the version's return window. A refund takes back the points and growth
value of exactly what was refunded, through the ledger's reversal (so points already spent become a debt that
blocks redemption until repaid), and never more than remains of the purchase.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from sqlalchemy import String, and_, func, insert, literal, or_, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.consent.rule import ConsentRequired, MemberView, answers, readable
from hub.db import among
from hub.errors import DomainError
from hub.events import outbox
from hub.idempotency import check_key, fingerprint, replayed
from hub.ids import new_id
from hub.members import service as members
from hub.members.models import member
from hub.points import ledger
from hub.points.models import ledger_txn
from hub.points.policy import PointsPolicy
from hub.programme import earning
from hub.programme.config import Programme, Version
from hub.purchases.models import purchase, purchase_line, purchase_refund
from hub.rewards import claims
from hub.rewards import quote as quotes
from hub.tiers import service as tiers

DUPLICATE_REFERENCE = {
    "code": "DUPLICATE_REFERENCE",
    "message": "a different purchase was recorded with this reference",
    "field": "reference",
}
# How far in the future an occurredAt may lie (till clocks drift); anything later is a mistake.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class LineInput:
    sku: str
    category: str
    amount: str
    quantity: int = 1
    prescription: bool = False
    insurer_paid: bool = False
    discountable: bool = True


@dataclass(frozen=True)
class RecordPurchase:
    COMMAND: ClassVar[str] = "recordPurchase"
    member_id: str  # the partner's pairwise id
    reference: str
    occurred_at: datetime
    store_id: str | None
    lines: tuple[LineInput, ...]
    idempotency_key: str
    quote_id: str | None = None  # record exactly what this quote said (hub/rewards/quote.py)


@dataclass(frozen=True)
class RefundLine:
    sku: str
    amount: str


@dataclass(frozen=True)
class RefundPurchase:
    COMMAND: ClassVar[str] = "refundPurchase"
    purchase_reference: str
    lines: tuple[RefundLine, ...] | None
    amount: str | None
    idempotency_key: str


@dataclass(frozen=True)
class Purchase:
    public_id: str
    reference: str
    member_id: int
    points: int
    growth: int  # fen of qualifying spend, net of refunds
    amount: int
    refunded: int


@dataclass(frozen=True)
class Refund:
    public_id: str
    amount: int
    points_reversed: int
    growth_reversed: int
    purchase: Purchase


def _view(row: Any) -> Purchase:
    return Purchase(
        public_id=row.public_id,
        reference=row.reference,
        member_id=row.member_id,
        points=row.points - row.points_reversed,
        growth=row.qualifying - row.refunded_qualifying,
        amount=row.amount,
        refunded=row.refunded,
    )


async def _existing(conn: AsyncConnection, partner_id: int, cmd: RecordPurchase, digest: str) -> Purchase | None:
    """A replay returns the first result; the same key or reference with another body is an error."""
    by_key = (
        await conn.execute(
            select(purchase).where(
                purchase.c.partner_id == partner_id, purchase.c.idempotency_key == cmd.idempotency_key
            )
        )
    ).one_or_none()
    if by_key is not None:
        replayed(by_key.request_hash, digest)
        return _view(by_key)
    by_reference = (
        await conn.execute(
            select(purchase).where(purchase.c.partner_id == partner_id, purchase.c.reference == cmd.reference)
        )
    ).one_or_none()
    if by_reference is not None:
        replayed(by_reference.request_hash, digest, **DUPLICATE_REFERENCE)
        return _view(by_reference)
    return None


async def lock_member(conn: AsyncConnection, member_id: int) -> None:
    """Serialise a member's purchases and activities (tier upgrades, caps). SQLite writers are serial already."""
    await conn.execute(select(member.c.id).where(member.c.id == member_id).with_for_update())


def validate(cmd: RecordPurchase, now: datetime) -> list[earning.Line]:
    """Everything about the request that needs no database; its lines in fen."""
    check_key(cmd.idempotency_key)
    if not cmd.reference.strip() or len(cmd.reference) > 200:
        raise DomainError("INVALID_INPUT", "reference must be 1 to 200 characters", "reference")
    if cmd.occurred_at.tzinfo is None or cmd.occurred_at > now + CLOCK_SKEW:
        raise DomainError("INVALID_INPUT", "occurredAt must be a time with zone, not in the future", "occurredAt")
    if cmd.store_id is not None and len(cmd.store_id) > 100:
        raise DomainError("INVALID_INPUT", "storeId must be at most 100 characters", "storeId")
    return earning.parse_lines(cmd.lines)


async def record(
    conn: AsyncConnection,
    partner_id: int,
    cmd: RecordPurchase,
    *,
    now: datetime,
    programme: Programme,
    policy: PointsPolicy,
) -> Purchase:
    lines = validate(cmd, now)
    digest = fingerprint(cmd)
    found = await _existing(conn, partner_id, cmd, digest)
    if found is not None:
        return found

    view = await members.consented_member(conn, partner_id, cmd.member_id, "purchases:write", now)
    await lock_member(conn, view.member_id)
    zone = policy.zone
    version = programme.at(cmd.occurred_at)
    if cmd.quote_id is None:
        level = version.tiers.by_number((await tiers.state(conn, view.member_id)).level)
        birthday = earning.in_birthday_month(view.birthday, cmd.occurred_at, zone)
        per_line, points, qualifying = earning.earn(version, lines, level, birthday)
    else:
        # The lines are the quoted basket at list prices; what is recorded is what the quote said is paid.
        quoted = await quotes.quoted(
            conn, partner_id, view.member_id, cmd.quote_id, now, store_id=cmd.store_id, lines=lines
        )
        level = version.tiers.by_number(quoted.level)
        per_line = [earning.LineEarning(qualifying, points) for _, qualifying, points in quoted.lines]
        points, qualifying = quoted.points, quoted.qualifying
        lines = [replace(line, amount=paid) for line, (paid, _, _) in zip(lines, quoted.lines, strict=True)]
    plan = plan_purchase(
        partner_id, view.member_id, cmd, lines, (per_line, points, qualifying), level.level, version, digest, now,
        public_id=new_id("pur", 12),
    )  # fmt: skip
    purchase_id = await conn.scalar(insert(purchase).values(**plan.purchase).returning(purchase.c.id))
    await conn.execute(insert(purchase_line), [{"purchase_id": purchase_id, **row} for row in plan.lines])
    if plan.earn is not None:
        earned = await ledger.earn_for_member(conn, partner_id, view.member_id, plan.earn, now, policy)
        txn_pk = await conn.scalar(select(ledger_txn.c.id).where(ledger_txn.c.public_id == earned.public_id))
        await conn.execute(update(purchase).where(purchase.c.id == purchase_id).values(earn_txn_id=txn_pk))
    await tiers.upgrade_if_due(conn, view.member_id, programme.at(now), now, zone)
    await outbox.record_event(conn, plan.event, now=now)
    return Purchase(plan.purchase["public_id"], cmd.reference, view.member_id, points, qualifying, plan.amount, 0)


@dataclass(frozen=True)
class PurchasePlan:
    """The rows one purchase writes, planned once: `record` writes them with statements, the import many at once."""

    purchase: dict[str, Any]  # without its id and earn_txn_id
    lines: list[dict[str, Any]]  # purchase_line, without purchase_id
    earn: ledger.Earn | None  # the points it earns, pending for the return window (ledger.plan_earn plans them)
    event: outbox.Event
    amount: int


def plan_purchase(
    partner_id: int,
    member_id: int,
    cmd: RecordPurchase,
    lines: Sequence[earning.Line],
    earned: tuple[Sequence[earning.LineEarning], int, int],  # per line, points, qualifying spend: earning.earn's
    tier_level: int,
    version: Version,
    digest: str,
    now: datetime,
    *,
    public_id: str,
) -> PurchasePlan:
    per_line, points, qualifying = earned
    amount = sum(line.amount for line in lines)
    return PurchasePlan(
        purchase={
            "public_id": public_id,
            "partner_id": partner_id,
            "member_id": member_id,
            "reference": cmd.reference,
            "store_id": cmd.store_id,
            "occurred_at": cmd.occurred_at,
            "amount": amount,
            "qualifying": qualifying,
            "points": points,
            "tier_level": tier_level,
            "idempotency_key": cmd.idempotency_key,
            "request_hash": digest,
            "created_at": now,
        },
        lines=[
            {
                "line_no": i,
                "sku": line.sku,
                "category": line.category,
                "amount": line.amount,
                "quantity": line.quantity,
                "prescription": line.prescription,
                "insurer_paid": line.insurer_paid,
                "qualifying": e.qualifying,
                "points": e.points,
            }
            for i, (line, e) in enumerate(zip(lines, per_line, strict=True))
        ],
        earn=ledger.Earn(
            cmd.member_id,
            points,
            f"purchase {cmd.reference}",
            cmd.reference,
            cmd.occurred_at + timedelta(days=version.return_window_days),
            f"purchase:{cmd.idempotency_key}",
        )
        if points > 0
        else None,
        event=outbox.Event(
            "purchase.recorded",
            member_id,
            partner_id,
            {"purchaseId": public_id, "reference": cmd.reference, "points": points},
        ),
        amount=amount,
    )


def _left_points(points: int, amount: int, refunded: int) -> int:
    """Points a line still carries once `refunded` of its `amount` is refunded (rounded down, never negative)."""
    return points * (amount - refunded) // amount if amount else 0


async def refund(
    conn: AsyncConnection, partner_id: int, cmd: RefundPurchase, *, now: datetime, policy: PointsPolicy
) -> Refund:
    check_key(cmd.idempotency_key)
    if (cmd.lines is None) == (cmd.amount is None):
        raise DomainError("INVALID_INPUT", "give either lines or amount", "lines")
    digest = fingerprint(cmd)
    replay = (
        await conn.execute(
            select(purchase_refund).where(
                purchase_refund.c.partner_id == partner_id, purchase_refund.c.idempotency_key == cmd.idempotency_key
            )
        )
    ).one_or_none()
    if replay is not None:
        replayed(replay.request_hash, digest)
        first = (await conn.execute(select(purchase).where(purchase.c.id == replay.purchase_id))).one()
        return Refund(replay.public_id, replay.amount, replay.points_reversed, replay.qualifying, _view(first))

    bought = (
        await conn.execute(
            select(purchase)
            .where(purchase.c.partner_id == partner_id, purchase.c.reference == cmd.purchase_reference)
            .with_for_update()
        )
    ).one_or_none()
    if bought is None:
        raise DomainError("PURCHASE_NOT_FOUND", "no purchase of yours with this reference", "purchaseReference")
    lines = (
        await conn.execute(
            select(purchase_line).where(purchase_line.c.purchase_id == bought.id).order_by(purchase_line.c.line_no)
        )
    ).all()
    remaining = [line.amount - line.refunded for line in lines]
    if cmd.amount is not None:
        wanted = earning.fen(cmd.amount, "amount")
        if wanted > sum(remaining):
            raise DomainError(
                "REFUND_EXCEEDS_PURCHASE", f"at most {earning.yuan(sum(remaining))} of this purchase remains", "amount"
            )
        shares = earning.shares(remaining, wanted)
    else:
        assert cmd.lines is not None
        if not cmd.lines:
            raise DomainError("INVALID_INPUT", "give at least one line", "lines")
        shares = [0] * len(lines)
        for i, item in enumerate(cmd.lines):
            wanted = earning.fen(item.amount, f"lines[{i}].amount")
            for j, line in enumerate(lines):
                if line.sku == item.sku:
                    take = min(wanted, remaining[j] - shares[j])
                    shares[j] += take
                    wanted -= take
            if wanted:
                raise DomainError(
                    "REFUND_EXCEEDS_PURCHASE", f"more refunded for {item.sku!r} than was bought", f"lines[{i}].amount"
                )

    reversed_points = qualifying = 0
    for line, share in zip(lines, shares, strict=True):
        if share == 0:
            continue
        before = _left_points(line.points, line.amount, line.refunded)
        after = _left_points(line.points, line.amount, line.refunded + share)
        reversed_points += before - after
        qualifying += share if line.qualifying else 0
        await conn.execute(
            update(purchase_line)
            .where(purchase_line.c.purchase_id == bought.id, purchase_line.c.line_no == line.line_no)
            .values(refunded=line.refunded + share)
        )
    amount = sum(shares)
    await conn.execute(
        update(purchase)
        .where(purchase.c.id == bought.id)
        .values(
            refunded=bought.refunded + amount,
            refunded_qualifying=bought.refunded_qualifying + qualifying,
            points_reversed=bought.points_reversed + reversed_points,
        )
    )
    if bought.refunded + amount == bought.amount:
        # Refunded in full: reward claims redeemed in this order are reversed (their points back to their lots).
        await claims.reverse_order(conn, partner_id, bought.reference, now)
    reverse_txn_pk = None
    if reversed_points > 0 and bought.earn_txn_id is not None:
        earned = await conn.scalar(select(ledger_txn.c.public_id).where(ledger_txn.c.id == bought.earn_txn_id))
        reversal = await ledger.reverse(
            conn,
            partner_id,
            ledger.Reverse(
                str(earned), reversed_points, f"refund of {bought.reference}", f"refund:{cmd.idempotency_key}"
            ),
            now,
            policy,
        )
        reverse_txn_pk = await conn.scalar(select(ledger_txn.c.id).where(ledger_txn.c.public_id == reversal.public_id))
    public_id = new_id("rfd", 12)
    await conn.execute(
        insert(purchase_refund).values(
            public_id=public_id,
            purchase_id=bought.id,
            partner_id=partner_id,
            amount=amount,
            qualifying=qualifying,
            points_reversed=reversed_points,
            reverse_txn_id=reverse_txn_pk,
            idempotency_key=cmd.idempotency_key,
            request_hash=digest,
            created_at=now,
        )
    )
    await outbox.record(
        conn,
        "purchase.refunded",
        now=now,
        member_id=bought.member_id,
        partner_id=partner_id,
        payload={"purchaseId": bought.public_id, "refundId": public_id, "pointsReversed": reversed_points},
    )
    now_row = (await conn.execute(select(purchase).where(purchase.c.id == bought.id))).one()
    return Refund(public_id, amount, reversed_points, qualifying, _view(now_row))


@dataclass(frozen=True)
class Summary:
    months: int
    since: datetime
    spend: int  # fen, net of refunds, every line
    visits: int
    categories: list[tuple[str, int]]  # (category, fen), biggest first


async def summaries_of(
    conn: AsyncConnection, views: Sequence[MemberView], months: int, now: datetime, zone: ZoneInfo
) -> list[Summary | ConsentRequired]:
    """Each member's purchases at every partner over the last `months`, within the consent's data window, for the
    members who consented to `purchases:read` (a page of them): visits and spend by category in one statement."""
    if not 1 <= months <= 36:
        raise DomainError("INVALID_INPUT", "months must be 1 to 36", "months")
    start = tiers.months_before(now, months, zone)
    since = {v.member_id: max(start, v.data_window_from or start) for v in views}
    ids = readable(views, "purchases:read")
    visits: dict[int, int] = dict.fromkeys(ids, 0)
    spend: dict[int, dict[str, int]] = {m: {} for m in ids}
    if ids:
        by_since: dict[datetime, list[int]] = {}
        for m in ids:
            by_since.setdefault(since[m], []).append(m)
        dialect = conn.dialect.name
        recent = or_(
            *(
                and_(among(dialect, purchase.c.member_id, members_), purchase.c.occurred_at > moment)
                for moment, members_ in by_since.items()
            )
        )
        counted = (
            select(purchase.c.member_id, literal(None, String).label("category"), func.count().label("amount"))
            .where(recent)
            .group_by(purchase.c.member_id)
        )
        by_category = (
            select(
                purchase.c.member_id,
                purchase_line.c.category,
                func.sum(purchase_line.c.amount - purchase_line.c.refunded).label("amount"),
            )
            .join(purchase, purchase.c.id == purchase_line.c.purchase_id)
            .where(recent)
            .group_by(purchase.c.member_id, purchase_line.c.category)
        )
        for row in await conn.execute(union_all(counted, by_category)):
            if row.category is None:
                visits[row.member_id] = int(row.amount)
            elif row.amount:
                spend[row.member_id][row.category] = int(row.amount)

    def summary(view: MemberView) -> Summary:
        categories = sorted(spend[view.member_id].items(), key=lambda c: (-c[1], c[0]))
        return Summary(months, since[view.member_id], sum(s for _, s in categories), visits[view.member_id], categories)

    return answers(views, "purchases:read", summary)
