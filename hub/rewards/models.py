"""Rewards' tables. Money is integer fen, points integer points.

- `reward`: what a sponsor (a partner) offers for points, its stock and limits; `stock_left` is decremented by a
  guarded update when a claim reserves units and given back when a claim is voided, expires or is reversed.
- `reward_window`: when each tier may start claiming (priority purchase): the row with the highest `min_level` at or
  below the member's level applies; a level below every row may not claim at all.
- `reward_usage`: how many units a member holds of a reward in a period, the per-member limit's guarded counter.
- `reward_claim`: one claim, its ledger hold, its code (as an HMAC only) and its state.
- `reward_settlement`: who owes whom for a redeemed (or reversed) claim; per claim the lines sum to its value.
- `pos_quote`: what a till was told about a basket, for 5 minutes, so that recording it gives exactly that.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from hub.db import BigId, Json, UtcDateTime, metadata

reward = Table(
    "reward",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("public_id", String(40), nullable=False, unique=True),
    Column("sponsor_id", BigId, ForeignKey("partner.id"), nullable=False, index=True),
    Column("kind", String(10), nullable=False),  # GIFT | COUPON | SERVICE
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=True),
    Column("points_cost", BigInteger, nullable=False),
    Column("face_value", BigInteger, nullable=False),  # fen a unit is worth; a percentage coupon's cap
    Column("percent_off", Integer, nullable=True),  # COUPON: percent off the eligible lines, capped by face_value
    Column("stock_total", BigInteger, nullable=True),  # null: unlimited
    Column("stock_left", BigInteger, nullable=True),
    Column("member_limit", Integer, nullable=True),  # units per member per period; null: no limit
    Column("limit_period", String(10), nullable=False),  # DAY | WEEK | MONTH | YEAR | EVER
    Column("available_from", UtcDateTime, nullable=False),
    Column("available_until", UtcDateTime, nullable=True),
    Column("claim_valid_days", Integer, nullable=False),  # how long a claimed code stays redeemable
    Column("categories", Json, nullable=False),  # basket categories a coupon applies to; [] = every category
    Column("redeemers", Json, nullable=False),  # partner public ids where it may be redeemed; [] = the sponsor
    Column("status", String(10), nullable=False),  # ACTIVE | RETIRED
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint("stock_left IS NULL OR stock_left >= 0", name="stock_left"),
    CheckConstraint("points_cost >= 0 AND face_value >= 0", name="amounts"),
)

reward_window = Table(
    "reward_window",
    metadata,
    Column("reward_id", BigId, ForeignKey("reward.id"), primary_key=True),
    Column("min_level", Integer, primary_key=True),
    Column("opens_at", UtcDateTime, nullable=False),
)

reward_usage = Table(
    "reward_usage",
    metadata,
    Column("reward_id", BigId, ForeignKey("reward.id"), primary_key=True),
    Column("member_id", BigId, ForeignKey("member.id"), primary_key=True),
    Column("period", String(12), primary_key=True),  # "2026-12", "2026-W49", "2026-12-07", "2026", "ever"
    Column("used", Integer, nullable=False),
    CheckConstraint("used >= 0", name="used"),
)

CLAIM_STATES = ("RESERVED", "ISSUED", "REDEEMED", "VOIDED", "EXPIRED", "REVERSED")
reward_claim = Table(
    "reward_claim",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("public_id", String(40), nullable=False, unique=True),
    Column("reward_id", BigId, ForeignKey("reward.id"), nullable=False, index=True),
    Column("member_id", BigId, ForeignKey("member.id"), nullable=False, index=True),
    Column("claimant_id", BigId, ForeignKey("partner.id"), nullable=True),  # null: the member, in the portal
    Column("status", String(10), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("points", BigInteger, nullable=False),  # held at the claim
    Column("value", BigInteger, nullable=False),  # fen: face value × quantity (a redemption may settle less)
    Column("tier_level", Integer, nullable=False),  # the member's level when they claimed
    Column("period", String(12), nullable=False),  # the reward_usage period it counts against
    Column("code_hash", String(64), nullable=False, unique=True),
    Column("code_last4", String(4), nullable=False),
    Column("hold_id", BigId, ForeignKey("point_hold.id"), nullable=True),  # null: a reward that costs no points
    Column("quote_id", BigId, ForeignKey("pos_quote.id"), nullable=True),
    Column("idempotency_key", String(200), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # Redemption
    Column("redeemer_id", BigId, ForeignKey("partner.id"), nullable=True),
    Column("order_reference", String(200), nullable=True),
    Column("redeemed_quantity", Integer, nullable=False, server_default="0"),
    Column("redeemed_points", BigInteger, nullable=False, server_default="0"),
    Column("redeemed_value", BigInteger, nullable=False, server_default="0"),
    Column("redeem_key", String(200), nullable=True),
    Column("redeem_hash", String(64), nullable=True),
    Column("resolved_at", UtcDateTime, nullable=True),
    UniqueConstraint("claimant_id", "idempotency_key"),
    UniqueConstraint("redeemer_id", "redeem_key"),
    CheckConstraint("quantity >= 1", name="quantity"),
    CheckConstraint(f"status IN {CLAIM_STATES}", name="status"),
)
Index("ix_reward_claim_due", reward_claim.c.status, reward_claim.c.expires_at)
Index("ix_reward_claim_order", reward_claim.c.redeemer_id, reward_claim.c.order_reference)

reward_settlement = Table(
    "reward_settlement",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("claim_id", BigId, ForeignKey("reward_claim.id"), nullable=False, index=True),
    Column("basis", String(10), nullable=False),  # POINTS (an issuer's points) | SPONSOR (the rest of the value)
    Column("debtor_id", BigId, ForeignKey("partner.id"), nullable=False),
    Column("creditor_id", BigId, ForeignKey("partner.id"), nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("amount", BigInteger, nullable=False),  # fen; negative: a reversal
    Column("created_at", UtcDateTime, nullable=False, index=True),
)

pos_quote = Table(
    "pos_quote",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("public_id", String(40), nullable=False, unique=True),
    Column("partner_id", BigId, ForeignKey("partner.id"), nullable=False),
    Column("member_id", BigId, ForeignKey("member.id"), nullable=False),
    Column("store_id", String(100), nullable=True),
    Column("basket_hash", String(64), nullable=False),
    Column("answer", Json, nullable=False),  # the quote as answered: lines, coupons, points (quote.py)
    Column("expires_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)
Index("ix_pos_quote_expires", pos_quote.c.expires_at)
