"""What a purchase earns: pure arithmetic over the version in force, the member's tier and birthday.

Per line: qualifying spend × points per yuan × the category's multiplier × the tier's multiplier × the
birthday-month multiplier, rounded down to whole points. The purchase earns the sum of its lines, so a refund of
a line takes back exactly that line's points. Growth value is the qualifying spend itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from hub.errors import DomainError
from hub.programme.config import Level, Version

MAX_FEN = 10**13  # 100 billion yuan: beyond any real purchase, and far inside a 64-bit integer


def fen(amount: str, field: str) -> int:
    """A decimal string of yuan ("12.30") as integer fen; INVALID_AMOUNT for anything else."""
    try:
        value = Decimal(amount.strip())
    except (InvalidOperation, AttributeError):
        raise DomainError("INVALID_AMOUNT", f"not an amount of yuan: {amount!r}", field) from None
    if not value.is_finite() or value.as_tuple().exponent < -2:  # type: ignore[operator]
        raise DomainError("INVALID_AMOUNT", f"at most two decimals: {amount!r}", field)
    if value <= 0 or value * 100 >= MAX_FEN:
        raise DomainError("INVALID_AMOUNT", f"must be a positive amount: {amount!r}", field)
    return int(value * 100)


def yuan(amount_fen: int) -> str:
    return f"{Decimal(amount_fen) / 100:.2f}"


MAX_LINES = 200


@dataclass(frozen=True)
class Line:
    sku: str
    category: str
    amount: int  # fen, the line's total
    quantity: int
    prescription: bool
    insurer_paid: bool
    discountable: bool = True  # the partner's own flag: False keeps tier discounts, coupons and points off it

    @property
    def offsettable(self) -> bool:
        """Discounts, coupons and points as cash may apply: never to prescription or insurer-paid lines."""
        return self.discountable and not self.prescription and not self.insurer_paid


def parse_lines(given: Sequence[Any]) -> list[Line]:
    """A basket's lines (a purchase's, a quote's) checked and in fen; each input has sku, category, amount (yuan),
    quantity, prescription, insurer_paid and discountable."""
    if not 1 <= len(given) <= MAX_LINES:
        raise DomainError("INVALID_INPUT", f"a basket has 1 to {MAX_LINES} lines", "lines")
    parsed = []
    for i, line in enumerate(given):
        if not line.sku.strip() or len(line.sku) > 100:
            raise DomainError("INVALID_INPUT", "sku must be 1 to 100 characters", f"lines[{i}].sku")
        if not line.category.strip() or len(line.category) > 100:
            raise DomainError("INVALID_INPUT", "category must be 1 to 100 characters", f"lines[{i}].category")
        if not 1 <= line.quantity <= 100_000:
            raise DomainError("INVALID_INPUT", "quantity must be 1 to 100000", f"lines[{i}].quantity")
        parsed.append(
            Line(
                sku=line.sku,
                category=line.category,
                amount=fen(line.amount, f"lines[{i}].amount"),
                quantity=line.quantity,
                prescription=line.prescription,
                insurer_paid=line.insurer_paid,
                discountable=line.discountable,
            )
        )
    return parsed


def shares(weights: list[int], amount: int) -> list[int]:
    """Split `amount` over lines in proportion to `weights`, never more than a line's weight; the largest
    remainders get the odd fen, so the shares sum to `amount` exactly (a refund over lines, a discount over a
    basket)."""
    total = sum(weights)
    if total == 0:
        return [0] * len(weights)
    split = [amount * w // total for w in weights]
    short = amount - sum(split)
    for i in sorted(range(len(weights)), key=lambda i: -(amount * weights[i] % total)):
        if short == 0:
            break
        if split[i] < weights[i]:
            split[i] += 1
            short -= 1
    return split


@dataclass(frozen=True)
class LineEarning:
    qualifying: bool
    points: int


def in_birthday_month(birthday: date | None, occurred_at: datetime, zone: ZoneInfo) -> bool:
    return birthday is not None and occurred_at.astimezone(zone).month == birthday.month


def earn(version: Version, lines: list[Line], level: Level, birthday_month: bool) -> tuple[list[LineEarning], int, int]:
    """(per-line earnings, total points, qualifying spend in fen)."""
    rules = version.earning
    multiplier = level.points_multiplier * (rules.birthday_month_multiplier if birthday_month else Decimal(1))
    earned: list[LineEarning] = []
    for line in lines:
        excluded = (rules.exclude_prescription and line.prescription) or (
            rules.exclude_insurer_paid and line.insurer_paid
        )
        if excluded:
            earned.append(LineEarning(False, 0))
            continue
        category = rules.category_multipliers.get(line.category, Decimal(1))
        raw = Decimal(line.amount) / 100 * rules.points_per_yuan * category * multiplier
        earned.append(LineEarning(True, int(raw.to_integral_value(rounding=ROUND_FLOOR))))
    qualifying = sum(line.amount for line, e in zip(lines, earned, strict=True) if e.qualifying)
    return earned, sum(e.points for e in earned), qualifying
