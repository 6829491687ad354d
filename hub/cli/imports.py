"""`hub import`: a chain's existing members and purchase history, in resumable batches."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hub import imports
from hub.cli.output import JsonOption, Output, err
from hub.state import Hub

NAME = "import"
EncodingOption = Annotated[
    str | None,
    typer.Option(help="utf-8, gb18030 or gbk (default: UTF-8 if the file is UTF-8, with or without BOM, else GB18030)"),
]
app = typer.Typer(help="Bulk import a chain's existing members and purchase history.", no_args_is_help=True)


def _import(
    kind: str,
    file: Path,
    partner: str,
    rejects: Path | None,
    batch: int | None,
    encoding: str | None,
    as_json: bool,
) -> None:
    out = Output(as_json)
    if not file.is_file():
        out.fail("INVALID_INPUT", f"no such file {file}", 2)
    reject_path = rejects or file.with_suffix(".rejects.csv")
    started = time.monotonic()
    with Progress(
        TextColumn(f"importing {kind}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=as_json,
    ) as bar:
        task = bar.add_task(kind, total=imports.count_lines(file))

        async def work(hub: Hub) -> imports.Report:
            return await imports.run(
                hub,
                kind=kind,
                partner_public_id=partner,
                path=file,
                rejects=reject_path,
                batch=batch,
                encoding=encoding,
                progress=lambda lines: bar.advance(task, lines),
            )

        report = out.run(work)
    seconds = time.monotonic() - started
    data = {
        "kind": kind,
        "lines": report.total_lines,
        "accepted": report.accepted,
        "rejected": report.rejected,
        "provisional": report.provisional,
        "encoding": report.encoding,
        "resumed_after_line": report.resumed_after,
        "rejects_file": str(reject_path),
        "seconds": round(seconds, 2),
    }
    out.emit(data, f"import of {kind} finished" + (" (resumed)" if report.resumed_after else ""))
    if report.rejected and not as_json:
        err.print(f"{report.rejected} rejected: see {reject_path} (line, code, reason, then the row)")
    if report.provisional and not as_json:
        err.print(
            f"{report.provisional} under a phone another partner's member has: provisional until the member "
            "confirms the link in the portal"
        )


@app.command("members")
def import_members(
    file: Annotated[Path, typer.Argument(help="CSV: external_id, phone, name, birthday, permissions, ...")],
    partner: Annotated[str, typer.Option(help="The chain's partner id (ptn_...)")],
    rejects: Annotated[Path | None, typer.Option(help="Where rejected rows go (default FILE.rejects.csv)")] = None,
    batch: Annotated[int | None, typer.Option(help="Rows per transaction (default 5000)")] = None,
    encoding: EncodingOption = None,
    as_json: JsonOption = False,
) -> None:
    """Enrol a chain's existing members with their recorded consent. Resumable: run it again after a stop."""
    _import("members", file, partner, rejects, batch, encoding, as_json)


@app.command("purchases")
def import_purchases(
    file: Annotated[Path, typer.Argument(help="CSV, one row per line: reference, external_id, occurred_at, ...")],
    partner: Annotated[str, typer.Option(help="The chain's partner id (ptn_...)")],
    rejects: Annotated[Path | None, typer.Option(help="Where rejected rows go (default FILE.rejects.csv)")] = None,
    batch: Annotated[int | None, typer.Option(help="Purchases per transaction (default 5000)")] = None,
    encoding: EncodingOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record a chain's purchase history as if each purchase came through the API, in file order. Resumable."""
    _import("purchases", file, partner, rejects, batch, encoding, as_json)
