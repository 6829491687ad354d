"""`hub db`: the database schema, built only by the migrations."""

from __future__ import annotations

import typer

from hub import migrate
from hub.cli.output import JsonOption, Output

NAME = "db"
app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(revision: str = "head", as_json: JsonOption = False) -> None:
    """Apply migrations (the only way the schema is built)."""
    out = Output(as_json)
    url = out.settings().database_url
    try:
        migrate.upgrade(url, revision)
        current = migrate.current(url)
    except Exception as exc:  # alembic's own errors (no such revision, an unreachable database)
        out.fail("MIGRATION_FAILED", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    out.emit({"revision": current}, f"database at revision {current}")


@app.command("current")
def current(as_json: JsonOption = False) -> None:
    """Print the schema revision of the database (null: empty)."""
    out = Output(as_json)
    try:
        revision = migrate.current(out.settings().database_url)
    except Exception as exc:
        out.fail("DATABASE_UNAVAILABLE", str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 3)
    if as_json:
        out.json({"revision": revision})
    else:
        out.say(revision or "(empty)")
