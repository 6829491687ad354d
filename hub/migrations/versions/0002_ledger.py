"""ledger

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 08:07:40.360513
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from hub.migrations.append_only import append_only

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ledger_account",
        sa.Column("code", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("unit", sa.String(length=10), nullable=False),
        sa.Column("member_id", BIGID, nullable=True),
        sa.Column("partner_id", BIGID, nullable=True),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_ledger_account_member_id_member")),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"], name=op.f("fk_ledger_account_partner_id_partner")),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_ledger_account")),
    )
    op.create_table(
        "partner_terms",
        sa.Column("partner_id", BIGID, nullable=False),
        sa.Column("point_value", sa.String(length=20), nullable=False),
        sa.Column("billing", sa.String(length=10), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("billing IN ('prepaid', 'postpaid')", name=op.f("ck_partner_terms_billing")),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"], name=op.f("fk_partner_terms_partner_id_partner")),
        sa.PrimaryKeyConstraint("partner_id", name=op.f("pk_partner_terms")),
    )
    op.create_table(
        "point_hold",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("member_id", BIGID, nullable=False),
        sa.Column("partner_id", BIGID, nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("captured_points", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("captured_points >= 0 AND captured_points <= points", name=op.f("ck_point_hold_captured")),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_point_hold_member_id_member")),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"], name=op.f("fk_point_hold_partner_id_partner")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_point_hold")),
        sa.UniqueConstraint("public_id", name=op.f("uq_point_hold_public_id")),
    )
    with op.batch_alter_table("point_hold", schema=None) as batch_op:
        batch_op.create_index("ix_point_hold_active_expiry", ["status", "expires_at"], unique=False)

    op.create_table(
        "ledger_txn",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("partner_id", BIGID, nullable=True),
        sa.Column("member_id", BIGID, nullable=True),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("reversed_points", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column("hold_id", BIGID, nullable=True),
        sa.Column("reverses_id", BIGID, nullable=True),
        sa.Column("pending_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("points >= 0", name=op.f("ck_ledger_txn_points")),
        sa.CheckConstraint(
            "reversed_points >= 0 AND reversed_points <= points", name=op.f("ck_ledger_txn_reversed_points")
        ),
        sa.ForeignKeyConstraint(["hold_id"], ["point_hold.id"], name=op.f("fk_ledger_txn_hold_id_point_hold")),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_ledger_txn_member_id_member")),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"], name=op.f("fk_ledger_txn_partner_id_partner")),
        sa.ForeignKeyConstraint(["reverses_id"], ["ledger_txn.id"], name=op.f("fk_ledger_txn_reverses_id_ledger_txn")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_txn")),
        sa.UniqueConstraint("partner_id", "idempotency_key", name=op.f("uq_ledger_txn_partner_id_idempotency_key")),
        sa.UniqueConstraint("public_id", name=op.f("uq_ledger_txn_public_id")),
    )
    with op.batch_alter_table("ledger_txn", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_txn_created", ["created_at"], unique=False)
        batch_op.create_index("ix_ledger_txn_member_created", ["member_id", "id"], unique=False)

    op.create_table(
        "ledger_entry",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("txn_id", BIGID, nullable=False),
        sa.Column("account", sa.String(length=80), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_ledger_entry_amount")),
        sa.ForeignKeyConstraint(
            ["account"], ["ledger_account.code"], name=op.f("fk_ledger_entry_account_ledger_account")
        ),
        sa.ForeignKeyConstraint(["txn_id"], ["ledger_txn.id"], name=op.f("fk_ledger_entry_txn_id_ledger_txn")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entry")),
    )
    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_entry_account"), ["account"], unique=False)
        batch_op.create_index(batch_op.f("ix_ledger_entry_txn_id"), ["txn_id"], unique=False)

    op.create_table(
        "point_lot",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("member_id", BIGID, nullable=False),
        sa.Column("issuer_id", BIGID, nullable=False),
        sa.Column("earn_txn_id", BIGID, nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.Column("reversed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("expired", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status = 'debt' OR remaining >= 0", name=op.f("ck_point_lot_remaining")),
        sa.CheckConstraint("status IN ('pending', 'available', 'debt')", name=op.f("ck_point_lot_status")),
        sa.ForeignKeyConstraint(["earn_txn_id"], ["ledger_txn.id"], name=op.f("fk_point_lot_earn_txn_id_ledger_txn")),
        sa.ForeignKeyConstraint(["issuer_id"], ["partner.id"], name=op.f("fk_point_lot_issuer_id_partner")),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_point_lot_member_id_member")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_point_lot")),
    )
    with op.batch_alter_table("point_lot", schema=None) as batch_op:
        batch_op.create_index("ix_point_lot_available_at", ["status", "available_at"], unique=False)
        batch_op.create_index("ix_point_lot_expires_at", ["status", "expires_at"], unique=False)
        batch_op.create_index("ix_point_lot_member_status", ["member_id", "status", "expires_at"], unique=False)

    op.create_table(
        "lot_allocation",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("txn_id", BIGID, nullable=False),
        sa.Column("lot_id", BIGID, nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("partner_id", BIGID, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["lot_id"], ["point_lot.id"], name=op.f("fk_lot_allocation_lot_id_point_lot")),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"], name=op.f("fk_lot_allocation_partner_id_partner")),
        sa.ForeignKeyConstraint(["txn_id"], ["ledger_txn.id"], name=op.f("fk_lot_allocation_txn_id_ledger_txn")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lot_allocation")),
    )
    with op.batch_alter_table("lot_allocation", schema=None) as batch_op:
        batch_op.create_index("ix_lot_allocation_created", ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_lot_allocation_lot_id"), ["lot_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_lot_allocation_txn_id"), ["txn_id"], unique=False)

    append_only("ledger_entry")
    append_only("lot_allocation")

    # The hub's own accounts, and the ledger accounts of partners created before the ledger existed.
    for kind in ("system_expired", "system_funding"):
        op.execute(
            sa.text(
                "INSERT INTO ledger_account (code, kind, unit, member_id, partner_id, balance, version, created_at) "
                "VALUES (:code, :kind, 'POINT', NULL, NULL, 0, 0, CURRENT_TIMESTAMP)"
            ).bindparams(code=f"sys:{kind}:POINT", kind=kind)
        )
    for kind in ("partner_issuing", "partner_prepaid", "partner_redeemed"):
        op.execute(
            sa.text(
                "INSERT INTO ledger_account (code, kind, unit, member_id, partner_id, balance, version, created_at) "
                "SELECT 'p:' || id || :suffix, :kind, 'POINT', NULL, id, 0, 0, CURRENT_TIMESTAMP FROM partner"
            ).bindparams(suffix=f":{kind}:POINT", kind=kind)
        )


def downgrade() -> None:
    with op.batch_alter_table("lot_allocation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lot_allocation_txn_id"))
        batch_op.drop_index(batch_op.f("ix_lot_allocation_lot_id"))
        batch_op.drop_index("ix_lot_allocation_created")

    op.drop_table("lot_allocation")
    with op.batch_alter_table("point_lot", schema=None) as batch_op:
        batch_op.drop_index("ix_point_lot_member_status")
        batch_op.drop_index("ix_point_lot_expires_at")
        batch_op.drop_index("ix_point_lot_available_at")

    op.drop_table("point_lot")
    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_entry_txn_id"))
        batch_op.drop_index(batch_op.f("ix_ledger_entry_account"))

    op.drop_table("ledger_entry")
    with op.batch_alter_table("ledger_txn", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_txn_member_created")
        batch_op.drop_index("ix_ledger_txn_created")

    op.drop_table("ledger_txn")
    with op.batch_alter_table("point_hold", schema=None) as batch_op:
        batch_op.drop_index("ix_point_hold_active_expiry")

    op.drop_table("point_hold")
    op.drop_table("partner_terms")
    op.drop_table("ledger_account")
