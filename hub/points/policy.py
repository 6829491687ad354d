"""The programme's points rules that the ledger applies: when lots expire, how long holds live, negative balances."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

EXPIRY_FORMS = "never | days:N | months_end:N | year_end:N"


@dataclass(frozen=True)
class ExpiryRule:
    """When a lot that became available at a given time expires.

    never; days:N (N days later); months_end:N (end of the Nth month after, 0 = end of this month);
    year_end:N (end of the calendar year N years after, 0 = end of this year). Period ends are taken in the
    programme's time zone.
    """

    kind: str
    n: int = 0

    @classmethod
    def parse(cls, text: str) -> ExpiryRule:
        kind, _, count = text.strip().partition(":")
        if kind == "never" and not count:
            return cls("never")
        if kind in ("days", "months_end", "year_end") and count.isdigit():
            n = int(count)
            if kind == "days" and n < 1:
                raise ValueError("days:N needs N >= 1")
            return cls(kind, n)
        raise ValueError(f"points expiry must be one of {EXPIRY_FORMS}, got {text!r}")

    def expires_at(self, available_at: datetime, zone: ZoneInfo) -> datetime | None:
        if self.kind == "never":
            return None
        if self.kind == "days":
            return available_at + timedelta(days=self.n)
        local = available_at.astimezone(zone)
        if self.kind == "months_end":
            month_index = local.month - 1 + self.n
            year, month = local.year + month_index // 12, month_index % 12 + 1
            last_day = calendar.monthrange(year, month)[1]
            end = datetime(year, month, last_day, tzinfo=zone) + timedelta(days=1)
        else:
            end = datetime(local.year + self.n + 1, 1, 1, tzinfo=zone)
        return end  # the first instant after the period: points are usable through its last day


@dataclass(frozen=True)
class PointsPolicy:
    expiry: ExpiryRule
    allow_negative: bool  # a refund after the points were spent may take the balance below zero
    hold_ttl_default: int  # seconds
    hold_ttl_max: int
    zone: ZoneInfo
