"""Purchases, refunds, health activities, tiers and bulk-import progress

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 18:46:04.867627
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from hub.migrations.append_only import append_only

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:

    op.create_table(
        "import_job",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("partner_id", BIGID, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("file_hash", sa.String(length=64), nullable=False),
        sa.Column("last_line", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("accepted", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rejected", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"], name=op.f("fk_import_job_partner_id_partner")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_job")),
        sa.UniqueConstraint("partner_id", "kind", "file_hash", name=op.f("uq_import_job_partner_id_kind_file_hash")),
    )
    op.create_table(
        "member_tier",
        sa.Column("member_id", BIGID, nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("grace_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("review_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("birthday_gift_year", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_member_tier_member_id_member")),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_member_tier")),
    )
    with op.batch_alter_table("member_tier", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_member_tier_review_at"), ["review_at"], unique=False)
    op.create_table(
        "tier_change",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("member_id", BIGID, nullable=False),
        sa.Column("from_level", sa.Integer(), nullable=False),
        sa.Column("to_level", sa.Integer(), nullable=False),
        sa.Column("growth", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_tier_change_member_id_member")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tier_change")),
    )
    with op.batch_alter_table("tier_change", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tier_change_member_id"), ["member_id"], unique=False)
    append_only("tier_change")

    op.create_table(
        "activity",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("partner_id", BIGID, nullable=False),
        sa.Column("member_id", BIGID, nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.Column("points_granted", sa.BigInteger(), nullable=False),
        sa.Column("points_capped", sa.BigInteger(), nullable=False),
        sa.Column("earn_txn_id", BIGID, nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["earn_txn_id"], ["ledger_txn.id"], name=op.f("fk_activity_earn_txn_id_ledger_txn")),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_activity_member_id_member")),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"], name=op.f("fk_activity_partner_id_partner")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activity")),
        sa.UniqueConstraint("partner_id", "idempotency_key", name=op.f("uq_activity_partner_id_idempotency_key")),
        sa.UniqueConstraint("partner_id", "reference", name=op.f("uq_activity_partner_id_reference")),
        sa.UniqueConstraint("public_id", name=op.f("uq_activity_public_id")),
    )
    with op.batch_alter_table("activity", schema=None) as batch_op:
        batch_op.create_index("ix_activity_caps", ["member_id", "partner_id", "kind", "occurred_at"], unique=False)

    op.create_table(
        "purchase",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("partner_id", BIGID, nullable=False),
        sa.Column("member_id", BIGID, nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.Column("store_id", sa.String(length=100), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("qualifying", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("refunded", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("refunded_qualifying", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("points_reversed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("tier_level", sa.Integer(), nullable=False),
        sa.Column("earn_txn_id", BIGID, nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["earn_txn_id"], ["ledger_txn.id"], name=op.f("fk_purchase_earn_txn_id_ledger_txn")),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_purchase_member_id_member")),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"], name=op.f("fk_purchase_partner_id_partner")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchase")),
        sa.UniqueConstraint("partner_id", "idempotency_key", name=op.f("uq_purchase_partner_id_idempotency_key")),
        sa.UniqueConstraint("partner_id", "reference", name=op.f("uq_purchase_partner_id_reference")),
        sa.UniqueConstraint("public_id", name=op.f("uq_purchase_public_id")),
    )
    with op.batch_alter_table("purchase", schema=None) as batch_op:
        batch_op.create_index("ix_purchase_member_occurred", ["member_id", "occurred_at"], unique=False)

    op.create_table(
        "purchase_line",
        sa.Column("purchase_id", BIGID, nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(length=100), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("prescription", sa.Boolean(), nullable=False),
        sa.Column("insurer_paid", sa.Boolean(), nullable=False),
        sa.Column("qualifying", sa.Boolean(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("refunded", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(["purchase_id"], ["purchase.id"], name=op.f("fk_purchase_line_purchase_id_purchase")),
        sa.PrimaryKeyConstraint("purchase_id", "line_no", name=op.f("pk_purchase_line")),
    )
    op.create_table(
        "purchase_refund",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("purchase_id", BIGID, nullable=False),
        sa.Column("partner_id", BIGID, nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("qualifying", sa.BigInteger(), nullable=False),
        sa.Column("points_reversed", sa.BigInteger(), nullable=False),
        sa.Column("reverse_txn_id", BIGID, nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"], name=op.f("fk_purchase_refund_partner_id_partner")),
        sa.ForeignKeyConstraint(["purchase_id"], ["purchase.id"], name=op.f("fk_purchase_refund_purchase_id_purchase")),
        sa.ForeignKeyConstraint(
            ["reverse_txn_id"], ["ledger_txn.id"], name=op.f("fk_purchase_refund_reverse_txn_id_ledger_txn")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchase_refund")),
        sa.UniqueConstraint(
            "partner_id", "idempotency_key", name=op.f("uq_purchase_refund_partner_id_idempotency_key")
        ),
        sa.UniqueConstraint("public_id", name=op.f("uq_purchase_refund_public_id")),
    )
    with op.batch_alter_table("purchase_refund", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_purchase_refund_purchase_id"), ["purchase_id"], unique=False)

    with op.batch_alter_table("partner_terms", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "activity_kinds",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:

    with op.batch_alter_table("partner_terms", schema=None) as batch_op:
        batch_op.drop_column("activity_kinds")

    with op.batch_alter_table("purchase_refund", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_purchase_refund_purchase_id"))

    op.drop_table("purchase_refund")
    op.drop_table("purchase_line")
    with op.batch_alter_table("purchase", schema=None) as batch_op:
        batch_op.drop_index("ix_purchase_member_occurred")

    op.drop_table("purchase")
    with op.batch_alter_table("activity", schema=None) as batch_op:
        batch_op.drop_index("ix_activity_caps")

    op.drop_table("activity")
    with op.batch_alter_table("tier_change", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tier_change_member_id"))

    op.drop_table("tier_change")
    op.drop_table("member_tier")
    op.drop_table("import_job")
