"""A consent request may carry a data window (no data older than a date)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consent_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data_window_from", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consent_request", schema=None) as batch_op:
        batch_op.drop_column("data_window_from")
