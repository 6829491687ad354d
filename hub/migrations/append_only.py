"""DDL that makes an audit table append-only in the database itself, not only in application code.

Kept beside the migrations (not in `hub/`) so that applied migrations never change when the app does.
"""

from __future__ import annotations

from alembic import op

_TRIGGERS = {
    "sqlite": [
        "CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
        "BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
        "CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
        "BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION hub_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$",
        "CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION hub_append_only()",
    ],
}


def append_only(table: str) -> None:
    for statement in _TRIGGERS[op.get_bind().dialect.name]:
        op.execute(statement.format(table=table))
