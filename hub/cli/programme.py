"""`hub programme`: the programme file (earning rules, tier ladder, activity caps): check one, show what is in
force."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.table import Table

from hub.cli.output import JsonOption, Output, console, err
from hub.programme.config import ProgrammeError, parse

NAME = "programme"
app = typer.Typer(help="The programme file: earning rules, tiers, activity caps.", no_args_is_help=True)


@app.command("check")
def check(file: Annotated[Path, typer.Argument(help="A programme TOML file")], as_json: JsonOption = False) -> None:
    """Validate a programme file; print every problem with its line and key, exit 1 if there is any."""
    out = Output(as_json)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        out.fail("INVALID_INPUT", f"{file}: {getattr(exc, 'strerror', None) or exc}")
    try:
        programme = parse(text, name=file.name, zone=ZoneInfo(out.settings().timezone))
    except ProgrammeError as exc:
        if as_json:
            out.json({"ok": False, "problems": exc.problems})
        for problem in exc.problems:
            if not as_json:
                err.print(problem, highlight=False, markup=False)
        raise typer.Exit(1) from exc
    if as_json:
        out.json({"ok": True, "versions": len(programme.versions)})
    out.say(f"{file}: ok, {len(programme.versions)} version(s)")


@app.command("show")
def show(as_json: JsonOption = False) -> None:
    """Print the rules in force now (HUB_PROGRAMME_FILE, or the built-in defaults)."""
    out = Output(as_json)
    settings = out.settings()
    version = settings.programme.at(datetime.now(UTC))
    window = "lifetime" if version.tiers.window_months is None else f"rolling:{version.tiers.window_months}"
    data = {
        "source": str(settings.programme_file or "built-in defaults"),
        "effective_from": version.effective_from.date().isoformat(),
        "return_window_days": version.return_window_days,
        "earning": asdict(version.earning),
        "tiers": {
            "window": window,
            "grace_days": version.tiers.grace_days,
            "levels": [asdict(level) for level in version.tiers.levels],
        },
        "activities": {kind: asdict(rule) for kind, rule in version.activities.items()},
    }
    if as_json:
        out.json(data)
        return
    console.print(f"rules in force (from {data['source']}, version effective {data['effective_from']})")
    rules = version.earning
    console.print(
        f"earning: {rules.points_per_yuan} point(s) per yuan; birthday month ×{rules.birthday_month_multiplier}; "
        f"prescription lines {'excluded' if rules.exclude_prescription else 'earn'}; insurer-paid lines "
        f"{'excluded' if rules.exclude_insurer_paid else 'earn'}; pending {version.return_window_days} days",
        highlight=False,
    )
    for category, multiplier in rules.category_multipliers.items():
        console.print(f"  category {category}: ×{multiplier}", highlight=False)
    table = Table("level", "name", "threshold (yuan)", "discount", "points ×", "benefits")
    for level in version.tiers.levels:
        perks = [n for n, on in (("birthday gift", level.birthday_gift), ("free health check",
                 level.free_health_check), ("priority purchase", level.priority_purchase)) if on]  # fmt: skip
        table.add_row(
            str(level.level), level.name, str(level.threshold), str(level.discount_rate),
            str(level.points_multiplier), ", ".join(perks),
        )  # fmt: skip
    console.print(table)
    console.print(f"tier window: {window}, grace {version.tiers.grace_days} days", highlight=False)
    for kind, rule in version.activities.items():
        console.print(
            f"activity {kind}: {rule.points} points, at most {rule.per_day} a day and {rule.per_week} a week",
            highlight=False,
        )
