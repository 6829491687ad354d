"""The points ledger's tables: double-entry accounts and entries, transactions, lots, allocations and holds.

Signs: an entry's amount is added to its account's balance; the entries of one transaction sum to zero. Member
accounts hold points (positive), a partner's issuing account goes negative as it issues (or, when prepaid, down
from what it funded), a partner's redeemed account grows with what it took in.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, Index, String, Table, UniqueConstraint

from hub.db import BigId, UtcDateTime, metadata

UNIT = "POINT"  # accounts carry a unit so a second currency needs no new model

# Account kinds. Member accounts: available (floor 0 for spending), pending (return window), held (reserved by a
# till). Partner accounts: issuing (source of the points a post-paid partner awards), prepaid (what a prepaid
# partner has paid for and may still award; floor 0), redeemed (points it took in). System: expired, funding (the
# other side of prepaid top-ups).
MEMBER_AVAILABLE, MEMBER_PENDING, MEMBER_HELD = "member_available", "member_pending", "member_held"
PARTNER_ISSUING, PARTNER_PREPAID, PARTNER_REDEEMED = "partner_issuing", "partner_prepaid", "partner_redeemed"
SYSTEM_EXPIRED, SYSTEM_FUNDING = "system_expired", "system_funding"

# Accounts whose balance is cached on the row because a debit must be checked against a floor. The others are
# append-only: their balance is the sum of their entries, computed when asked. Caching those would make every
# redemption at a partner queue on that partner's one row (a hot account) for no check at all.
TRACKED_KINDS = frozenset({MEMBER_AVAILABLE, MEMBER_PENDING, MEMBER_HELD, PARTNER_PREPAID})

ledger_account = Table(
    "ledger_account",
    metadata,
    # The code is the key (e.g. "m:42:member_available:POINT"), so a command can post to an account without
    # first looking up its id.
    Column("code", String(80), primary_key=True),
    Column("kind", String(30), nullable=False),
    Column("unit", String(10), nullable=False),
    Column("member_id", BigId, ForeignKey("member.id"), nullable=True),
    Column("partner_id", BigId, ForeignKey("partner.id"), nullable=True),
    Column("balance", BigInteger, nullable=False),
    Column("version", BigInteger, nullable=False),  # number of entries posted to the account
    Column("created_at", UtcDateTime, nullable=False),
)

ledger_txn = Table(
    "ledger_txn",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("public_id", String(40), nullable=False, unique=True),
    Column("kind", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("partner_id", BigId, ForeignKey("partner.id"), nullable=True),  # who asked (null: the hub's jobs)
    Column("member_id", BigId, ForeignKey("member.id"), nullable=True),
    Column("points", BigInteger, nullable=False),
    Column("reversed_points", BigInteger, nullable=False, server_default="0"),
    Column("reference", String(200), nullable=True),
    Column("reason", String(200), nullable=True),
    Column("idempotency_key", String(200), nullable=True),
    Column("request_hash", String(64), nullable=True),
    Column("hold_id", BigId, ForeignKey("point_hold.id"), nullable=True),
    Column("reverses_id", BigId, ForeignKey("ledger_txn.id"), nullable=True),
    Column("pending_until", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("partner_id", "idempotency_key"),
    CheckConstraint("points >= 0", name="points"),
    CheckConstraint("reversed_points >= 0 AND reversed_points <= points", name="reversed_points"),
)
Index("ix_ledger_txn_member_created", ledger_txn.c.member_id, ledger_txn.c.id)
Index("ix_ledger_txn_created", ledger_txn.c.created_at)

# Insert-only (the migration installs triggers that refuse UPDATE and DELETE).
ledger_entry = Table(
    "ledger_entry",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("txn_id", BigId, ForeignKey("ledger_txn.id"), nullable=False, index=True),
    Column("account", String(80), ForeignKey("ledger_account.code"), nullable=False, index=True),
    Column("amount", BigInteger, nullable=False),
    CheckConstraint("amount <> 0", name="amount"),
)

# Each earn creates a lot. `remaining` is what is left to spend; a debt lot (status 'debt', amount 0) carries the
# negative remainder of a reversal whose points were already spent, until later earnings repay it.
point_lot = Table(
    "point_lot",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("member_id", BigId, ForeignKey("member.id"), nullable=False),
    Column("issuer_id", BigId, ForeignKey("partner.id"), nullable=False),
    Column("earn_txn_id", BigId, ForeignKey("ledger_txn.id"), nullable=False),
    Column("status", String(10), nullable=False),  # pending | available | debt
    Column("amount", BigInteger, nullable=False),
    Column("remaining", BigInteger, nullable=False),
    Column("reversed", BigInteger, nullable=False, server_default="0"),
    Column("expired", BigInteger, nullable=False, server_default="0"),
    Column("available_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("status IN ('pending', 'available', 'debt')", name="status"),
    CheckConstraint("status = 'debt' OR remaining >= 0", name="remaining"),
)
Index("ix_point_lot_member_status", point_lot.c.member_id, point_lot.c.status, point_lot.c.expires_at)
Index("ix_point_lot_available_at", point_lot.c.status, point_lot.c.available_at)
Index("ix_point_lot_expires_at", point_lot.c.status, point_lot.c.expires_at)

# Which lots each movement took from or gave back to (insert-only). `partner_id` is the counterparty: the partner
# that redeemed (redeem, capture, refund; reward: a reward claim's points, settled per claim by hub/rewards) or
# whose debt was repaid (repay).
ALLOCATION_KINDS = ("hold", "release", "redeem", "capture", "refund", "repay", "reward")
lot_allocation = Table(
    "lot_allocation",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("txn_id", BigId, ForeignKey("ledger_txn.id"), nullable=False, index=True),
    Column("lot_id", BigId, ForeignKey("point_lot.id"), nullable=False, index=True),
    Column("kind", String(10), nullable=False),
    Column("amount", BigInteger, nullable=False),  # taken from the lot (negative: given back)
    Column("partner_id", BigId, ForeignKey("partner.id"), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)
Index("ix_lot_allocation_created", lot_allocation.c.created_at)

point_hold = Table(
    "point_hold",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("public_id", String(40), nullable=False, unique=True),
    Column("member_id", BigId, ForeignKey("member.id"), nullable=False),
    Column("partner_id", BigId, ForeignKey("partner.id"), nullable=False),
    Column("status", String(10), nullable=False),  # ACTIVE | CAPTURED | VOIDED | EXPIRED
    Column("points", BigInteger, nullable=False),
    Column("captured_points", BigInteger, nullable=False, server_default="0"),
    Column("reference", String(200), nullable=True),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("resolved_at", UtcDateTime, nullable=True),
    CheckConstraint("captured_points >= 0 AND captured_points <= points", name="captured"),
)
Index("ix_point_hold_active_expiry", point_hold.c.status, point_hold.c.expires_at)

# One `points.expiring` event a batch: the fan-out gives it to every partner whose consent covers points:read.
expiry_notice = Table(
    "expiry_notice",
    metadata,
    Column("member_id", BigId, ForeignKey("member.id"), primary_key=True),
    Column("expires_at", UtcDateTime, primary_key=True),  # the batch: lots expiring at the same instant
    Column("points", BigInteger, nullable=False),
    Column("notified_at", UtcDateTime, nullable=False),
)
