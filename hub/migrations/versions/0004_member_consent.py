"""Member-facing consent: authorization codes, refresh tokens, consent requests, sign-in, sessions, access log

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 18:11:36.506240
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from hub.migrations.append_only import append_only

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:

    op.create_table(
        "signin_code",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signin_code")),
    )
    with op.batch_alter_table("signin_code", schema=None) as batch_op:
        batch_op.create_index("ix_signin_code_ip_created", ["ip", "created_at"], unique=False)
        batch_op.create_index("ix_signin_code_phone_created", ["phone", "created_at"], unique=False)

    op.create_table(
        "consent_request",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("member_id", BIGID, nullable=False),
        sa.Column("partner_id", BIGID, nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column(
            "permissions", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "purposes", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_consent_request_member_id_member")),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"], name=op.f("fk_consent_request_partner_id_partner")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_request")),
        sa.UniqueConstraint("public_id", name=op.f("uq_consent_request_public_id")),
    )
    with op.batch_alter_table("consent_request", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consent_request_member_id"), ["member_id"], unique=False)

    op.create_table(
        "member_session",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("member_id", BIGID, nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_member_session_member_id_member")),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_member_session")),
    )
    with op.batch_alter_table("member_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_member_session_member_id"), ["member_id"], unique=False)

    op.create_table(
        "access_log",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("member_id", BIGID, nullable=False),
        sa.Column("partner_id", BIGID, nullable=False),
        sa.Column("consent_id", BIGID, nullable=False),
        sa.Column("categories", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["consent_id"], ["consent.id"], name=op.f("fk_access_log_consent_id_consent")),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_access_log_member_id_member")),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"], name=op.f("fk_access_log_partner_id_partner")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_log")),
    )
    with op.batch_alter_table("access_log", schema=None) as batch_op:
        batch_op.create_index("ix_access_log_member_time", ["member_id", "occurred_at"], unique=False)
    append_only("access_log")

    op.create_table(
        "authorization_code",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("client_pk", BIGID, nullable=False),
        sa.Column("member_id", BIGID, nullable=False),
        sa.Column("consent_id", BIGID, nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("code_challenge", sa.String(length=128), nullable=False),
        sa.Column("code_challenge_method", sa.String(length=10), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_pk"], ["oauth_client.id"], name=op.f("fk_authorization_code_client_pk_oauth_client")
        ),
        sa.ForeignKeyConstraint(["consent_id"], ["consent.id"], name=op.f("fk_authorization_code_consent_id_consent")),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_authorization_code_member_id_member")),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_authorization_code")),
    )
    with op.batch_alter_table("authorization_code", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_authorization_code_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "refresh_token",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("client_pk", BIGID, nullable=False),
        sa.Column("member_id", BIGID, nullable=False),
        sa.Column("consent_id", BIGID, nullable=False),
        sa.Column("grant_id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_pk"], ["oauth_client.id"], name=op.f("fk_refresh_token_client_pk_oauth_client")
        ),
        sa.ForeignKeyConstraint(["consent_id"], ["consent.id"], name=op.f("fk_refresh_token_consent_id_consent")),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"], name=op.f("fk_refresh_token_member_id_member")),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_refresh_token")),
    )
    with op.batch_alter_table("refresh_token", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_refresh_token_consent_id"), ["consent_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_refresh_token_grant_id"), ["grant_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_refresh_token_member_id"), ["member_id"], unique=False)

    with op.batch_alter_table("access_token", schema=None) as batch_op:
        batch_op.add_column(sa.Column("member_id", BIGID, nullable=True))
        batch_op.add_column(sa.Column("consent_id", BIGID, nullable=True))
        batch_op.add_column(sa.Column("grant_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_access_token_grant_id"), ["grant_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_access_token_member_id"), ["member_id"], unique=False)
        batch_op.create_foreign_key(batch_op.f("fk_access_token_consent_id_consent"), "consent", ["consent_id"], ["id"])
        batch_op.create_foreign_key(batch_op.f("fk_access_token_member_id_member"), "member", ["member_id"], ["id"])

    with op.batch_alter_table("oauth_client", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "redirect_uris",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:

    with op.batch_alter_table("oauth_client", schema=None) as batch_op:
        batch_op.drop_column("redirect_uris")

    with op.batch_alter_table("access_token", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_access_token_member_id_member"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_access_token_consent_id_consent"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_access_token_member_id"))
        batch_op.drop_index(batch_op.f("ix_access_token_grant_id"))
        batch_op.drop_column("grant_id")
        batch_op.drop_column("consent_id")
        batch_op.drop_column("member_id")

    with op.batch_alter_table("refresh_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_refresh_token_member_id"))
        batch_op.drop_index(batch_op.f("ix_refresh_token_grant_id"))
        batch_op.drop_index(batch_op.f("ix_refresh_token_consent_id"))

    op.drop_table("refresh_token")
    with op.batch_alter_table("authorization_code", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_authorization_code_expires_at"))

    op.drop_table("authorization_code")
    with op.batch_alter_table("access_log", schema=None) as batch_op:
        batch_op.drop_index("ix_access_log_member_time")

    op.drop_table("access_log")
    with op.batch_alter_table("member_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_member_session_member_id"))

    op.drop_table("member_session")
    with op.batch_alter_table("consent_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_request_member_id"))

    op.drop_table("consent_request")
    with op.batch_alter_table("signin_code", schema=None) as batch_op:
        batch_op.drop_index("ix_signin_code_phone_created")
        batch_op.drop_index("ix_signin_code_ip_created")

    op.drop_table("signin_code")
