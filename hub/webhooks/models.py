"""Webhook endpoints, their signing secrets, and one delivery row per (event, endpoint) with its attempts."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, LargeBinary, String, Table, Text, UniqueConstraint

from hub.db import BigId, Json, UtcDateTime, metadata

webhook_endpoint = Table(
    "webhook_endpoint",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("public_id", String(40), nullable=False, unique=True),
    Column("partner_id", BigId, ForeignKey("partner.id"), nullable=False, index=True),
    Column("url", String(2000), nullable=False),
    Column("event_types", Json, nullable=False),
    Column("description", String(200), nullable=True),
    Column("enabled", Boolean, nullable=False),
    Column("disabled_reason", String(200), nullable=True),
    # Since when every delivery has failed (null after any success); five days of it disable the endpoint.
    Column("failing_since", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("deleted_at", UtcDateTime, nullable=True),
)

# Signing secrets, encrypted with the hub's webhook key (outside the database). A rotated-out secret keeps
# signing until `retires_at`, so receivers can switch without losing a delivery.
webhook_secret = Table(
    "webhook_secret",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("endpoint_id", BigId, ForeignKey("webhook_endpoint.id"), nullable=False, index=True),
    Column("secret", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("retires_at", UtcDateTime, nullable=True),
)

DELIVERY_STATUSES = ("PENDING", "RETRYING", "SUCCEEDED", "FAILED", "CANCELLED")

# One per (event, endpoint): the exact bytes sent (so every retry and redelivery signs the same body), where it
# stands, and when the next attempt is due. `locked_until` is a worker's lease while it sends.
webhook_delivery = Table(
    "webhook_delivery",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("public_id", String(40), nullable=False, unique=True),
    Column("event_id", BigId, ForeignKey("event.id"), nullable=True),  # null: webhook.test
    Column("endpoint_id", BigId, ForeignKey("webhook_endpoint.id"), nullable=False),
    Column("member_id", BigId, ForeignKey("member.id"), nullable=True),
    Column("consent_id", BigId, ForeignKey("consent.id"), nullable=True),
    Column("event_type", String(60), nullable=False),
    Column("webhook_id", String(60), nullable=False),  # per partner: two partners never share one
    Column("body", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("locked_until", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("event_id", "endpoint_id"),
)
Index("ix_webhook_delivery_due", webhook_delivery.c.status, webhook_delivery.c.next_attempt_at)
Index("ix_webhook_delivery_endpoint", webhook_delivery.c.endpoint_id, webhook_delivery.c.id)

webhook_attempt = Table(
    "webhook_attempt",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("delivery_id", BigId, ForeignKey("webhook_delivery.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("status", String(20), nullable=False),  # SUCCEEDED | FAILED
    Column("response_status", Integer, nullable=True),
    Column("duration_ms", Integer, nullable=False),
    Column("error", String(300), nullable=True),
    Column("at", UtcDateTime, nullable=False),
)
