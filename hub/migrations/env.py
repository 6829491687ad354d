"""Alembic environment: migrations are the only way the schema is built, in the app and in tests."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from hub.config import Settings
from hub.db import create_sync_engine, metadata
from hub.migrate import import_models

import_models()
config = context.config


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url
    engine = create_sync_engine(url, pooled=False)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported; run `hub db upgrade`")
run_migrations()
