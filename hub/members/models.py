from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, Date, ForeignKey, Index, Integer, String, Table, UniqueConstraint

from hub.db import BigId, Json, UtcDateTime, metadata

# active: the hub member who owns a phone. provisional: what one partner enrolled under a phone the hub already
# knew, holding only what that partner sent, until the phone's owner confirms the link (member_claim). merged:
# folded into `merged_into`, which now holds everything it had. erased: see members/privacy.py.
MEMBER_STATUSES = ("active", "provisional", "merged", "erased")
# The members a partner can reach (through its own link and consent).
REACHABLE = ("active", "provisional")

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
    Column("merged_into", BigId, ForeignKey("member.id"), nullable=True),
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
    # Set for a code that confirms an enrolment (a claim) rather than signing in.
    Column("claim_id", BigId, ForeignKey("member_claim.id"), nullable=True, index=True),
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

# A partner enrolled a phone: the code sent to it lets the phone's owner confirm. With a target, the phone belonged
# to that hub member already and confirming merges the partner's (provisional) member into them; without one the
# phone was new and confirming just proves it. Decided once: by the code (CODE) or in the portal (PORTAL).
member_claim = Table(
    "member_claim",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("partner_id", BigId, ForeignKey("partner.id"), nullable=True),  # null: the member's own merge
    Column("member_id", BigId, ForeignKey("member.id"), nullable=False, index=True),
    Column("target_member_id", BigId, ForeignKey("member.id"), nullable=True),
    Column("phone", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("decided_by", String(20), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("decided_at", UtcDateTime, nullable=True),
    CheckConstraint("status IN ('PENDING', 'CONFIRMED', 'REJECTED')", name="status"),
)
Index("ix_member_claim_target_status", member_claim.c.target_member_id, member_claim.c.status)

# The record of every merge, with its evidence (how the member proved it was them); the portal lists them.
member_merge = Table(
    "member_merge",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("member_id", BigId, ForeignKey("member.id"), nullable=False, index=True),
    Column("merged_member_id", BigId, ForeignKey("member.id"), nullable=False),
    Column("partner_id", BigId, ForeignKey("partner.id"), nullable=True),
    Column("evidence", Json, nullable=False),
    Column("at", UtcDateTime, nullable=False),
)

# Consecutive wrong codes per phone, across sign-in and enrolment codes. Ten in a row lock the phone's codes for
# an hour (NIST SP 800-63B 5.2.2: at most 100); `locked_at` stays until the member has been told at sign-in.
phone_guard = Table(
    "phone_guard",
    metadata,
    Column("phone", String(20), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("locked_until", UtcDateTime, nullable=True),
    Column("locked_at", UtcDateTime, nullable=True),
)
