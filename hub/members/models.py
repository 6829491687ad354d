from __future__ import annotations

from sqlalchemy import Column, Date, ForeignKey, Index, Integer, String, Table, UniqueConstraint

from hub.db import BigId, UtcDateTime, metadata

# The hub's own member record. Its integer id never leaves the hub: partners see pairwise ids only.
member = Table(
    "member",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=True),
    Column("phone", String(20), nullable=True, unique=True),  # E.164
    Column("birthday", Date, nullable=True),
    Column("status", String(20), nullable=False, server_default="active"),
    Column("created_at", UtcDateTime, nullable=False),
)

# A partner's view of a member: the pairwise id it knows the member by, and its own external id if it has one.
member_link = Table(
    "member_link",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("member_id", BigId, ForeignKey("member.id"), nullable=False, index=True),
    Column("partner_id", BigId, ForeignKey("partner.id"), nullable=False),
    Column("pairwise_id", String(40), nullable=False, unique=True),
    Column("external_id", String(100), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("partner_id", "member_id"),
    UniqueConstraint("partner_id", "external_id"),
)

# A partner's member list is paged in pairwise-id order.
Index("ix_member_link_partner_pairwise", member_link.c.partner_id, member_link.c.pairwise_id)

# One-time sign-in codes sent by SMS. Stored by hash; a code dies after its first success, after its lifetime,
# or after too many wrong guesses. Rows also carry the requesting IP so that sending can be rate limited.
signin_code = Table(
    "signin_code",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("phone", String(20), nullable=False),
    Column("code_hash", String(64), nullable=False),
    Column("ip", String(45), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
)
Index("ix_signin_code_phone_created", signin_code.c.phone, signin_code.c.created_at)
Index("ix_signin_code_ip_created", signin_code.c.ip, signin_code.c.created_at)

# A member signed in to the portal. The cookie holds the token; only its hash is stored.
member_session = Table(
    "member_session",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("member_id", BigId, ForeignKey("member.id"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
)
