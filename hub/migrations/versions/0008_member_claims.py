"""Linking needs the member: provisional members, claims on a known phone, merges, phone lockouts, client limits

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.add_column(sa.Column("merged_into", sa.BigInteger(), nullable=True))
        batch_op.create_foreign_key("fk_member_merged_into_member", "member", ["merged_into"], ["id"])

    op.create_table(
        "member_claim",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("partner_id", sa.BigInteger(), sa.ForeignKey("partner.id"), nullable=True),
        sa.Column("member_id", sa.BigInteger(), sa.ForeignKey("member.id"), nullable=False),
        sa.Column("target_member_id", sa.BigInteger(), sa.ForeignKey("member.id"), nullable=True),
        sa.Column("phone", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("decided_by", sa.String(20), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('PENDING', 'CONFIRMED', 'REJECTED')", name="ck_member_claim_status"),
    )
    op.create_index("ix_member_claim_member_id", "member_claim", ["member_id"])
    op.create_index("ix_member_claim_target_status", "member_claim", ["target_member_id", "status"])

    op.create_table(
        "member_merge",
        sa.Column("id", BIGID, primary_key=True, autoincrement=True),
        sa.Column("member_id", sa.BigInteger(), sa.ForeignKey("member.id"), nullable=False),
        sa.Column("merged_member_id", sa.BigInteger(), sa.ForeignKey("member.id"), nullable=False),
        sa.Column("partner_id", sa.BigInteger(), sa.ForeignKey("partner.id"), nullable=True),
        sa.Column("evidence", JSON, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_member_merge_member_id", "member_merge", ["member_id"])

    with op.batch_alter_table("signin_code", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_id", sa.BigInteger(), nullable=True))
        batch_op.create_foreign_key("fk_signin_code_claim_id_member_claim", "member_claim", ["claim_id"], ["id"])
        batch_op.create_index("ix_signin_code_claim_id", ["claim_id"])

    op.create_table(
        "phone_guard",
        sa.Column("phone", sa.String(20), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True),
    )

    with op.batch_alter_table("import_job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provisional", sa.BigInteger(), server_default="0", nullable=False))

    with op.batch_alter_table("oauth_client", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requests_per_minute", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("cost_per_minute", sa.Integer(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        # The token check now reads the client's rate limits too: a change to them must empty the caches.
        _watch_client("id, client_id, partner_id, status, allowed_scopes, requests_per_minute, cost_per_minute")


def _watch_client(columns: str) -> None:
    op.execute("DROP TRIGGER IF EXISTS oauth_client_state_changed ON oauth_client")
    op.execute(
        f"CREATE TRIGGER oauth_client_state_changed AFTER UPDATE OF {columns} OR DELETE OR TRUNCATE ON oauth_client "
        "FOR EACH STATEMENT EXECUTE FUNCTION hub_token_state_changed()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _watch_client("id, client_id, partner_id, status, allowed_scopes")
    with op.batch_alter_table("oauth_client", schema=None) as batch_op:
        batch_op.drop_column("cost_per_minute")
        batch_op.drop_column("requests_per_minute")
    with op.batch_alter_table("import_job", schema=None) as batch_op:
        batch_op.drop_column("provisional")
    op.drop_table("phone_guard")
    with op.batch_alter_table("signin_code", schema=None) as batch_op:
        batch_op.drop_index("ix_signin_code_claim_id")
        batch_op.drop_constraint("fk_signin_code_claim_id_member_claim", type_="foreignkey")
        batch_op.drop_column("claim_id")
    op.drop_table("member_merge")
    op.drop_table("member_claim")
    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.drop_constraint("fk_member_merged_into_member", type_="foreignkey")
        batch_op.drop_column("merged_into")
