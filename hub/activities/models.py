from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, String, Table, UniqueConstraint

from hub.db import BigId, UtcDateTime, metadata

activity = Table(
    "activity",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("public_id", String(40), nullable=False, unique=True),
    Column("partner_id", BigId, ForeignKey("partner.id"), nullable=False),
    Column("member_id", BigId, ForeignKey("member.id"), nullable=False),
    Column("kind", String(30), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("reference", String(200), nullable=False),
    Column("points_granted", BigInteger, nullable=False),
    Column("points_capped", BigInteger, nullable=False),
    Column("earn_txn_id", BigId, ForeignKey("ledger_txn.id"), nullable=True),
    Column("idempotency_key", String(200), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("partner_id", "reference"),
    UniqueConstraint("partner_id", "idempotency_key"),
)
Index("ix_activity_caps", activity.c.member_id, activity.c.partner_id, activity.c.kind, activity.c.occurred_at)
