"""`hub schema print`: the SDL partners build against (also served at /schema.graphql)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from hub.cli.output import JsonOption, Output

NAME = "schema"
app = typer.Typer(help="The GraphQL schema.", no_args_is_help=True)


@app.command("print")
def print_(
    federation: Annotated[
        bool, typer.Option("--federation", help="The subgraph SDL for a federation router (@key, @link applied)")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Print the SDL partners' tools load (also served at /schema.graphql), or the subgraph's federation SDL."""
    from hub.schema import build_schema, client_sdl

    out = Output(as_json)
    schema = build_schema(out.settings())
    sdl = schema.as_str() if federation else client_sdl(schema)
    if as_json:
        out.json({"sdl": sdl})
    else:
        sys.stdout.write(sdl + "\n")
