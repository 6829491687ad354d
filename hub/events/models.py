from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, String, Table, text

from hub.db import BigId, Json, UtcDateTime, metadata

# The transactional outbox: every change a partner may want to hear about is written here in the same
# transaction as the change itself, so no event is lost and none is sent for a change that rolled back.
event = Table(
    "event",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("type", String(60), nullable=False),
    Column("member_id", BigId, ForeignKey("member.id"), nullable=True, index=True),
    Column("partner_id", BigId, ForeignKey("partner.id"), nullable=True),
    Column("payload", Json, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    # When the webhook worker turned it into deliveries (or found nobody to tell).
    Column("fanned_out_at", UtcDateTime, nullable=True),
)
Index(
    "ix_event_unfanned",
    event.c.id,
    postgresql_where=text("fanned_out_at IS NULL"),
    sqlite_where=text("fanned_out_at IS NULL"),
)
