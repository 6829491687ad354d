"""How every `hub` command talks: to people (rich text, tables) or, with `--json`, to scripts (one JSON object on
stdout; an error as `{"error": {"code", "message"}}` and a non-zero exit). And how a command reaches the hub:
settings from the environment, one `Hub` for the command, domain errors as clean exits."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import OperationalError, ProgrammingError

from hub.config import Settings
from hub.errors import DomainError
from hub.state import Hub

T = TypeVar("T")

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts (errors too).")]

console = Console()
err = Console(stderr=True)


@dataclass(frozen=True)
class Output:
    """One command's output, for people or (`as_json`) for scripts."""

    as_json: bool = False

    def fail(self, code: str, message: str, exit_code: int = 1) -> NoReturn:
        if self.as_json:
            sys.stdout.write(json.dumps({"error": {"code": code, "message": message}}, ensure_ascii=False) + "\n")
        else:
            err.print(f"[red]error[/red] {code}: ", end="", highlight=False)
            err.print(message, highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(exit_code)

    def settings(self) -> Settings:
        try:
            return Settings.from_env()
        except ValueError as exc:
            self.fail("CONFIGURATION_ERROR", str(exc), 2)

    def run(self, work: Callable[[Hub], Awaitable[T]]) -> T:
        """Run one command against the database; a domain error or an unreachable database is a clean exit."""
        hub = Hub.create(self.settings())

        async def main() -> T:
            try:
                return await work(hub)
            finally:
                await hub.close()

        try:
            return asyncio.run(main())
        except DomainError as exc:
            self.fail(exc.code, exc.message)
        except (OperationalError, ProgrammingError) as exc:
            if _missing_table(exc):
                self.fail("DATABASE_NOT_MIGRATED", "the database has no hub schema yet: run `hub db upgrade`", 3)
            self.fail("DATABASE_UNAVAILABLE", f"cannot reach the database: {_first_line(exc)}", 3)
        except OSError as exc:
            self.fail("DATABASE_UNAVAILABLE", f"cannot reach the database: {_first_line(exc)}", 3)

    def emit(self, data: dict[str, Any], title: str) -> None:
        """One record: a JSON object, or its fields as plain lines (never a table: secrets must not be truncated or
        wrapped, whatever the terminal width)."""
        if self.as_json:
            self.json(data)
            return
        console.print(f"[bold]{title}[/bold]")
        width = max((len(k) for k in data), default=0)
        for key, value in data.items():
            console.print(f"  {key.ljust(width)}  {_plain(value)}", soft_wrap=True, highlight=False, markup=False)

    def rows(self, name: str, rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str) -> None:
        """A list: `{name: rows}` as JSON, or a table of `columns`."""
        if self.as_json:
            self.json({name: list(rows)})
            return
        table = Table(*columns, title=title)
        for row in rows:
            table.add_row(*(_plain(row[c]) for c in columns))
        console.print(table)

    def json(self, data: Any) -> None:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, default=_jsonable) + "\n")

    def say(self, text: str) -> None:
        """A line for people; nothing in JSON mode (the command prints its JSON object itself)."""
        if not self.as_json:
            console.print(text, highlight=False, markup=False)


def _missing_table(exc: Exception) -> bool:
    text = str(exc)
    return "no such table" in text or "UndefinedTableError" in text or "does not exist" in text


def _first_line(exc: Exception) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0]


def _plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
