"""From a fitted model and the members' summaries to each member's score: P(alive), purchases expected in the next
90 days, a 12-month value where the spend model could be fitted, RFM quintiles, a named segment, and whether the
member is at risk.

**At risk.** A member who came back at least once is at risk when BG/NBD's P(alive) is below the partner's
threshold. BG/NBD gives a member who never came back P(alive) = 1 by construction (in the model one can only drop
out right after a purchase), so for them the hub judges by recency alone: at risk once the time since their only
purchase day exceeds twice the typical gap between the partner's members' purchase days (the median of t_x / x over
members who came back), with a floor of 30 days and 90 days when nobody came back yet.

**Segments** rest on the RFM quintiles (1-5, 5 best; recency ranks the most recent highest), by the first rule of
`SEGMENTS` that holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.stats import rankdata

from hub.retention import model
from hub.retention.summary import Summaries

HORIZON_WEEKS = 90 / 7
MONTHLY_DISCOUNT = 0.01

# (segment, r range, f range, m range): the first that holds names the member.
SEGMENTS: tuple[tuple[str, range, range, range], ...] = (
    ("champions", range(4, 6), range(4, 6), range(4, 6)),
    ("loyal", range(3, 6), range(4, 6), range(1, 6)),
    ("cannot_lose", range(1, 3), range(4, 6), range(4, 6)),
    ("at_risk", range(1, 3), range(3, 6), range(1, 6)),
    ("new", range(5, 6), range(1, 3), range(1, 6)),
    ("promising", range(4, 6), range(1, 4), range(1, 6)),
    ("needs_attention", range(3, 4), range(1, 4), range(1, 6)),
    ("hibernating", range(2, 3), range(1, 3), range(1, 6)),
    ("lost", range(1, 2), range(1, 3), range(1, 6)),
)
SEGMENT_NAMES = tuple(name for name, *_ in SEGMENTS)


@dataclass(frozen=True)
class Scores:
    """One entry per member of the summaries, in their order."""

    p_alive: NDArray[np.float64]
    expected_90d: NDArray[np.float64]
    value_12m: NDArray[np.float64] | None  # fen
    r: NDArray[np.int64]
    f: NDArray[np.int64]
    m: NDArray[np.int64]
    segment: list[str]
    at_risk: NDArray[np.bool_]
    hiatus_days: int


def quintiles(values: NDArray[np.float64]) -> NDArray[np.int64]:
    """1-5 by rank (ties share their mean rank), 5 for the highest values."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    ranks = rankdata(values, method="average") / len(values)
    return np.clip(np.ceil(ranks * 5), 1, 5).astype(np.int64)


def segments(r: NDArray[np.int64], f: NDArray[np.int64], m: NDArray[np.int64]) -> list[str]:
    names = np.full(len(r), "needs_attention", dtype=object)
    decided = np.zeros(len(r), dtype=bool)
    for name, rs, fs, ms in SEGMENTS:
        hit = (
            ~decided
            & (r >= rs.start) & (r < rs.stop)
            & (f >= fs.start) & (f < fs.stop)
            & (m >= ms.start) & (m < ms.stop)
        )  # fmt: skip
        names[hit] = name
        decided |= hit
    return [str(n) for n in names]


def hiatus(members: Summaries) -> int:
    """Days after which a member who never came back is at risk: twice the median gap between purchase days."""
    came_back = members.days > 1
    if not np.any(came_back):
        return 90
    gaps = (members.last_day[came_back] - members.first_day[came_back]) / (members.days[came_back] - 1)
    return max(30, round(2 * float(np.median(gaps))))


def score(
    members: Summaries,
    fit: model.BgNbd,
    spend: model.GammaGamma | None,
    threshold: float,
    grouped: tuple[model.Patterns, NDArray[np.intp]] | None = None,
) -> Scores:
    """Every member's score. The model's predictions depend only on (x, t_x, T): they are computed once per pattern
    (`grouped`, the fit's own, or found here) and spread to the members sharing it: the hypergeometric terms,
    thirteen of them (90 days and twelve months), are paid per pattern (461,336 for 900,000 simulated members)."""
    patterns, member_pattern = grouped or members.patterns()
    x, t_x, T = patterns.x, patterns.t_x, patterns.T
    p_alive = model.p_alive(fit, x, t_x, T)[member_pattern]
    expected = model.expected_purchases(fit, HORIZON_WEEKS, x, t_x, T)[member_pattern]
    value = None
    if spend is not None:
        per_day = model.expected_spend(spend, members.x, members.repeat_spend)
        value = model.discounted_purchases(fit, x, t_x, T, MONTHLY_DISCOUNT)[member_pattern] * per_day
    recency = members.recency_days
    r = quintiles(-recency.astype(np.float64))
    f = quintiles(members.days.astype(np.float64))
    m = quintiles(members.spend.astype(np.float64))
    gap = hiatus(members)
    at_risk = np.where(members.x > 0, p_alive < threshold, recency > gap)
    return Scores(p_alive, expected, value, r, f, m, segments(r, f, m), at_risk, gap)
