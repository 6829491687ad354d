"""Webhooks: endpoints, encrypted secrets, deliveries and attempts; events fanned out; the access log says how

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fanned_out_at", TIME, nullable=True))
    # Only the events still to fan out are in this index, so the worker's poll stays cheap however long the log.
    op.create_index(
        "ix_event_unfanned",
        "event",
        ["id"],
        postgresql_where=sa.text("fanned_out_at IS NULL"),
        sqlite_where=sa.text("fanned_out_at IS NULL"),
    )
    with op.batch_alter_table("access_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("via", sa.String(60), nullable=True))

    op.create_table(
        "webhook_endpoint",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("public_id", sa.String(40), nullable=False, unique=True),
        sa.Column("partner_id", sa.BigInteger(), sa.ForeignKey("partner.id"), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("event_types", JSON, nullable=False),
        sa.Column("description", sa.String(200), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(200), nullable=True),
        sa.Column("failing_since", TIME, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("deleted_at", TIME, nullable=True),
    )
    op.create_index("ix_webhook_endpoint_partner_id", "webhook_endpoint", ["partner_id"])
    op.create_table(
        "webhook_secret",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("endpoint_id", sa.BigInteger(), sa.ForeignKey("webhook_endpoint.id"), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("retires_at", TIME, nullable=True),
    )
    op.create_index("ix_webhook_secret_endpoint_id", "webhook_secret", ["endpoint_id"])
    op.create_table(
        "webhook_delivery",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("public_id", sa.String(40), nullable=False, unique=True),
        sa.Column("event_id", sa.BigInteger(), sa.ForeignKey("event.id"), nullable=True),
        sa.Column("endpoint_id", sa.BigInteger(), sa.ForeignKey("webhook_endpoint.id"), nullable=False),
        sa.Column("member_id", sa.BigInteger(), sa.ForeignKey("member.id"), nullable=True),
        sa.Column("consent_id", sa.BigInteger(), sa.ForeignKey("consent.id"), nullable=True),
        sa.Column("event_type", sa.String(60), nullable=False),
        sa.Column("webhook_id", sa.String(60), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TIME, nullable=True),
        sa.Column("locked_until", TIME, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_delivery_event_id"),
    )
    op.create_index("ix_webhook_delivery_due", "webhook_delivery", ["status", "next_attempt_at"])
    op.create_index("ix_webhook_delivery_endpoint", "webhook_delivery", ["endpoint_id", "id"])
    op.create_table(
        "webhook_attempt",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column(
            "delivery_id", sa.BigInteger(), sa.ForeignKey("webhook_delivery.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(300), nullable=True),
        sa.Column("at", TIME, nullable=False),
    )
    op.create_index("ix_webhook_attempt_delivery_id", "webhook_attempt", ["delivery_id"])


def downgrade() -> None:
    op.drop_table("webhook_attempt")
    op.drop_table("webhook_delivery")
    op.drop_table("webhook_secret")
    op.drop_table("webhook_endpoint")
    with op.batch_alter_table("access_log", schema=None) as batch_op:
        batch_op.drop_column("via")
    op.drop_index("ix_event_unfanned", table_name="event")
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_column("fanned_out_at")
