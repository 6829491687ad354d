"""Run alembic from code, so `hub db upgrade`, `hub serve --demo` and the tests build schemas the same way."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

SCRIPTS = Path(__file__).resolve().parent / "migrations"  # inside the package: an installed wheel carries them


def import_models() -> None:
    """Import every domain's tables so that `hub.db.metadata` is complete."""
    import hub.activities.models
    import hub.auth.models
    import hub.consent.models
    import hub.events.models
    import hub.members.models
    import hub.partners.models
    import hub.points.models
    import hub.purchases.models
    import hub.retention.models
    import hub.rewards.models
    import hub.tiers.models
    import hub.webhooks.models  # noqa: F401


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), revision)


def current(database_url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    from hub.db import create_sync_engine

    engine = create_sync_engine(database_url, pooled=False)
    with engine.connect() as conn:
        rev = MigrationContext.configure(conn).get_current_revision()
    engine.dispose()
    return rev
