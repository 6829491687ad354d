"""Who owes whom for a redeemed claim of value F paid with points: each issuer of the lots the points came from
owes the redeemer its points' value, and the sponsor owes the redeemer the rest of F.

The points' values are rounded so that together they make exactly the rounded total (largest remainder), so a
claim's lines always sum to F, to the fen; `hub ledger verify` checks it for every claim.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal


@dataclass(frozen=True)
class Share:
    issuer_id: int
    points: int
    amount: int  # fen


def split(face_value: int, taken: Sequence[tuple[int, int]], rates: Mapping[int, Decimal]) -> tuple[list[Share], int]:
    """(each issuer's share, the sponsor's share) of `face_value` fen, for `taken` (issuer, points) valued at each
    issuer's `rates` (yuan a point). The shares sum to `face_value`; the sponsor's is negative only when the
    points are worth more than the reward."""
    points: dict[int, int] = {}
    for issuer, amount in taken:
        points[issuer] = points.get(issuer, 0) + amount
    exact = {issuer: p * rates[issuer] * 100 for issuer, p in points.items() if p}
    total = int(sum(exact.values(), Decimal(0)).to_integral_value(rounding=ROUND_HALF_UP))
    floors = {issuer: int(value.to_integral_value(rounding=ROUND_FLOOR)) for issuer, value in exact.items()}
    short = total - sum(floors.values())
    for issuer in sorted(exact, key=lambda i: (floors[i] - exact[i], i))[:short]:
        floors[issuer] += 1
    shares = [Share(issuer, points[issuer], floors[issuer]) for issuer in sorted(floors)]
    return shares, face_value - total
