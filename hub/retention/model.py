"""Buy-till-you-die models for members who never cancel, they just stop coming: BG/NBD for how often and how long
(Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way"), Gamma-Gamma for how much (Fader, Hardie & Lee
2005, JMR 42(4)). Plain numpy/scipy, vectorised over members.

A member is (x, t_x, T) in weeks: x repeat purchase days after the first, t_x from the first to the last, T from
the first to the end of observation. Members sharing (x, t_x, T) share one likelihood term (`Patterns`: 900,000
simulated members over 78 weeks, counted in whole days, were 461,336 terms). Parameters are fitted in log space
(they must be positive) by L-BFGS-B with the likelihood's analytic gradient; every exponentiation is kept in a
form that cannot overflow (Fader & Hardie's note 027), and the hypergeometric function of the conditional
expectation is taken in log space, through Euler's transformation when scipy's value overflows (large x). A member
who never came back has P(alive) = 1 in BG/NBD by construction; the hub's at-risk rule judges them by recency
instead (scoring.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, special

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]


@dataclass(frozen=True)
class Patterns:
    """Distinct (x, t_x, T) and how many members have each."""

    x: Floats
    t_x: Floats
    T: Floats
    weight: Floats

    @classmethod
    def of_days(cls, x: Ints, t_x_days: Ints, T_days: Ints) -> tuple[Patterns, NDArray[np.intp]]:
        """The same from whole days (t_x and T in weeks after): one integer key per member, so grouping a million
        members is one sort of integers."""
        span = int(T_days.max()) + 1 if len(T_days) else 1
        key = (x.astype(np.int64) * span + t_x_days) * span + T_days
        unique, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
        found = cls(
            (unique // (span * span)).astype(np.float64),
            ((unique // span) % span) / 7.0,
            (unique % span) / 7.0,
            counts.astype(np.float64),
        )
        return found, inverse.reshape(-1)

    @classmethod
    def of(cls, x: Floats, t_x: Floats, T: Floats) -> tuple[Patterns, NDArray[np.intp]]:
        """The patterns of these members, and for each member the index of its pattern."""
        rows = np.stack([x, t_x, T], axis=1)
        unique, inverse, counts = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
        found = cls(unique[:, 0], unique[:, 1], unique[:, 2], counts.astype(np.float64))
        return found, inverse.reshape(-1)


@dataclass(frozen=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float

    def as_dict(self) -> dict[str, float]:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}


def bgnbd_log_likelihood(params: Floats, x: Floats, t_x: Floats, T: Floats) -> Floats:
    """ln L per member, in the overflow-safe form: ln A1 + ln A2 − (r+x) ln(α+t_x) + ln[((α+t_x)/(α+T))^(r+x) +
    δ a/(b+x−1)], the ratio being at most 1."""
    return bgnbd_log_likelihood_and_gradient(params, x, t_x, T, gradient=False)[0]


def bgnbd_log_likelihood_and_gradient(
    params: Floats, x: Floats, t_x: Floats, T: Floats, *, gradient: bool = True
) -> tuple[Floats, Floats | None]:
    """ln L per member and, with `gradient`, its derivatives in (r, α, a, b), one row each: the fit then needs one
    evaluation per step instead of five (finite differences). tests/test_retention_model.py checks them against
    finite differences."""
    r, alpha, a, b = params
    ln_a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    ln_a2 = special.gammaln(a + b) + special.gammaln(b + x) - special.gammaln(b) - special.gammaln(a + b + x)
    log_span = np.log(alpha + t_x) - np.log(alpha + T)  # ≤ 0
    ratio = np.exp((r + x) * log_span)
    per_repeat = np.where(x > 0, 1 / np.maximum(b + x - 1, 1e-12), 0.0)  # δ/(b+x−1)
    bracket = ratio + a * per_repeat
    ll = ln_a1 + ln_a2 - (r + x) * np.log(alpha + t_x) + np.log(bracket)
    if not gradient:
        return ll, None
    d_r = special.digamma(r + x) - special.digamma(r) + np.log(alpha) - np.log(alpha + t_x) + ratio * log_span / bracket
    d_alpha = r / alpha - (r + x) / (alpha + t_x) + ratio * (r + x) * (1 / (alpha + t_x) - 1 / (alpha + T)) / bracket
    shared = special.digamma(a + b) - special.digamma(a + b + x)
    d_a = shared + per_repeat / bracket
    d_b = shared + special.digamma(b + x) - special.digamma(b) - a * per_repeat**2 / bracket
    return ll, np.stack([d_r, d_alpha, d_a, d_b])


@dataclass(frozen=True)
class Fit:
    params: BgNbd
    log_likelihood: float
    converged: bool
    message: str
    iterations: int


class FitError(ValueError):
    """The data cannot support a fit (too few members or repeat purchases)."""


MIN_MEMBERS = 20
BOUND = 10.0  # on each log-parameter: e^±10 stands for "no spread" (the limit) on the rescaled clock
MIN_REPEAT_MEMBERS = 5


def fit_bgnbd(patterns: Patterns, penalty: float = 0.0) -> Fit:
    """Maximum likelihood over the patterns (weighted), from r = α = a = b = 1 in log space; time is rescaled so
    the longest T is 10, which keeps α near 1 whatever the unit, and scaled back after."""
    members = float(patterns.weight.sum())
    repeaters = float(patterns.weight[patterns.x > 0].sum())
    if members < MIN_MEMBERS or repeaters < MIN_REPEAT_MEMBERS:
        raise FitError(
            f"too few members to fit: {int(members)} with a purchase, {int(repeaters)} who came back "
            f"(at least {MIN_MEMBERS} and {MIN_REPEAT_MEMBERS})"
        )
    scale = 10.0 / max(float(patterns.T.max()), 1e-9)
    x, t_x, T, w = patterns.x, patterns.t_x * scale, patterns.T * scale, patterns.weight

    def negative(log_params: Floats) -> tuple[float, Floats]:
        """−mean ln L and its gradient in the log-parameters (the chain rule's factor is the parameter)."""
        params = np.exp(log_params)
        ll, slopes = bgnbd_log_likelihood_and_gradient(params, x, t_x, T)
        assert slopes is not None
        value = -float(np.dot(w, ll)) / members + penalty * float(np.sum(params**2))
        return value, -(slopes @ w) / members * params + 2 * penalty * params**2

    bounds = [(-BOUND, BOUND)] * 4
    found = optimize.minimize(negative, np.zeros(4), jac=True, method="L-BFGS-B", bounds=bounds)
    if not found.success:
        # L-BFGS-B's line search gives up ("ABNORMAL") on a flat optimum, where the gradient is mostly rounding,
        # or it ran into a non-finite likelihood: finish without gradients from where it stopped.
        start = found.x if np.isfinite(found.fun) else np.zeros(4)
        found = optimize.minimize(
            lambda log_params: negative(log_params)[0], start, method="Nelder-Mead", bounds=bounds,
            options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-10},
        )  # fmt: skip
    r, alpha, a, b = np.exp(found.x)
    params = BgNbd(float(r), float(alpha / scale), float(a), float(b))
    natural = np.array([r, alpha / scale, a, b])
    log_likelihood = float(np.dot(w, bgnbd_log_likelihood(natural, x, patterns.t_x, patterns.T)))
    message = str(found.message)
    names = ("r", "alpha", "a", "b")
    at_bound = [name for name, value in zip(names, found.x, strict=True) if abs(value) >= BOUND - 0.01]
    if at_bound:
        # The limit of a mixture with no spread: members who all buy at one rate (r, α → ∞ at a fixed r/α) or all
        # drop out with one probability (a, b → ∞ at a fixed a/(a+b)). The likelihood is flat along that ridge, so
        # the predictions hold; say which, as the members do not differ there.
        message = f"{message} ({', '.join(at_bound)} at the bound: no spread between members there)"
    return Fit(params, log_likelihood, bool(found.success), message, int(found.nit))


def p_alive(params: BgNbd, x: Floats, t_x: Floats, T: Floats) -> Floats:
    """P(still a customer | x, t_x, T) = 1 / (1 + δ a/(b+x−1) ((α+T)/(α+t_x))^(r+x)); exactly 1 when x = 0 (in
    BG/NBD a member can only drop out right after a purchase)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    log_odds = np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    return np.where(x > 0, special.expit(-log_odds), 1.0)


def _log_hyp2f1(a: Floats, b: Floats, c: Floats, z: Floats) -> Floats:
    """ln ₂F₁(a, b; c; z) for 0 ≤ z < 1, finite where scipy's value overflows (Euler's transformation)."""
    direct = special.hyp2f1(a, b, c, z)
    with np.errstate(divide="ignore", invalid="ignore"):
        found = np.log(direct)
    bad = ~np.isfinite(found) | (direct <= 0)
    if np.any(bad):
        # ₂F₁(a,b;c;z) = (1−z)^(c−a−b) ₂F₁(c−a, c−b; c; z)
        euler = special.hyp2f1(c[bad] - a[bad], c[bad] - b[bad], c[bad], z[bad])
        found = found.copy()
        found[bad] = (c[bad] - a[bad] - b[bad]) * np.log1p(-z[bad]) + np.log(euler)
    return found


def expected_purchases(params: BgNbd, t: float, x: Floats, t_x: Floats, T: Floats) -> Floats:
    """E[purchases in the next t weeks | x, t_x, T] (the paper's eq. 10), in log space. Valid for a < 1 as well
    (the signs of a − 1 and of the bracket turn together): tests/test_retention_model.py checks it against
    members simulated from known parameters on both sides of 1."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = t / (alpha + T + t)
    log_power = (r + x) * (np.log(alpha + T) - np.log(alpha + T + t))
    log_h = _log_hyp2f1(r + x, b + x, np.full_like(x, a + b) + x - 1, z)
    first = (a + b + x - 1) / (a - 1) * -np.expm1(log_power + log_h)
    denominator = 1 + np.where(
        x > 0,
        a / np.maximum(b + x - 1, 1e-12) * np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + t_x))),
        0.0,
    )
    return first / denominator


def expected_purchases_unconditional(params: BgNbd, t: Floats) -> Floats:
    """E[X(t)]: repeat purchases expected of a new member in (0, t] (the paper's eq. 9), for each t ≥ 0."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    t = np.maximum(np.asarray(t, dtype=np.float64), 0.0)
    z = t / (alpha + t)
    log_power = r * (np.log(alpha) - np.log(alpha + t))
    log_h = _log_hyp2f1(np.full_like(t, r), np.full_like(t, b), np.full_like(t, a + b - 1), z)
    return (a + b - 1) / (a - 1) * -np.expm1(log_power + log_h)


@dataclass(frozen=True)
class GammaGamma:
    p: float
    q: float
    v: float

    def as_dict(self) -> dict[str, float]:
        return {"p": self.p, "q": self.q, "v": self.v}


SPEND_SAMPLE = 100_000


def fit_gamma_gamma(x: Floats, spend: Floats) -> GammaGamma | None:
    """Mean spend per repeat purchase day, across members with x > 0 (None when too few, when the fit does not
    give q > 1, or when spend moves with frequency, which the model assumes it does not)."""
    keep = (x > 0) & (spend > 0)
    x, m = x[keep], spend[keep]
    if len(x) < MIN_REPEAT_MEMBERS * 4:
        return None
    if np.std(x) > 0 and np.std(m) > 0 and abs(float(np.corrcoef(x, m)[0, 1])) > 0.3:
        return None
    if len(x) > SPEND_SAMPLE:
        # Three parameters, estimated from a random 100,000 repeat buyers: a tenth of a million members' gammaln
        # calls (a mean spend does not collapse into patterns), seeded so the same data always gives the same fit.
        chosen = np.random.default_rng(0).choice(len(x), SPEND_SAMPLE, replace=False)
        x, m = x[chosen], m[chosen]
    scale = float(np.mean(m))
    m = m / scale

    def negative(log_params: Floats) -> float:
        p, q, v = np.exp(log_params)
        px = p * x
        ll = (
            special.gammaln(px + q) - special.gammaln(px) - special.gammaln(q) + q * np.log(v)
            + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * np.log(x * m + v)
        )  # fmt: skip
        return -float(np.mean(ll))

    found = optimize.minimize(negative, np.zeros(3), method="L-BFGS-B", bounds=[(-10.0, 10.0)] * 3)
    p, q, v = np.exp(found.x)
    if not found.success or q <= 1:
        return None
    return GammaGamma(float(p), float(q), float(v * scale))


def expected_spend(model: GammaGamma, x: Floats, spend: Floats) -> Floats:
    """E[mean spend | x, m̄]: between the population's mean and the member's own, by how much the member bought."""
    p, q, v = model.p, model.q, model.v
    population = v * p / (q - 1)
    weight = p * x / (p * x + q - 1)
    return (1 - weight) * population + weight * np.where(x > 0, spend, population)


WEEKS_PER_MONTH = 52.0 / 12.0


def discounted_purchases(params: BgNbd, x: Floats, t_x: Floats, T: Floats, monthly_rate: float) -> Floats:
    """Σ over the next 12 months of the purchases expected that month, discounted monthly: times the expected spend
    of a purchase, the member's 12-month value."""
    total = np.zeros_like(x)
    before = np.zeros_like(x)
    for month in range(1, 13):
        through = expected_purchases(params, month * WEEKS_PER_MONTH, x, t_x, T)
        total += (through - before) / (1 + monthly_rate) ** month
        before = through
    return total
