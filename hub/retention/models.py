"""Retention's tables: each fit (which model, its parameters, on what), each member's score for the partner that
owns the relationship (which fit made it), the at-risk notices already sent (at most one a member per 90 days), and
when the worker last took each partner up (several workers share the rescoring through it)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Float, ForeignKey, Integer, SmallInteger, String, Table, Text

from hub.db import BigId, Json, UtcDateTime, metadata

retention_fit = Table(
    "retention_fit",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("public_id", String(40), nullable=False, unique=True),
    Column("partner_id", BigId, ForeignKey("partner.id"), nullable=False, index=True),
    Column("model", String(20), nullable=False),  # bgnbd
    Column("params", Json, nullable=False),  # {"r", "alpha", "a", "b"}, time in weeks
    Column("spend_params", Json, nullable=True),  # Gamma-Gamma {"p", "q", "v"} (fen), when the data allow
    Column("log_likelihood", Float, nullable=False),
    Column("members", Integer, nullable=False),
    Column("patterns", Integer, nullable=False),  # distinct (x, t_x, T): the likelihood's terms
    Column("repeat_purchases", Integer, nullable=False),
    Column("observed_until", UtcDateTime, nullable=False),
    Column("converged", Boolean, nullable=False),
    Column("message", Text, nullable=False),
    Column("fitted_at", UtcDateTime, nullable=False),
)

# Scores and notices have no foreign keys. They are written a partner's members at a time, and PostgreSQL checks
# a key by locking the referenced row (FOR KEY SHARE, a write to every member's row): replacing 900,000 scores took
# 23.7 s with the keys and 6.3 s without (bench/retention.py's database). What the keys would guard cannot happen:
# members, partners and fits are never deleted, and a member's scores go with their consent (profiling.py).
retention_score = Table(
    "retention_score",
    metadata,
    Column("partner_id", BigId, primary_key=True),
    Column("member_id", BigId, primary_key=True, index=True),
    Column("fit_id", BigId, nullable=False),  # the retention_fit that made it
    Column("p_alive", Float, nullable=False),
    Column("expected_purchases_90d", Float, nullable=False),
    Column("value_12m", BigInteger, nullable=True),  # fen, when the spend model could be fitted
    Column("recency_days", Integer, nullable=False),  # since the last purchase
    Column("frequency", Integer, nullable=False),  # purchase days at the partner
    Column("monetary", BigInteger, nullable=False),  # fen, net of refunds
    Column("r", SmallInteger, nullable=False),
    Column("f", SmallInteger, nullable=False),
    Column("m", SmallInteger, nullable=False),
    Column("segment", String(30), nullable=False),
    Column("at_risk", Boolean, nullable=False),
    Column("last_purchase_at", UtcDateTime, nullable=False),
    Column("scored_at", UtcDateTime, nullable=False),
)

retention_notice = Table(
    "retention_notice",
    metadata,
    Column("partner_id", BigId, primary_key=True),
    Column("member_id", BigId, primary_key=True),
    Column("notified_at", UtcDateTime, nullable=False),
)


# The worker's claim on a partner's rescoring: whoever moves `attempted_at` forward scores it; the others skip.
retention_run = Table(
    "retention_run",
    metadata,
    Column("partner_id", BigId, ForeignKey("partner.id"), primary_key=True),
    Column("attempted_at", UtcDateTime, nullable=False),
    Column("outcome", Text, nullable=False),  # what came of it: members scored, or why nothing was fitted
)
