"""`hub analytics`: fit the churn model and score members now, check a fit on a holdout, and the retention report
(a table, JSON, CSV or a PNG of charts)."""

from __future__ import annotations

import csv
import io
import sys
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer

from hub.cli.output import JsonOption, Output, console
from hub.errors import DomainError
from hub.partners import service as partners
from hub.state import Hub

if TYPE_CHECKING:  # numpy and scipy load in about a second: only the commands that fit or report import them
    from hub.retention import report as reports
    from hub.retention import service

NAME = "analytics"
app = typer.Typer(help="Retention: churn scores, model checks and the retention report.", no_args_is_help=True)
PartnerOption = Annotated[str, typer.Option(help="The partner's id (ptn_...)")]
FORMATS = ("table", "json", "csv", "png")


def _instant(text: str | None, zone: ZoneInfo, field: str) -> datetime | None:
    """ISO 8601; a date or a time without an offset is in the programme's time zone."""
    if text is None:
        return None
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        raise DomainError("INVALID_INPUT", f"{field}: {text!r} is not an ISO 8601 date or time", field) from None
    return found if found.tzinfo is not None else found.replace(tzinfo=zone)


def _day(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise DomainError("INVALID_INPUT", f"{field}: {text!r} is not an ISO 8601 date", field) from None


async def _partner(hub: Hub, public_id: str) -> partners.Partner:
    async with hub.db.read() as conn:
        return await partners.require_partner(conn, public_id)


def _scored(partner: partners.Partner, done: service.Scored) -> dict[str, Any]:
    return {
        "partner": partner.public_id,
        "members": done.members,
        "fit": None
        if done.fit is None
        else {"id": done.fit.public_id, "params": done.fit.params, "log_likelihood": done.fit.log_likelihood},
        "error": done.error,
        "segments": dict(sorted(done.segments.items())),
        "at_risk": done.at_risk,
        "announced": done.announced,
        "seconds": {k: round(v, 3) for k, v in done.seconds.items()},
    }


@app.command("score")
def score(
    partner: Annotated[
        str | None, typer.Option(help="One partner (ptn_...); every partner with purchases if omitted")
    ] = None,
    as_of: Annotated[str | None, typer.Option(help="Score as of this instant (ISO 8601); now if omitted")] = None,
    as_json: JsonOption = False,
) -> None:
    """Fit the churn model and score members now (what `hub worker` does daily): members scored per segment and
    the fit, per partner. A partner whose fit fails keeps its previous scores."""
    out = Output(as_json)

    async def work(hub: Hub) -> list[dict[str, Any]]:
        from hub.retention import service

        zone = hub.settings.points_policy.zone
        now = hub.clock.now()
        moment = _instant(as_of, zone, "asOf") or now
        if moment > now:
            raise DomainError("INVALID_INPUT", "--as-of is in the future", "asOf")
        if partner is not None:
            chosen = [await _partner(hub, partner)]
        else:
            async with hub.db.read() as conn:
                ids = set(await service.partners_due(conn))
                chosen = [p for p in await partners.list_partners(conn) if p.id in ids]
        return [_scored(p, await service.score_partner(hub.db, p.id, moment, zone, now=now)) for p in chosen]

    done = out.run(work)
    if as_json:
        out.json({"partners": done})
        return
    for found in done:
        console.print(f"[bold]{found['partner']}[/bold]: {found['members']} members", highlight=False)
        if found["error"]:
            console.print(f"  not scored: {found['error']}", highlight=False, markup=False)
            continue
        params = ", ".join(f"{k} {v:.4g}" for k, v in found["fit"]["params"].items())
        console.print(f"  fit {found['fit']['id']}: {params}; log-likelihood {found['fit']['log_likelihood']:.1f}")
        for segment, count in found["segments"].items():
            console.print(f"  {segment.replace('_', ' '):16} {count}", highlight=False)
        console.print(f"  at risk {found['at_risk']}, newly announced {found['announced']}", highlight=False)


@app.command("fit")
def fit(
    partner: PartnerOption,
    calibration_end: Annotated[str, typer.Option(help="Fit on purchases before this (ISO 8601)")],
    holdout_end: Annotated[
        str | None, typer.Option(help="Compare the model's expected repeat purchases until this with what happened")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Fit BG/NBD on a partner's purchases up to the calibration end (nothing is written) and, with a holdout end,
    set its predictions against the holdout."""
    out = Output(as_json)

    async def work(hub: Hub) -> service.Calibration:
        from hub.retention import service

        zone = hub.settings.points_policy.zone
        owner = await _partner(hub, partner)
        end = _instant(calibration_end, zone, "calibrationEnd")
        assert end is not None
        if end > hub.clock.now():
            raise DomainError("INVALID_INPUT", "the calibration end is in the future", "calibrationEnd")
        holdout = _instant(holdout_end, zone, "holdoutEnd")
        return await service.calibrate(hub.db, owner.id, end, holdout, zone, now=hub.clock.now())

    found = out.run(work)
    data: dict[str, Any] = {
        "model": "bgnbd",
        "time_unit": "week",
        "members": found.members,
        "repeat_purchases": found.repeat_purchases,
        "params": found.fit.params.as_dict(),
        "log_likelihood": found.fit.log_likelihood,
    }
    if found.holdout_actual is not None:
        data["holdout"] = {"actual": found.holdout_actual, "predicted": found.holdout_predicted}
    out.emit(data, "BG/NBD fit")


@app.command("report")
def report(
    partner: PartnerOption,
    from_: Annotated[str, typer.Option("--from", help="First day (ISO 8601 date)")],
    to: Annotated[str, typer.Option(help="Last day (ISO 8601 date)")],
    format_: Annotated[str, typer.Option("--format", help="table, json, csv or png")] = "table",
    output: Annotated[Path | None, typer.Option(help="Write to this file (required for png)")] = None,
    as_json: JsonOption = False,
) -> None:
    """The retention report over the partner's members who consented to analytics: cohorts, active members,
    repurchase rate, churn, mean P(alive) and segments (groups under 10 members suppressed). `--json` is
    `--format json`; errors are then JSON too."""
    if as_json and format_ == "table":
        format_ = "json"
    out = Output(format_ == "json" or as_json)
    if format_ not in FORMATS:
        out.fail("INVALID_INPUT", f"--format is one of {', '.join(FORMATS)}")
    if format_ == "png":
        if output is None:
            out.fail("INVALID_INPUT", "--format png needs --output FILE")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            out.fail("PLOTS_UNAVAILABLE", "charts need matplotlib: pip install 'hub[plots]'", 2)

    async def work(hub: Hub) -> tuple[partners.Partner, reports.Report, reports.WeeklyCheck | None]:
        from hub.retention import report as reports

        zone = hub.settings.points_policy.zone
        owner = await _partner(hub, partner)
        start, end = _day(from_, "from"), _day(to, "to")
        async with hub.db.read() as conn:
            found = await reports.report(conn, owner.id, start, end, zone, now=hub.clock.now())
            check = await reports.weekly_check(conn, owner.id, zone, now=hub.clock.now()) if format_ == "png" else None
        return owner, found, check

    owner, found, check = out.run(work)
    if format_ == "png":
        from hub.retention import plots

        assert output is not None
        plots.draw(found, check, owner.name, output)
        console.print(f"wrote {output}", highlight=False)
        return
    if format_ == "json":
        _write(output, _json(found))
        return
    if format_ == "csv":
        _write(output, _csv(found))
        return
    _table(found, owner.name)


def _json(found: reports.Report) -> str:
    import json

    data = {
        "from": found.start.isoformat(),
        "to": found.end.isoformat(),
        "cohorts": [
            {"month": c.month.isoformat(), "size": c.size, "retained": c.retained, "suppressed": c.suppressed}
            for c in found.cohorts
        ],
        "active_members": found.active_members,
        "repurchase_rate": found.repurchase_rate,
        "churned_members": found.churned_members,
        "scored_members": found.scored_members,
        "mean_p_alive": found.mean_p_alive,
        "segments": [{"segment": s.segment, "members": s.members, "suppressed": s.suppressed} for s in found.segments],
        "suppressed": found.suppressed,
    }
    return json.dumps(data, ensure_ascii=False) + "\n"


def _csv(found: reports.Report) -> str:
    """One row per cohort: its month, size and the share retained 1, 2, ... months later."""
    width = max((len(c.retained or []) for c in found.cohorts), default=0)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["cohort", "size", "suppressed", *(f"month_{m}" for m in range(1, width + 1))])
    for c in found.cohorts:
        shares = [f"{s:.4f}" for s in c.retained or []]
        writer.writerow([c.month.isoformat(), "" if c.size is None else c.size, c.suppressed, *shares])
    return text.getvalue()


def _write(output: Path | None, text: str) -> None:
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


def _table(found: reports.Report, name: str) -> None:
    from rich.table import Table

    def shown(value: float | int | None, pattern: str = "{}") -> str:
        return "<10" if value is None else pattern.format(value)

    console.print(f"[bold]{name}[/bold]: {found.start} to {found.end}", highlight=False)
    console.print(
        f"  active {shown(found.active_members)}, repurchase rate {shown(found.repurchase_rate, '{:.1%}')}, "
        f"churned {shown(found.churned_members)}, scored {shown(found.scored_members)}, "
        f"mean P(alive) {shown(found.mean_p_alive, '{:.3f}')}",
        highlight=False,
    )
    width = max((len(c.retained or []) for c in found.cohorts), default=0)
    table = Table("cohort", "size", *(f"+{m}" for m in range(1, width + 1)), title="retained, months later")
    for c in found.cohorts:
        table.add_row(c.month.strftime("%Y-%m"), shown(c.size), *(f"{s:.0%}" for s in c.retained or []))
    console.print(table)
    segments = Table("segment", "members", title="segments")
    for s in found.segments:
        segments.add_row(s.segment.replace("_", " "), shown(s.members) if s.members or s.suppressed else "0")
    console.print(segments)
