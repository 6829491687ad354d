"""Retention: fits, scores, the notices sent, the worker's runs; a partner's at-risk threshold; expiry notices

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("partner_terms", schema=None) as batch_op:
        batch_op.add_column(sa.Column("at_risk_threshold", sa.Float(), nullable=False, server_default="0.3"))
    op.create_table(
        "retention_fit",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("public_id", sa.String(40), nullable=False),
        sa.Column("partner_id", BIGID, sa.ForeignKey("partner.id", name="fk_retention_fit_partner_id_partner"),
                  nullable=False),
        sa.Column("model", sa.String(20), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("spend_params", JSON, nullable=True),
        sa.Column("log_likelihood", sa.Float(), nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.Column("patterns", sa.Integer(), nullable=False),
        sa.Column("repeat_purchases", sa.Integer(), nullable=False),
        sa.Column("observed_until", TIME, nullable=False),
        sa.Column("converged", sa.Boolean(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("fitted_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_retention_fit"),
        sa.UniqueConstraint("public_id", name="uq_retention_fit_public_id"),
    )  # fmt: skip
    op.create_index("ix_retention_fit_partner_id", "retention_fit", ["partner_id"])
    op.create_table(
        "retention_score",
        # No foreign keys on the scores and notices (retention/models.py says why).
        sa.Column("partner_id", BIGID, nullable=False),
        sa.Column("member_id", BIGID, nullable=False),
        sa.Column("fit_id", BIGID, nullable=False),
        sa.Column("p_alive", sa.Float(), nullable=False),
        sa.Column("expected_purchases_90d", sa.Float(), nullable=False),
        sa.Column("value_12m", sa.BigInteger(), nullable=True),
        sa.Column("recency_days", sa.Integer(), nullable=False),
        sa.Column("frequency", sa.Integer(), nullable=False),
        sa.Column("monetary", sa.BigInteger(), nullable=False),
        sa.Column("r", sa.SmallInteger(), nullable=False),
        sa.Column("f", sa.SmallInteger(), nullable=False),
        sa.Column("m", sa.SmallInteger(), nullable=False),
        sa.Column("segment", sa.String(30), nullable=False),
        sa.Column("at_risk", sa.Boolean(), nullable=False),
        sa.Column("last_purchase_at", TIME, nullable=False),
        sa.Column("scored_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("partner_id", "member_id", name="pk_retention_score"),
    )  # fmt: skip
    op.create_index("ix_retention_score_member_id", "retention_score", ["member_id"])
    op.create_table(
        "retention_notice",
        sa.Column("partner_id", BIGID, nullable=False),
        sa.Column("member_id", BIGID, nullable=False),
        sa.Column("notified_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("partner_id", "member_id", name="pk_retention_notice"),
    )  # fmt: skip
    op.create_table(
        "retention_run",
        sa.Column("partner_id", BIGID, sa.ForeignKey("partner.id", name="fk_retention_run_partner_id_partner"),
                  nullable=False),
        sa.Column("attempted_at", TIME, nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("partner_id", name="pk_retention_run"),
    )  # fmt: skip
    op.create_table(
        "expiry_notice",
        sa.Column("member_id", BIGID, sa.ForeignKey("member.id", name="fk_expiry_notice_member_id_member"),
                  nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("notified_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("member_id", "expires_at", name="pk_expiry_notice"),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("expiry_notice")
    op.drop_table("retention_run")
    op.drop_table("retention_notice")
    op.drop_index("ix_retention_score_member_id", table_name="retention_score")
    op.drop_table("retention_score")
    op.drop_index("ix_retention_fit_partner_id", table_name="retention_fit")
    op.drop_table("retention_fit")
    with op.batch_alter_table("partner_terms", schema=None) as batch_op:
        batch_op.drop_column("at_risk_threshold")
