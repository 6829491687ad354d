"""Rewards: the catalogue (reward, reward_window), members' usage and claims, claim settlement lines, POS quotes

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "pos_quote",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("partner_id", BIGID, nullable=False),
        sa.Column("member_id", BIGID, nullable=False),
        sa.Column("store_id", sa.String(length=100), nullable=True),
        sa.Column("basket_hash", sa.String(length=64), nullable=False),
        sa.Column("answer", JSON, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_pos_quote_member_id_member")),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"], name=op.f("fk_pos_quote_partner_id_partner")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pos_quote")),
        sa.UniqueConstraint("public_id", name=op.f("uq_pos_quote_public_id")),
    )
    with op.batch_alter_table("pos_quote", schema=None) as batch_op:
        batch_op.create_index("ix_pos_quote_expires", ["expires_at"], unique=False)

    op.create_table(
        "reward",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("sponsor_id", BIGID, nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("points_cost", sa.BigInteger(), nullable=False),
        sa.Column("face_value", sa.BigInteger(), nullable=False),
        sa.Column("percent_off", sa.Integer(), nullable=True),
        sa.Column("stock_total", sa.BigInteger(), nullable=True),
        sa.Column("stock_left", sa.BigInteger(), nullable=True),
        sa.Column("member_limit", sa.Integer(), nullable=True),
        sa.Column("limit_period", sa.String(length=10), nullable=False),
        sa.Column("available_from", TIME, nullable=False),
        sa.Column("available_until", TIME, nullable=True),
        sa.Column("claim_valid_days", sa.Integer(), nullable=False),
        sa.Column("categories", JSON, nullable=False),
        sa.Column("redeemers", JSON, nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.CheckConstraint("points_cost >= 0 AND face_value >= 0", name=op.f("ck_reward_amounts")),
        sa.CheckConstraint("stock_left IS NULL OR stock_left >= 0", name=op.f("ck_reward_stock_left")),
        sa.ForeignKeyConstraint(["sponsor_id"], ["partner.id"], name=op.f("fk_reward_sponsor_id_partner")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward")),
        sa.UniqueConstraint("public_id", name=op.f("uq_reward_public_id")),
    )
    with op.batch_alter_table("reward", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reward_sponsor_id"), ["sponsor_id"], unique=False)

    op.create_table(
        "reward_claim",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("reward_id", BIGID, nullable=False),
        sa.Column("member_id", BIGID, nullable=False),
        sa.Column("claimant_id", BIGID, nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("tier_level", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=12), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("code_last4", sa.String(length=4), nullable=False),
        sa.Column("hold_id", BIGID, nullable=True),
        sa.Column("quote_id", BIGID, nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("redeemer_id", BIGID, nullable=True),
        sa.Column("order_reference", sa.String(length=200), nullable=True),
        sa.Column("redeemed_quantity", sa.Integer(), server_default="0", nullable=False),
        sa.Column("redeemed_points", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("redeemed_value", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("redeem_key", sa.String(length=200), nullable=True),
        sa.Column("redeem_hash", sa.String(length=64), nullable=True),
        sa.Column("resolved_at", TIME, nullable=True),
        sa.CheckConstraint(
            "status IN ('RESERVED', 'ISSUED', 'REDEEMED', 'VOIDED', 'EXPIRED', 'REVERSED')",
            name=op.f("ck_reward_claim_status"),
        ),
        sa.CheckConstraint("quantity >= 1", name=op.f("ck_reward_claim_quantity")),
        sa.ForeignKeyConstraint(["claimant_id"], ["partner.id"], name=op.f("fk_reward_claim_claimant_id_partner")),
        sa.ForeignKeyConstraint(["hold_id"], ["point_hold.id"], name=op.f("fk_reward_claim_hold_id_point_hold")),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_reward_claim_member_id_member")),
        sa.ForeignKeyConstraint(["quote_id"], ["pos_quote.id"], name=op.f("fk_reward_claim_quote_id_pos_quote")),
        sa.ForeignKeyConstraint(["redeemer_id"], ["partner.id"], name=op.f("fk_reward_claim_redeemer_id_partner")),
        sa.ForeignKeyConstraint(["reward_id"], ["reward.id"], name=op.f("fk_reward_claim_reward_id_reward")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_claim")),
        sa.UniqueConstraint("claimant_id", "idempotency_key", name=op.f("uq_reward_claim_claimant_id_idempotency_key")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_reward_claim_code_hash")),
        sa.UniqueConstraint("public_id", name=op.f("uq_reward_claim_public_id")),
        sa.UniqueConstraint("redeemer_id", "redeem_key", name=op.f("uq_reward_claim_redeemer_id_redeem_key")),
    )
    with op.batch_alter_table("reward_claim", schema=None) as batch_op:
        batch_op.create_index("ix_reward_claim_due", ["status", "expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_reward_claim_member_id"), ["member_id"], unique=False)
        batch_op.create_index("ix_reward_claim_order", ["redeemer_id", "order_reference"], unique=False)
        batch_op.create_index(batch_op.f("ix_reward_claim_reward_id"), ["reward_id"], unique=False)

    op.create_table(
        "reward_usage",
        sa.Column("reward_id", BIGID, nullable=False),
        sa.Column("member_id", BIGID, nullable=False),
        sa.Column("period", sa.String(length=12), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.CheckConstraint("used >= 0", name=op.f("ck_reward_usage_used")),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_reward_usage_member_id_member")),
        sa.ForeignKeyConstraint(["reward_id"], ["reward.id"], name=op.f("fk_reward_usage_reward_id_reward")),
        sa.PrimaryKeyConstraint("reward_id", "member_id", "period", name=op.f("pk_reward_usage")),
    )
    op.create_table(
        "reward_window",
        sa.Column("reward_id", BIGID, nullable=False),
        sa.Column("min_level", sa.Integer(), nullable=False),
        sa.Column("opens_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(["reward_id"], ["reward.id"], name=op.f("fk_reward_window_reward_id_reward")),
        sa.PrimaryKeyConstraint("reward_id", "min_level", name=op.f("pk_reward_window")),
    )
    op.create_table(
        "reward_settlement",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("claim_id", BIGID, nullable=False),
        sa.Column("basis", sa.String(length=10), nullable=False),
        sa.Column("debtor_id", BIGID, nullable=False),
        sa.Column("creditor_id", BIGID, nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["claim_id"], ["reward_claim.id"], name=op.f("fk_reward_settlement_claim_id_reward_claim")
        ),
        sa.ForeignKeyConstraint(["creditor_id"], ["partner.id"], name=op.f("fk_reward_settlement_creditor_id_partner")),
        sa.ForeignKeyConstraint(["debtor_id"], ["partner.id"], name=op.f("fk_reward_settlement_debtor_id_partner")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_settlement")),
    )
    with op.batch_alter_table("reward_settlement", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reward_settlement_claim_id"), ["claim_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_reward_settlement_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_table("reward_settlement")
    op.drop_table("reward_window")
    op.drop_table("reward_usage")
    op.drop_table("reward_claim")
    op.drop_table("reward")
    op.drop_table("pos_quote")
