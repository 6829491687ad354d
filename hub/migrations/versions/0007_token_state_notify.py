"""PostgreSQL tells every hub process when a token's revocation, client or partner state changes

Each process caches partner tokens' state (hub/auth/token_states.py) and drops the cache on a notification on
channel `hub_token_state`. Triggers rather than calls in the services, so that no write path, including an
operator's hand-written SQL, can change that state without the processes hearing of it. Statement-level and
only on the columns a token check reads: a prepaid partner's balance or a client's name changing costs nothing.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# table → the columns `hub.auth.principal` reads from it
WATCHED = {
    "access_token": "jti, client_pk, revoked_at, member_id, consent_id",
    "oauth_client": "id, client_id, partner_id, status, allowed_scopes",
    "partner": "id, public_id, name, kind, status",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE OR REPLACE FUNCTION hub_token_state_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('hub_token_state', TG_TABLE_NAME);
            RETURN NULL;
        END
        $$
        """
    )
    for table, columns in WATCHED.items():
        op.execute(
            f"CREATE TRIGGER {table}_state_changed AFTER UPDATE OF {columns} OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION hub_token_state_changed()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in WATCHED:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_state_changed ON {table}")
    op.execute("DROP FUNCTION IF EXISTS hub_token_state_changed()")
