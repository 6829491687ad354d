"""The retention models against what they must be: parameters recovered from members simulated from them, the
conditional expectation against what simulated members did next, the closed forms at 50 digits (mpmath) on
hand-picked cases, RFM quintiles and segments."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from hub.retention import model, scoring
from hub.retention.summary import Summaries

CDNOW = model.BgNbd(r=0.243, alpha=4.414, a=0.793, b=2.426)  # Fader, Hardie & Lee's CDNOW estimates (weeks)
OTHER = model.BgNbd(r=0.8, alpha=6.0, a=1.6, b=4.0)  # a > 1: the other side of eq. 10's (a - 1)


def simulate(params: model.BgNbd, members: int, seed: int, span: np.ndarray) -> list[np.ndarray]:
    """BG/NBD's story, each member's repeat purchase times (weeks after the first) within `span`: purchases at the
    member's rate λ ~ Gamma(r, α); after each repeat purchase the member leaves for good with probability
    p ~ Beta(a, b)."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(params.r, 1 / params.alpha, members)
    leave = rng.beta(params.a, params.b, members)
    timelines = []
    for i in range(members):
        times, t = [], 0.0
        while rate[i] > 0:
            t += rng.exponential(1 / rate[i])
            if t > span[i]:
                break
            times.append(t)
            if rng.random() < leave[i]:
                break
        timelines.append(np.array(times))
    return timelines


def observed(timelines: list[np.ndarray], T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, t_x) of each member as seen T weeks after their first purchase."""
    x = np.array([float((t <= end).sum()) for t, end in zip(timelines, T, strict=True)])
    t_x = np.array([float(t[t <= end].max()) if (t <= end).any() else 0.0 for t, end in zip(timelines, T, strict=True)])
    return x, t_x


def test_the_fit_recovers_the_parameters_it_was_simulated_from() -> None:
    """Tolerance: 15 % of each parameter at 20,000 members (their standard errors there are about 3-8 %)."""
    for truth, seed in ((CDNOW, 1), (OTHER, 2)):
        T = np.random.default_rng(seed + 100).uniform(13, 52, 20_000)
        x, t_x = observed(simulate(truth, 20_000, seed, T), T)
        patterns, inverse = model.Patterns.of(x, t_x, T)
        fit = model.fit_bgnbd(patterns)
        assert fit.converged, fit.message
        for name, value in truth.as_dict().items():
            found = fit.params.as_dict()[name]
            assert abs(found - value) / value < 0.15, (name, found, value)
        # Patterns compress, they do not approximate: their weighted sum is the sum over members.
        natural = np.array(list(fit.params.as_dict().values()))
        assert fit.log_likelihood == pytest.approx(model.bgnbd_log_likelihood(natural, x, t_x, T).sum(), rel=1e-9)
        assert len(inverse) == len(x)


def test_the_conditional_expectation_matches_what_simulated_members_did_next() -> None:
    """Eq. 10 against the purchases members simulated from the same parameters made in the next 13 weeks, for
    a < 1 and a > 1 (tolerance 8 % of the total at 20,000 members)."""
    for truth, seed in ((CDNOW, 3), (OTHER, 4)):
        T = np.random.default_rng(seed + 100).uniform(13, 52, 20_000)
        timelines = simulate(truth, 20_000, seed, T + 13)
        x, t_x = observed(timelines, T)
        later, _ = observed(timelines, T + 13)
        predicted = model.expected_purchases(truth, 13.0, x, t_x, T).sum()
        assert predicted == pytest.approx((later - x).sum(), rel=0.08)
        # The unconditional E[X(t)] against members' first 13 weeks.
        first, _ = observed(timelines, np.full(len(T), 13.0))
        expected = model.expected_purchases_unconditional(truth, np.array([13.0]))[0] * len(T)
        assert expected == pytest.approx(first.sum(), rel=0.08)


mpmath.mp.dps = 50


def exact_p_alive(p: model.BgNbd, x: int, t_x: float, T: float) -> mpmath.mpf:
    if x == 0:
        return mpmath.mpf(1)
    r, alpha, a, b = (mpmath.mpf(v) for v in (p.r, p.alpha, p.a, p.b))
    return 1 / (1 + a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x))


def exact_expected(p: model.BgNbd, t: float, x: int, t_x: float, T: float) -> mpmath.mpf:
    """Fader, Hardie & Lee (2005), eq. 10, term by term."""
    r, alpha, a, b = (mpmath.mpf(v) for v in (p.r, p.alpha, p.a, p.b))
    z = t / (alpha + T + t)
    h = mpmath.hyp2f1(r + x, b + x, a + b + x - 1, z)
    first = (a + b + x - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * h)
    delta = 1 if x > 0 else 0
    return first / (1 + delta * a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x))


@pytest.mark.parametrize(
    ("x", "t_x", "T"),
    [
        (0, 0.0, 30.0),  # never came back: P(alive) = 1 by construction
        (1, 5.0, 30.0),
        (4, 30.0, 30.0),  # bought on the last day: t_x = T
        (12, 20.0, 52.0),
        (200, 51.0, 52.0),  # large x: scipy's 2F1 overflows, Euler's transformation takes over
        (800, 40.0, 52.0),
    ],
)
@pytest.mark.parametrize("params", [CDNOW, OTHER])
def test_p_alive_and_the_conditional_expectation_match_their_closed_forms(
    params: model.BgNbd, x: int, t_x: float, T: float
) -> None:
    one = (np.array([float(x)]), np.array([t_x]), np.array([T]))
    assert model.p_alive(params, *one)[0] == pytest.approx(float(exact_p_alive(params, x, t_x, T)), rel=1e-9)
    found = model.expected_purchases(params, 13.0, *one)[0]
    assert np.isfinite(found)
    assert found == pytest.approx(float(exact_expected(params, 13.0, x, t_x, T)), rel=1e-7)
    if t_x == T and x > 0:  # nothing since the last purchase: P(alive) = (b + x − 1) / (a + b + x − 1)
        assert model.p_alive(params, *one)[0] == pytest.approx((params.b + x - 1) / (params.a + params.b + x - 1))


def test_the_likelihood_stays_finite_where_the_plain_formula_overflows() -> None:
    x, t_x, T = np.array([3000.0]), np.array([10.0]), np.array([500.0])
    assert np.isfinite(model.bgnbd_log_likelihood(np.array([0.243, 4.414, 0.793, 2.426]), x, t_x, T)).all()


def test_too_few_members_fit_nothing() -> None:
    patterns, _ = model.Patterns.of(np.array([0.0, 1.0]), np.array([0.0, 2.0]), np.array([10.0, 10.0]))
    with pytest.raises(model.FitError, match="too few members"):
        model.fit_bgnbd(patterns)


def test_quintiles_rank_from_1_to_5_with_ties_sharing_a_rank() -> None:
    assert scoring.quintiles(np.arange(1.0, 11.0)).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert scoring.quintiles(np.array([7.0] * 5)).tolist() == [3] * 5
    assert scoring.quintiles(np.array([])).tolist() == []


@pytest.mark.parametrize(
    ("rfm", "segment"),
    [
        ((5, 5, 5), "champions"),
        ((4, 4, 4), "champions"),
        ((3, 5, 1), "loyal"),
        ((2, 5, 5), "cannot_lose"),
        ((1, 3, 2), "at_risk"),
        ((5, 1, 1), "new"),
        ((4, 3, 1), "promising"),
        ((3, 2, 2), "needs_attention"),
        ((2, 2, 5), "hibernating"),
        ((1, 1, 1), "lost"),
    ],
)
def test_segments_follow_the_rfm_table(rfm: tuple[int, int, int], segment: str) -> None:
    r, f, m = (np.array([v]) for v in rfm)
    assert scoring.segments(r, f, m) == [segment]


def _summaries(days: list[int], first: list[int], last: list[int], as_of: int) -> Summaries:
    n = len(days)
    ints = np.array
    return Summaries(ints(range(n)), ints(days), ints(first), ints(last), ints([100] * n), ints([100] * n), as_of)


def test_a_member_who_never_came_back_is_judged_by_recency() -> None:
    """Twice the median gap between purchase days (here 10 days, so the floor of 30 holds); no one came back: 90."""
    came_back = _summaries([3, 3, 1, 1], [0, 0, 50, 90], [20, 20, 50, 90], as_of=100)
    assert scoring.hiatus(came_back) == 30
    assert scoring.hiatus(_summaries([1, 1], [0, 5], [0, 5], as_of=100)) == 90
    wide = _summaries([2, 2, 1], [0, 0, 0], [100, 100, 0], as_of=200)
    assert scoring.hiatus(wide) == 200
    scores = scoring.score(came_back, CDNOW, None, threshold=0.3)
    assert scores.p_alive[2] == 1.0 and scores.p_alive[3] == 1.0
    assert scores.at_risk.tolist()[2:] == [True, False]  # 50 days since their only purchase day; 10 days


def test_the_likelihoods_gradient_is_its_derivative() -> None:
    """The fit's analytic gradient against central differences, at parameters on both sides of 1 and members
    who never came back, came back often, or bought on their last day."""
    x = np.array([0.0, 0.0, 1.0, 3.0, 12.0, 40.0, 2.0])
    t_x = np.array([0.0, 0.0, 5.0, 20.0, 30.0, 51.0, 10.0])
    T = np.array([3.0, 52.0, 30.0, 52.0, 52.0, 52.0, 10.0])
    for params in (CDNOW, OTHER, model.BgNbd(r=2.5, alpha=0.3, a=0.2, b=9.0)):
        at = np.array(list(params.as_dict().values()))
        _, slopes = model.bgnbd_log_likelihood_and_gradient(at, x, t_x, T)
        assert slopes is not None
        for i in range(4):
            step = np.zeros(4)
            step[i] = 1e-6 * at[i]
            above = model.bgnbd_log_likelihood(at + step, x, t_x, T)
            below = model.bgnbd_log_likelihood(at - step, x, t_x, T)
            assert slopes[i] == pytest.approx((above - below) / (2 * step[i]), rel=1e-5, abs=1e-7), (params, i)


def test_patterns_from_whole_days_are_the_patterns_of_the_weeks() -> None:
    rng = np.random.default_rng(5)
    first = rng.integers(0, 300, 5_000)
    days = rng.integers(1, 6, 5_000)
    last = np.where(days > 1, first + rng.integers(0, 60, 5_000), first)
    members = Summaries(np.arange(5_000), days, first, last, days * 100, np.full(5_000, 100), 400)
    by_days, member_day_pattern = members.patterns()
    by_weeks, member_week_pattern = model.Patterns.of(members.x, members.t_x, members.T)
    for name in ("x", "t_x", "T", "weight"):
        assert np.array_equal(getattr(by_days, name), getattr(by_weeks, name)), name
    assert np.array_equal(member_day_pattern, member_week_pattern)
