from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, ForeignKey, Index, Integer, String, Table, UniqueConstraint

from hub.db import BigId, UtcDateTime, metadata

# Amounts are integer fen (0.01 yuan): exact, and sums never drift.
purchase = Table(
    "purchase",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("public_id", String(40), nullable=False, unique=True),
    Column("partner_id", BigId, ForeignKey("partner.id"), nullable=False),
    Column("member_id", BigId, ForeignKey("member.id"), nullable=False),
    Column("reference", String(200), nullable=False),
    Column("store_id", String(100), nullable=True),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("qualifying", BigInteger, nullable=False),  # what earns points and growth value
    Column("points", BigInteger, nullable=False),
    Column("refunded", BigInteger, nullable=False, server_default="0"),
    Column("refunded_qualifying", BigInteger, nullable=False, server_default="0"),
    Column("points_reversed", BigInteger, nullable=False, server_default="0"),
    Column("tier_level", Integer, nullable=False),  # the member's level when it was recorded
    Column("earn_txn_id", BigId, ForeignKey("ledger_txn.id"), nullable=True),
    Column("idempotency_key", String(200), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("partner_id", "reference"),
    UniqueConstraint("partner_id", "idempotency_key"),
)
Index("ix_purchase_member_occurred", purchase.c.member_id, purchase.c.occurred_at)

purchase_line = Table(
    "purchase_line",
    metadata,
    Column("purchase_id", BigId, ForeignKey("purchase.id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("sku", String(100), nullable=False),
    Column("category", String(100), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("prescription", Boolean, nullable=False),
    Column("insurer_paid", Boolean, nullable=False),
    Column("qualifying", Boolean, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("refunded", BigInteger, nullable=False, server_default="0"),
)

purchase_refund = Table(
    "purchase_refund",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("public_id", String(40), nullable=False, unique=True),
    Column("purchase_id", BigId, ForeignKey("purchase.id"), nullable=False, index=True),
    Column("partner_id", BigId, ForeignKey("partner.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("qualifying", BigInteger, nullable=False),
    Column("points_reversed", BigInteger, nullable=False),
    Column("reverse_txn_id", BigId, ForeignKey("ledger_txn.id"), nullable=True),
    Column("idempotency_key", String(200), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("partner_id", "idempotency_key"),
)

# A bulk import's progress: the last line whose effects are committed, so an interrupted import resumes there.
import_job = Table(
    "import_job",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("partner_id", BigId, ForeignKey("partner.id"), nullable=False),
    Column("kind", String(20), nullable=False),  # members | purchases
    Column("file_hash", String(64), nullable=False),
    Column("last_line", BigInteger, nullable=False, server_default="0"),
    Column("accepted", BigInteger, nullable=False, server_default="0"),
    Column("rejected", BigInteger, nullable=False, server_default="0"),
    # Members imported under a phone the hub already knew: provisional until the phone's owner confirms.
    Column("provisional", BigInteger, nullable=False, server_default="0"),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("partner_id", "kind", "file_hash"),
)
