"""`hub ledger verify` and `hub settle`: the ledger's invariants and a month's settlement between partners."""

from __future__ import annotations

import csv
import sys
from typing import Annotated

import typer

from hub.cli.output import JsonOption, Output
from hub.points import settlement
from hub.state import Hub

NAME = "ledger"
app = typer.Typer(help="The points ledger.", no_args_is_help=True)


@app.command("verify")
def verify(as_json: JsonOption = False) -> None:
    """Check every ledger invariant; print each violation; exit 1 if there is any."""
    from hub.points.verify import verify as check

    out = Output(as_json)

    async def work(hub: Hub) -> list[str]:
        async with hub.db.read() as conn:
            return await check(conn)

    problems = out.run(work)
    if as_json:
        out.json({"ok": not problems, "violations": problems})
    for problem in problems:
        out.say(f"✗ {problem}")
    if not problems:
        out.say("ledger verified: every invariant holds")
    if problems:
        raise typer.Exit(1)


def settle(
    period: Annotated[str, typer.Option(help="The month, YYYY-MM")],
    format: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
    as_json: JsonOption = False,
) -> None:
    """Print the settlement statement of a month: who owes whom, per issuing and redeeming partner, and for reward
    claims per issuer or sponsor and redeemer."""
    out = Output(as_json or format == "json")
    if format not in ("table", "csv", "json"):
        out.fail("INVALID_INPUT", "--format must be table, csv or json", 2)

    async def work(hub: Hub) -> list[settlement.Line]:
        async with hub.db.read() as conn:
            return await settlement.lines(conn, period, hub.settings.points_policy.zone)

    rows = [
        {
            "issuer_id": x.issuer_id,
            "issuer": x.issuer_name,
            "redeemer_id": x.redeemer_id,
            "redeemer": x.redeemer_name,
            "basis": x.basis,
            "points": x.points,
            "value_cny": str(x.value),
        }
        for x in out.run(work)
    ]
    if out.as_json:
        out.json({"period": period, "currency": "CNY", "lines": rows})
    elif format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["issuer_id"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        out.rows("lines", rows, ["issuer", "redeemer", "basis", "points", "value_cny"], f"settlement {period}")
