"""`hub demo seed`: the demo coalition (a pharmacy chain, an insurer, a gym, an app, members who shopped)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from hub import demo
from hub.cli.output import JsonOption, Output
from hub.errors import DomainError
from hub.state import Hub

NAME = "demo"
app = typer.Typer(help="The demo coalition.", no_args_is_help=True)


@app.command("seed")
def seed(
    members: Annotated[int, typer.Option(help="How many members to create")] = 300,
    as_json: JsonOption = False,
) -> None:
    """Seed the demo coalition into an empty database and print the demo clients' credentials."""
    out = Output(as_json)
    settings = out.settings()

    async def work(hub: Hub) -> list[demo.DemoClient]:
        async with hub.db.write() as conn:
            if await demo.is_seeded(conn):
                raise DomainError("ALREADY_SEEDED", "the database already has partners; not seeding")
            clients = await demo.seed(
                conn,
                now=hub.clock.now(),
                policy=hub.settings.points_policy,
                programme=hub.settings.programme,
                members_count=members,
            )
        await demo.score(hub.db, hub.clock.now(), hub.settings.points_policy.zone)
        return clients

    clients = out.run(work)
    demo.save_credentials(settings.demo_credentials_file, clients)
    print_clients(clients, out)


def print_clients(clients: list[demo.DemoClient], out: Output) -> None:
    if out.as_json:
        out.json({"clients": [asdict(c) for c in clients]})
        return
    for c in clients:
        out.emit(
            {
                "partner_id": c.partner_id,
                "client_id": c.client_id,
                "client_secret": c.client_secret,
                "scopes": c.scopes,
                **({"redirect_uri": c.redirect_uri} if c.redirect_uri else {}),
            },
            f"{c.partner_name} ({c.kind})",
        )
