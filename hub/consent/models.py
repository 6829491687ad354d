from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint

from hub.db import BigId, Json, UtcDateTime, metadata

CONSENT_STATUSES = ("AWAITING_AUTHORISATION", "AUTHORISED", "REJECTED", "REVOKED", "EXPIRED")

# The member's current consent to one partner. Every change bumps `version` and appends a consent_event,
# so the row is the state and the event log is the proof.
consent = Table(
    "consent",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("public_id", String(40), nullable=False, unique=True),
    Column("member_id", BigId, ForeignKey("member.id"), nullable=False),
    Column("partner_id", BigId, ForeignKey("partner.id"), nullable=False, index=True),
    Column("status", String(30), nullable=False),
    Column("permissions", Json, nullable=False),
    Column("purposes", Json, nullable=False),
    Column("policy_version", String(40), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("data_window_from", UtcDateTime, nullable=True),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("version", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("member_id", "partner_id"),
)

# Append-only: rows are inserted, never updated or deleted (the migration installs triggers that refuse both).
consent_event = Table(
    "consent_event",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("consent_id", BigId, ForeignKey("consent.id"), nullable=False, index=True),
    Column("kind", String(30), nullable=False),
    Column("actor", String(80), nullable=False),
    Column("permissions", Json, nullable=False),
    Column("previous_permissions", Json, nullable=True),
    Column("evidence", Json, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
)

# A partner's request for (more) consent, which the member approves or rejects in the portal.
consent_request = Table(
    "consent_request",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("public_id", String(40), nullable=False, unique=True),
    Column("member_id", BigId, ForeignKey("member.id"), nullable=False, index=True),
    Column("partner_id", BigId, ForeignKey("partner.id"), nullable=False),
    Column("status", String(30), nullable=False),  # AWAITING_AUTHORISATION | AUTHORISED | REJECTED
    Column("permissions", Json, nullable=False),
    Column("purposes", Json, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),  # of the consent it asks for
    Column("data_window_from", UtcDateTime, nullable=True),  # no data older than this, if given
    Column("created_at", UtcDateTime, nullable=False),
    Column("decided_at", UtcDateTime, nullable=True),
)

# Every read of member data by a partner: who read which categories of whose data, under which consent, when.
# Append-only; the member reads it in the portal.
access_log = Table(
    "access_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("member_id", BigId, ForeignKey("member.id"), nullable=False),
    Column("partner_id", BigId, ForeignKey("partner.id"), nullable=False),
    Column("consent_id", BigId, ForeignKey("consent.id"), nullable=False),
    Column("categories", Text, nullable=False),  # space-separated permissions, e.g. "member:read points:read"
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("via", String(60), nullable=True),  # null: a GraphQL read; "webhook:<event type>": a delivery
)
Index("ix_access_log_member_time", access_log.c.member_id, access_log.c.occurred_at)
