"""Reading scores. A partner reads a member's score only through a view of that member (a consented lookup) whose
consent grants `analytics:read`; its at-risk list builds on the same statement every member read builds on
(`members.service.VISIBLE`); a member reads their own scores in the portal."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub import cursors
from hub.consent import rule
from hub.consent.rule import ConsentRequired, MemberView, answers, readable
from hub.db import among
from hub.errors import DomainError
from hub.members import service as members
from hub.members.models import member_link
from hub.partners.models import partner
from hub.retention.models import retention_fit, retention_score
from hub.retention.profiling import PERMISSION

MAX_PAGE = 100


@dataclass(frozen=True)
class FitInfo:
    public_id: str
    fitted_at: datetime
    members: int


@dataclass(frozen=True)
class Score:
    p_alive: float
    expected_purchases_90d: float
    value_12m: int | None  # fen
    recency_days: int
    frequency: int
    monetary: int  # fen
    r: int
    f: int
    m: int
    segment: str
    at_risk: bool
    scored_at: datetime
    fit: FitInfo


_SCORES = select(
    retention_score,
    retention_fit.c.public_id.label("fit_public_id"),
    retention_fit.c.fitted_at,
    retention_fit.c.members.label("fit_members"),
).join(retention_fit, retention_fit.c.id == retention_score.c.fit_id)


def _score(row: Any) -> Score:
    return Score(
        p_alive=row.p_alive,
        expected_purchases_90d=row.expected_purchases_90d,
        value_12m=row.value_12m,
        recency_days=row.recency_days,
        frequency=row.frequency,
        monetary=row.monetary,
        r=row.r,
        f=row.f,
        m=row.m,
        segment=row.segment,
        at_risk=row.at_risk,
        scored_at=row.scored_at,
        fit=FitInfo(row.fit_public_id, row.fitted_at, row.fit_members),
    )


async def scores_of(
    conn: AsyncConnection, partner_id: int, views: Sequence[MemberView]
) -> list[Score | ConsentRequired | None]:
    """Each member's score for the partner (None: not scored yet), where their consent grants `analytics:read`;
    the refusal in place of the others. One statement for a page of members."""
    member_ids = readable(views, PERMISSION)
    found: dict[int, Score] = {}
    if member_ids:
        query = _SCORES.where(
            retention_score.c.partner_id == partner_id,
            among(conn.dialect.name, retention_score.c.member_id, member_ids),
        )
        found = {row.member_id: _score(row) for row in await conn.execute(query)}
    return answers(views, PERMISSION, lambda v: found.get(v.member_id))


@dataclass(frozen=True)
class AtRiskPage:
    members: list[tuple[MemberView, Score]]
    cursors: list[str]
    has_next: bool


def _worth() -> Any:
    """What "most valuable" sorts by: the 12-month value where the spend model could be fitted, else net spend."""
    return func.coalesce(retention_score.c.value_12m, retention_score.c.monetary)


async def at_risk(
    conn: AsyncConnection,
    partner_id: int,
    now: datetime,
    *,
    first: int,
    after: str | None,
    max_p_alive: float | None,
) -> AtRiskPage:
    """The partner's at-risk members who let it profile them, most valuable first (then by pairwise id)."""
    if not 0 <= first <= MAX_PAGE:
        raise DomainError("INVALID_INPUT", f"first must be between 0 and {MAX_PAGE}", "first")
    if max_p_alive is not None and not 0 <= max_p_alive <= 1:
        raise DomainError("INVALID_INPUT", "maxPAlive is a probability between 0 and 1", "maxPAlive")
    worth = _worth().label("worth")
    query = (
        members.VISIBLE.add_columns(*_SCORES.selected_columns, worth)
        .join(
            retention_score,
            and_(retention_score.c.member_id == member_link.c.member_id, retention_score.c.partner_id == partner_id),
        )
        .join(retention_fit, retention_fit.c.id == retention_score.c.fit_id)
        .where(retention_score.c.at_risk.is_(True), rule.consent_grants(conn.dialect.name, PERMISSION))
        .order_by(worth.desc(), member_link.c.pairwise_id)
        .limit(first + 1)
    )
    if max_p_alive is not None:
        query = query.where(retention_score.c.p_alive <= max_p_alive)
    if after:
        last_worth, last_id = _position(after)
        query = query.where(
            or_(_worth() < last_worth, and_(_worth() == last_worth, member_link.c.pairwise_id > last_id))
        )
    rows = (await conn.execute(query, {"partner_id": partner_id, "now": now})).all()
    found = [(members.view_of(r), _score(r)) for r in rows[:first]]
    return AtRiskPage(
        members=found,
        cursors=[cursors.encode(f"{r.pairwise_id}:{r.worth}") for r in rows[:first]],
        has_next=len(rows) > first,
    )


def _position(after: str) -> tuple[int, str]:
    pairwise_id, _, worth = cursors.decode(after, "mbr_").partition(":")
    try:
        return int(worth), pairwise_id
    except ValueError:
        raise DomainError("INVALID_CURSOR", "the cursor is not one this API returned", "after") from None


@dataclass(frozen=True)
class OwnScore:
    partner: str
    p_alive: float
    segment: str
    scored_at: datetime


async def of_member(conn: AsyncConnection, member_id: int) -> list[OwnScore]:
    """The member's own scores, per partner (the portal and the export: what profiling concluded about them)."""
    rows = await conn.execute(
        select(partner.c.name, retention_score.c.p_alive, retention_score.c.segment, retention_score.c.scored_at)
        .join(partner, partner.c.id == retention_score.c.partner_id)
        .where(retention_score.c.member_id == member_id)
        .order_by(partner.c.name)
    )
    return [OwnScore(r.name, r.p_alive, r.segment, r.scored_at) for r in rows]
