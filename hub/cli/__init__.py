"""The `hub` command line for the operator: one module per command group. Every command takes `--json` and then
prints one JSON object (an error as `{"error": {"code", "message"}}` with a non-zero exit)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from hub.cli import (
    analytics,
    clients,
    db,
    demo,
    imports,
    keys,
    ledger,
    partners,
    programme,
    schema,
    serve,
    webhooks,
    worker,
)

app = typer.Typer(help="hub: the partner-integration hub for pharmacy membership coalitions.", no_args_is_help=True)


def _version(show: bool) -> None:
    if show:
        try:
            found = version("hub")
        except PackageNotFoundError:  # run from a checkout that was never installed
            found = "unknown"
        typer.echo(f"hub {found}")
        raise typer.Exit()


@app.callback()
def main(
    show_version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """hub: the partner-integration hub for pharmacy membership coalitions."""


for group in (db, partners, clients, ledger, webhooks, demo, imports, programme, schema, keys, analytics):
    app.add_typer(group.app, name=group.NAME)
app.command("worker")(worker.worker)
app.command("serve")(serve.serve)
app.command("settle")(ledger.settle)
