"""Fitting and scoring a partner's members, keeping the fit and the scores, and telling the partner who slips away.

`score_partner` is what `hub worker` runs daily and `hub analytics score` on demand: one SQL aggregation
(summary.py), the fit and the scores off the event loop (numpy, in a thread), then one transaction that keeps the
fit, replaces the partner's scores and records a `member.at_risk` event for each member who newly crossed the
partner's threshold and was not announced in the last 90 days. A fit that fails keeps the previous scores.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import delete, exists, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db import Database, among, bulk_insert, bulk_insert_columns
from hub.errors import DomainError
from hub.events import outbox
from hub.ids import new_id
from hub.partners.models import DEFAULT_AT_RISK_THRESHOLD, partner, partner_terms
from hub.points import queries as points
from hub.purchases.models import purchase
from hub.retention import model, scoring
from hub.retention.models import retention_fit, retention_notice, retention_run, retention_score
from hub.retention.summary import EPOCH, Summaries, summarise

NOTICE_EVERY = timedelta(days=90)


@dataclass(frozen=True)
class FitView:
    public_id: str
    fitted_at: datetime
    members: int
    params: dict[str, float]
    log_likelihood: float


@dataclass
class Scored:
    """What scoring a partner did."""

    partner_id: int
    members: int
    fit: FitView | None = None
    error: str | None = None  # why nothing was fitted (the previous scores stay)
    segments: Counter[str] = field(default_factory=Counter)
    at_risk: int = 0
    announced: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        return self.error or f"scored {self.members} members"


@dataclass(frozen=True)
class Fitted:
    """A fit and the scores it gives, computed off the event loop."""

    fit: model.Fit
    spend: model.GammaGamma | None
    patterns: int
    scores: scoring.Scores


def fit_and_score(members: Summaries, threshold: float) -> Fitted:
    patterns, member_pattern = members.patterns()
    fit = model.fit_bgnbd(patterns)
    spend = model.fit_gamma_gamma(members.x, members.repeat_spend)
    scores = scoring.score(members, fit.params, spend, threshold, (patterns, member_pattern))
    finite = [scores.p_alive, scores.expected_90d, *([scores.value_12m] if scores.value_12m is not None else [])]
    if fit.converged and not all(np.isfinite(values).all() for values in finite):
        fit = dataclasses.replace(fit, converged=False, message="the fitted model gives scores that are not finite")
    return Fitted(fit, spend, len(patterns.x), scores)


async def threshold_of(conn: AsyncConnection, partner_id: int) -> float:
    found = await conn.scalar(select(partner_terms.c.at_risk_threshold).where(partner_terms.c.partner_id == partner_id))
    return DEFAULT_AT_RISK_THRESHOLD if found is None else float(found)


async def score_partner(db: Database, partner_id: int, as_of: datetime, zone: ZoneInfo, *, now: datetime) -> Scored:
    """Fit on the partner's consenting members' purchases before `as_of` and replace their scores."""
    clock = asyncio.get_running_loop().time
    started = clock()
    async with db.read() as conn:
        members = await summarise(conn, partner_id, as_of, zone, now=now)
        threshold = await threshold_of(conn, partner_id)
    report = Scored(partner_id, len(members), seconds={"summary": clock() - started})
    started = clock()
    try:
        fitted = await asyncio.to_thread(fit_and_score, members, threshold)
    except model.FitError as refused:
        report.error = str(refused)
        return report
    report.seconds["fit_and_score"] = clock() - started
    if not fitted.fit.converged:
        report.error = f"the fit did not converge ({fitted.fit.message}); the previous scores stay"
        return report
    started = clock()
    async with db.write() as conn:
        report.fit = await _keep(conn, partner_id, members, fitted, as_of, now)
        report.announced = await _replace_scores(conn, partner_id, members, fitted, report.fit, as_of, zone)
    report.seconds["store"] = clock() - started
    report.segments = Counter(fitted.scores.segment)
    report.at_risk = int(fitted.scores.at_risk.sum())
    return report


async def rescore_due(db: Database, now: datetime, every: timedelta, zone: ZoneInfo) -> list[Scored]:
    """What `hub worker` runs each round: score each active partner with purchases that nobody scored in the
    last `every`. Each partner is claimed first (several workers share the job; a fit that fails waits `every`
    too, rather than being retried each round)."""
    done = []
    async with db.read() as conn:
        candidates = await partners_due(conn, now - every)
    for partner_id in candidates:
        async with db.write() as conn:
            claimed = await _claim(conn, partner_id, now, every)
        if not claimed:
            continue
        report = await score_partner(db, partner_id, now, zone, now=now)
        async with db.write() as conn:
            await conn.execute(
                update(retention_run).where(retention_run.c.partner_id == partner_id).values(outcome=report.outcome)
            )
        done.append(report)
    return done


async def _claim(conn: AsyncConnection, partner_id: int, now: datetime, every: timedelta) -> bool:
    insert_ = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert_(retention_run).values(partner_id=partner_id, attempted_at=now, outcome="started")
    claimed = await conn.scalar(
        statement.on_conflict_do_update(
            index_elements=[retention_run.c.partner_id],
            set_={"attempted_at": now, "outcome": "started"},
            where=retention_run.c.attempted_at <= now - every,
        ).returning(retention_run.c.partner_id)
    )
    return claimed is not None


@dataclass(frozen=True)
class Calibration:
    """`hub analytics fit`: a fit on the purchases up to the calibration end, and how it did in the holdout."""

    members: int
    repeat_purchases: int
    fit: model.Fit
    holdout_actual: int | None = None
    holdout_predicted: float | None = None


async def calibrate(
    db: Database,
    partner_id: int,
    calibration_end: datetime,
    holdout_end: datetime | None,
    zone: ZoneInfo,
    *,
    now: datetime,
) -> Calibration:
    """Fit on the purchases before `calibration_end` and, with a holdout end, set the repeat purchases the model
    expects of those members until then against the purchase days they had. Writes nothing."""
    if holdout_end is not None and holdout_end <= calibration_end:
        raise DomainError("INVALID_INPUT", "the holdout end must come after the calibration end", "holdoutEnd")
    if holdout_end is not None and holdout_end > now:
        raise DomainError("INVALID_INPUT", "the holdout end is in the future: nothing happened there yet", "holdoutEnd")
    async with db.read() as conn:
        members = await summarise(conn, partner_id, calibration_end, zone, now=now)
        after = (
            await summarise(conn, partner_id, holdout_end, zone, now=now, since=calibration_end)
            if holdout_end is not None
            else None
        )
    if not len(members):
        raise DomainError("NOT_ENOUGH_DATA", "no purchase before the calibration end", "calibrationEnd")
    try:
        patterns, _ = members.patterns()
        fit = await asyncio.to_thread(model.fit_bgnbd, patterns)
    except model.FitError as refused:
        raise DomainError("NOT_ENOUGH_DATA", str(refused), "partner") from None
    if not fit.converged:
        raise DomainError("FIT_NOT_CONVERGED", f"the fit did not converge: {fit.message}", "partner")
    found = Calibration(len(members), int(members.x.sum()), fit)
    if after is None or holdout_end is None:
        return found
    weeks = (holdout_end - calibration_end).total_seconds() / (7 * 86_400)
    predicted = model.expected_purchases(fit.params, weeks, members.x, members.t_x, members.T)
    actual = int(after.days[np.isin(after.member_id, members.member_id)].sum())
    return dataclasses.replace(found, holdout_actual=actual, holdout_predicted=float(predicted.sum()))


async def _keep(
    conn: AsyncConnection, partner_id: int, members: Summaries, fitted: Fitted, as_of: datetime, now: datetime
) -> FitView:
    public_id = new_id("fit", 10)
    params = fitted.fit.params.as_dict()
    await conn.execute(
        insert(retention_fit).values(
            public_id=public_id, partner_id=partner_id, model="bgnbd", params=params,
            spend_params=fitted.spend.as_dict() if fitted.spend else None,
            log_likelihood=fitted.fit.log_likelihood, members=len(members), patterns=fitted.patterns,
            repeat_purchases=int(members.x.sum()), observed_until=as_of, converged=fitted.fit.converged,
            message=fitted.fit.message, fitted_at=now,
        )
    )  # fmt: skip
    return FitView(public_id, now, len(members), params, fitted.fit.log_likelihood)


async def _replace_scores(
    conn: AsyncConnection,
    partner_id: int,
    members: Summaries,
    fitted: Fitted,
    fit: FitView,
    as_of: datetime,
    zone: ZoneInfo,
) -> int:
    """The partner's scores, all replaced; the newly at-risk announced. Returns how many were announced."""
    fit_pk = await conn.scalar(select(retention_fit.c.id).where(retention_fit.c.public_id == fit.public_id))
    before = set(
        await conn.scalars(
            select(retention_score.c.member_id).where(
                retention_score.c.partner_id == partner_id, retention_score.c.at_risk.is_(True)
            )
        )
    )
    await conn.execute(delete(retention_score).where(retention_score.c.partner_id == partner_id))
    s = fitted.scores
    count = len(members)
    offset = (as_of.astimezone(zone).utcoffset() or timedelta(0)).total_seconds()
    # Column by column from the arrays: a million members are a few lists, not a million dicts.
    columns: dict[str, list[Any]] = {
        "partner_id": [partner_id] * count,
        "member_id": members.member_id.tolist(),
        "fit_id": [fit_pk] * count,
        "p_alive": s.p_alive.tolist(),
        "expected_purchases_90d": s.expected_90d.tolist(),
        "value_12m": np.rint(s.value_12m).astype(np.int64).tolist() if s.value_12m is not None else [None] * count,
        "recency_days": members.recency_days.tolist(),
        "frequency": members.days.tolist(),
        "monetary": members.spend.tolist(),
        "r": s.r.tolist(),
        "f": s.f.tolist(),
        "m": s.m.tolist(),
        "segment": list(s.segment),
        "at_risk": s.at_risk.tolist(),
        "last_purchase_at": [datetime.fromtimestamp(day * 86_400 - offset, UTC) for day in members.last_day.tolist()],
        "scored_at": [as_of] * count,
    }
    await bulk_insert_columns(conn, retention_score, columns)
    newly = [
        {
            "member_id": columns["member_id"][i], "p_alive": columns["p_alive"][i], "segment": columns["segment"][i],
            "last_purchase_date": EPOCH + timedelta(days=int(members.last_day[i])),  # the programme's local day
        }
        for i in np.flatnonzero(s.at_risk).tolist()
        if columns["member_id"][i] not in before
    ]  # fmt: skip
    return await _announce(conn, partner_id, newly, as_of)


async def _announce(conn: AsyncConnection, partner_id: int, rows: list[dict[str, Any]], now: datetime) -> int:
    """`member.at_risk` for each newly at-risk member not announced to this partner in the last 90 days, with what
    a win-back offer needs: the member's available points and the points that expire soonest. A first scoring can
    find a large share of a partner's members at risk: they are told in chunks, each a few statements."""
    told = 0
    for start in range(0, len(rows), ANNOUNCE_CHUNK):
        told += await _announce_chunk(conn, partner_id, rows[start : start + ANNOUNCE_CHUNK], now)
    return told


ANNOUNCE_CHUNK = 5_000  # members per statement: SQLite takes at most 32,766 bound parameters


async def _announce_chunk(conn: AsyncConnection, partner_id: int, rows: list[dict[str, Any]], now: datetime) -> int:
    dialect = conn.dialect.name
    notices = retention_notice.c
    recent = set(
        await conn.scalars(
            select(notices.member_id).where(
                notices.partner_id == partner_id,
                among(dialect, notices.member_id, [r["member_id"] for r in rows]),
                notices.notified_at > now - NOTICE_EVERY,
            )
        )
    )
    due = [r for r in rows if r["member_id"] not in recent]
    if not due:
        return 0
    ids = [r["member_id"] for r in due]
    balances = await points.available_and_expiring(conn, ids)
    events = []
    for row in due:
        available, soonest = balances.get(row["member_id"], (0, None))
        payload = {
            "pAlive": round(row["p_alive"], 4),
            "segment": row["segment"],
            "lastPurchaseDate": row["last_purchase_date"].isoformat(),
            "availablePoints": available,
            "expiringSoonest": None
            if soonest is None
            else {"points": soonest.points, "expiresAt": soonest.expires_at.isoformat()},
        }
        events.append(outbox.Event("member.at_risk", row["member_id"], partner_id, payload))
    await outbox.record_many(conn, events, now=now)
    await conn.execute(
        delete(retention_notice).where(notices.partner_id == partner_id, among(dialect, notices.member_id, ids))
    )
    await bulk_insert(
        conn, retention_notice, [{"partner_id": partner_id, "member_id": m, "notified_at": now} for m in ids]
    )
    return len(due)


async def partners_due(conn: AsyncConnection, attempted_before: datetime | None = None) -> list[int]:
    """Active partners with a purchase (and, given a time, whose last scoring was attempted before it, or never).
    One index probe per partner: the worker asks every round, and a DISTINCT over the purchases took 2.4 s at 4.8
    million."""
    query = select(partner.c.id).where(
        partner.c.status == "active", exists().where(purchase.c.partner_id == partner.c.id)
    )
    if attempted_before is not None:
        recent = select(retention_run.c.partner_id).where(retention_run.c.attempted_at > attempted_before)
        query = query.where(partner.c.id.not_in(recent))
    return list(await conn.scalars(query.order_by(partner.c.id)))
