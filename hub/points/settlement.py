"""Who owes whom. The issuer of a point owes its value to the partner that redeemed it.

Lot allocations say exactly which issuer's points each redemption consumed, so a statement is a sum, not an
estimate: per (issuer, redeemer) the points consumed in the period (redemptions and captures, less refunds, plus
debts repaid), valued at the issuer's point value. Periods are calendar months in the programme's time zone.

Reward claims settle per claim (hub/rewards/settlement.py): their points are kept out of the lines above
(allocation kind "reward") and appear as REWARD_POINTS lines (each issuer owes the redeemer its points' value)
and REWARD_SPONSOR lines (the sponsor owes the redeemer the rest of the reward's value).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.errors import DomainError
from hub.partners.models import partner, partner_terms
from hub.points.models import lot_allocation, point_lot
from hub.rewards.models import reward_settlement

DEFAULT_POINT_VALUE = Decimal("0.01")  # yuan per point unless a partner's terms say otherwise

# Allocation kinds that move value between partners: consumption by a redeemer (refunds negative), and the
# creditor side of a debt repayment (amount > 0, counterparty = the partner whose reversal created the debt).
_SETTLING = or_(
    lot_allocation.c.kind.in_(("redeem", "capture", "refund")),
    and_(lot_allocation.c.kind == "repay", lot_allocation.c.amount > 0),
)


@dataclass(frozen=True)
class Line:
    issuer_id: str
    issuer_name: str
    redeemer_id: str
    redeemer_name: str
    points: int
    value: Decimal  # yuan the issuer (or a reward's sponsor) owes the redeemer
    basis: str = "POINTS"  # POINTS | REWARD_POINTS | REWARD_SPONSOR


@dataclass(frozen=True)
class Statement:
    period: str
    lines: list[Line]
    receivable: Decimal  # what the viewer is owed as redeemer
    payable: Decimal  # what the viewer owes as issuer

    @property
    def net(self) -> Decimal:
        return self.receivable - self.payable


def period_bounds(period: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    match = re.fullmatch(r"(\d{4})-(\d{2})", period)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise DomainError("INVALID_PERIOD", "period must be a month written YYYY-MM", "period")
    year, month = int(match.group(1)), int(match.group(2))
    start = datetime(year, month, 1, tzinfo=zone)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
    return start, end


async def lines(conn: AsyncConnection, period: str, zone: ZoneInfo, *, party_id: int | None = None) -> list[Line]:
    """Statement lines for the period; with `party_id`, only lines that partner is party to."""
    start, end = period_bounds(period, zone)
    issuer = partner.alias("issuer")
    redeemer = partner.alias("redeemer")
    query = (
        select(
            issuer.c.public_id.label("issuer_id"),
            issuer.c.name.label("issuer_name"),
            redeemer.c.public_id.label("redeemer_id"),
            redeemer.c.name.label("redeemer_name"),
            partner_terms.c.point_value,
            func.sum(lot_allocation.c.amount).label("points"),
        )
        .select_from(lot_allocation)
        .join(point_lot, point_lot.c.id == lot_allocation.c.lot_id)
        .join(issuer, issuer.c.id == point_lot.c.issuer_id)
        .join(redeemer, redeemer.c.id == lot_allocation.c.partner_id)
        .outerjoin(partner_terms, partner_terms.c.partner_id == point_lot.c.issuer_id)
        .where(_SETTLING, lot_allocation.c.created_at >= start, lot_allocation.c.created_at < end)
        .group_by(issuer.c.public_id, issuer.c.name, redeemer.c.public_id, redeemer.c.name, partner_terms.c.point_value)
        .order_by(issuer.c.name, redeemer.c.name)
    )
    if party_id is not None:
        query = query.where(or_(point_lot.c.issuer_id == party_id, lot_allocation.c.partner_id == party_id))
    result = []
    for row in await conn.execute(query):
        if not row.points:
            continue
        value = Decimal(row.point_value) if row.point_value else DEFAULT_POINT_VALUE
        result.append(
            Line(
                row.issuer_id,
                row.issuer_name,
                row.redeemer_id,
                row.redeemer_name,
                int(row.points),
                (value * int(row.points)).quantize(Decimal("0.01")),
            )
        )
    return result + await _reward_lines(conn, start, end, party_id)


async def _reward_lines(conn: AsyncConnection, start: datetime, end: datetime, party_id: int | None) -> list[Line]:
    debtor = partner.alias("debtor")
    creditor = partner.alias("creditor")
    query = (
        select(
            debtor.c.public_id.label("debtor_id"),
            debtor.c.name.label("debtor_name"),
            creditor.c.public_id.label("creditor_id"),
            creditor.c.name.label("creditor_name"),
            reward_settlement.c.basis,
            func.sum(reward_settlement.c.points).label("points"),
            func.sum(reward_settlement.c.amount).label("amount"),
        )
        .join(debtor, debtor.c.id == reward_settlement.c.debtor_id)
        .join(creditor, creditor.c.id == reward_settlement.c.creditor_id)
        .where(
            reward_settlement.c.created_at >= start,
            reward_settlement.c.created_at < end,
            reward_settlement.c.debtor_id != reward_settlement.c.creditor_id,  # a partner does not owe itself
        )
        .group_by(debtor.c.public_id, debtor.c.name, creditor.c.public_id, creditor.c.name, reward_settlement.c.basis)
        .order_by(debtor.c.name, creditor.c.name, reward_settlement.c.basis)
    )
    if party_id is not None:
        query = query.where(or_(reward_settlement.c.debtor_id == party_id, reward_settlement.c.creditor_id == party_id))
    return [
        Line(
            row.debtor_id,
            row.debtor_name,
            row.creditor_id,
            row.creditor_name,
            int(row.points),
            Decimal(int(row.amount)).scaleb(-2),  # fen to yuan, two places
            f"REWARD_{row.basis}",
        )
        for row in await conn.execute(query)
        if row.amount
    ]


async def statement(conn: AsyncConnection, partner_id: int, period: str, zone: ZoneInfo) -> Statement:
    public_id = await conn.scalar(select(partner.c.public_id).where(partner.c.id == partner_id))
    found = await lines(conn, period, zone, party_id=partner_id)
    receivable = sum((line.value for line in found if line.redeemer_id == public_id), Decimal("0"))
    payable = sum((line.value for line in found if line.issuer_id == public_id), Decimal("0"))
    return Statement(period=period, lines=found, receivable=receivable, payable=payable)
