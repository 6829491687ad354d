from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, String, Table

from hub.db import BigId, UtcDateTime, metadata

# The member's tier now. No row: the first level, since enrolment.
member_tier = Table(
    "member_tier",
    metadata,
    Column("member_id", BigId, ForeignKey("member.id"), primary_key=True),
    Column("level", Integer, nullable=False),
    Column("since", UtcDateTime, nullable=False),
    Column("grace_until", UtcDateTime, nullable=True),  # below the threshold: the downgrade waits until then
    Column("review_at", UtcDateTime, nullable=False, index=True),  # when `hub worker` looks at it next
    Column("birthday_gift_year", Integer, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Append-only: every change of tier with the reason a member or a till can read.
tier_change = Table(
    "tier_change",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("member_id", BigId, ForeignKey("member.id"), nullable=False, index=True),
    Column("from_level", Integer, nullable=False),
    Column("to_level", Integer, nullable=False),
    Column("growth", BigInteger, nullable=False),  # fen of growth value in the window at the time
    Column("reason", String(300), nullable=False),
    Column("at", UtcDateTime, nullable=False),
)
