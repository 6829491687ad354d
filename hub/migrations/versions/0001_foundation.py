"""foundation

Revision ID: 0001
Revises:
Create Date: 2026-11-22 07:45:59.157743
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from hub.migrations.append_only import append_only

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# BIGINT on PostgreSQL, INTEGER (the rowid alias, so it autoincrements) on SQLite.
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "member",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("birthday", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=20), server_default="active", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member")),
        sa.UniqueConstraint("phone", name=op.f("uq_member_phone")),
    )
    op.create_table(
        "partner",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="active", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('pharmacy_chain', 'insurer', 'gym', 'clinic', 'other')", name=op.f("ck_partner_kind")
        ),
        sa.CheckConstraint("status IN ('active', 'suspended')", name=op.f("ck_partner_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner")),
        sa.UniqueConstraint("name", name=op.f("uq_partner_name")),
        sa.UniqueConstraint("public_id", name=op.f("uq_partner_public_id")),
    )
    op.create_table(
        "consent",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("member_id", BIGID, nullable=False),
        sa.Column("partner_id", BIGID, nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("permissions", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("purposes", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("policy_version", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("data_window_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_consent_member_id_member")),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"], name=op.f("fk_consent_partner_id_partner")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent")),
        sa.UniqueConstraint("member_id", "partner_id", name=op.f("uq_consent_member_id_partner_id")),
        sa.UniqueConstraint("public_id", name=op.f("uq_consent_public_id")),
    )
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consent_partner_id"), ["partner_id"], unique=False)

    op.create_table(
        "event",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("type", sa.String(length=60), nullable=False),
        sa.Column("member_id", BIGID, nullable=True),
        sa.Column("partner_id", BIGID, nullable=True),
        sa.Column("payload", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_event_member_id_member")),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"], name=op.f("fk_event_partner_id_partner")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event")),
    )
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_event_member_id"), ["member_id"], unique=False)

    op.create_table(
        "member_link",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("member_id", BIGID, nullable=False),
        sa.Column("partner_id", BIGID, nullable=False),
        sa.Column("pairwise_id", sa.String(length=40), nullable=False),
        sa.Column("external_id", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_member_link_member_id_member")),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"], name=op.f("fk_member_link_partner_id_partner")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_link")),
        sa.UniqueConstraint("pairwise_id", name=op.f("uq_member_link_pairwise_id")),
        sa.UniqueConstraint("partner_id", "external_id", name=op.f("uq_member_link_partner_id_external_id")),
        sa.UniqueConstraint("partner_id", "member_id", name=op.f("uq_member_link_partner_id_member_id")),
    )
    with op.batch_alter_table("member_link", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_member_link_member_id"), ["member_id"], unique=False)
        batch_op.create_index("ix_member_link_partner_pairwise", ["partner_id", "pairwise_id"], unique=False)

    op.create_table(
        "oauth_client",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(length=60), nullable=False),
        sa.Column("partner_id", BIGID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("allowed_scopes", sa.Text(), nullable=False),
        sa.Column("auth_method", sa.String(length=30), nullable=False),
        sa.Column("jwks", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True),
        sa.Column("status", sa.String(length=20), server_default="active", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "auth_method IN ('client_secret_basic', 'client_secret_post', 'private_key_jwt')",
            name=op.f("ck_oauth_client_auth_method"),
        ),
        sa.CheckConstraint("status IN ('active', 'disabled')", name=op.f("ck_oauth_client_status")),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"], name=op.f("fk_oauth_client_partner_id_partner")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_client")),
        sa.UniqueConstraint("client_id", name=op.f("uq_oauth_client_client_id")),
    )
    with op.batch_alter_table("oauth_client", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_oauth_client_partner_id"), ["partner_id"], unique=False)

    op.create_table(
        "access_token",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("client_pk", BIGID, nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_pk"], ["oauth_client.id"], name=op.f("fk_access_token_client_pk_oauth_client")
        ),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_access_token")),
    )
    with op.batch_alter_table("access_token", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_access_token_client_pk"), ["client_pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_access_token_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "client_assertion",
        sa.Column("client_pk", BIGID, nullable=False),
        sa.Column("jti", sa.String(length=200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_pk"], ["oauth_client.id"], name=op.f("fk_client_assertion_client_pk_oauth_client")
        ),
        sa.PrimaryKeyConstraint("client_pk", "jti", name=op.f("pk_client_assertion")),
    )
    with op.batch_alter_table("client_assertion", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_client_assertion_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "client_secret",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("client_pk", BIGID, nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("hint", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_pk"], ["oauth_client.id"], name=op.f("fk_client_secret_client_pk_oauth_client")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_secret")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_client_secret_secret_hash")),
    )
    with op.batch_alter_table("client_secret", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_client_secret_client_pk"), ["client_pk"], unique=False)

    op.create_table(
        "consent_event",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("consent_id", BIGID, nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("permissions", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("previous_permissions", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True),
        sa.Column("evidence", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["consent_id"], ["consent.id"], name=op.f("fk_consent_event_consent_id_consent")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_event")),
    )
    with op.batch_alter_table("consent_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consent_event_consent_id"), ["consent_id"], unique=False)

    append_only("consent_event")


def downgrade() -> None:
    with op.batch_alter_table("consent_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_event_consent_id"))

    op.drop_table("consent_event")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS hub_append_only()")
    with op.batch_alter_table("client_secret", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_client_secret_client_pk"))

    op.drop_table("client_secret")
    with op.batch_alter_table("client_assertion", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_client_assertion_expires_at"))

    op.drop_table("client_assertion")
    with op.batch_alter_table("access_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_token_expires_at"))
        batch_op.drop_index(batch_op.f("ix_access_token_client_pk"))

    op.drop_table("access_token")
    with op.batch_alter_table("oauth_client", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oauth_client_partner_id"))

    op.drop_table("oauth_client")
    with op.batch_alter_table("member_link", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_member_link_member_id"))

    op.drop_table("member_link")
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_member_id"))

    op.drop_table("event")
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_partner_id"))

    op.drop_table("consent")
    op.drop_table("partner")
    op.drop_table("member")
