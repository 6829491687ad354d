"""`hub schema print`: the SDL partners build against (also served at /schema.graphql)."""

from __future__ import annotations

import sys

import typer

from hub.cli.output import JsonOption, Output

NAME = "schema"
app = typer.Typer(help="The GraphQL schema.", no_args_is_help=True)


@app.command("print")
def print_(as_json: JsonOption = False) -> None:
    """Print the SDL partners build against (also served at /schema.graphql)."""
    from hub.schema import build_schema

    out = Output(as_json)
    sdl = build_schema(out.settings()).as_str()
    if as_json:
        out.json({"sdl": sdl})
    else:
        sys.stdout.write(sdl + "\n")
