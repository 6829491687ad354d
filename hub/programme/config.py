"""The programme file: dated versions of the earning rules, the tier ladder and the health-activity caps.

Loaded once per process and validated whole: an error names the file, the line and the key
(`programme.toml:31: version[1].tiers.level[2].threshold: must be above level 1's (5000)`), so an operator fixes
a file before it is ever used. Values come from the standard `tomllib`; the line of each key is found by a
small scan of the same text, because `tomllib` keeps no positions.
"""

from __future__ import annotations

import re
import tomllib
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

DEFAULT_FILE = Path(__file__).with_name("default.toml")
ACTIVITY_KINDS = ("GYM_VISIT", "WORKOUT", "HEALTH_CHECK", "VACCINATION")


class ProgrammeError(ValueError):
    """Every problem found in a programme file, one per line of the message."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Earning:
    points_per_yuan: Decimal
    birthday_month_multiplier: Decimal
    exclude_prescription: bool
    exclude_insurer_paid: bool
    category_multipliers: dict[str, Decimal]


@dataclass(frozen=True)
class Level:
    level: int
    name: str
    threshold: Decimal  # yuan of growth value in the window
    discount_rate: Decimal
    points_multiplier: Decimal
    birthday_gift: bool = False
    free_health_check: bool = False
    priority_purchase: bool = False


@dataclass(frozen=True)
class Tiers:
    window_months: int | None  # None: lifetime
    grace_days: int
    levels: tuple[Level, ...]  # ascending thresholds; levels[0].threshold == 0

    def qualifying(self, growth: Decimal) -> Level:
        """The highest level whose threshold the growth value reaches."""
        return [lv for lv in self.levels if growth >= lv.threshold][-1]

    def by_number(self, number: int) -> Level:
        for lv in self.levels:
            if lv.level == number:
                return lv
        return self.levels[0]

    def above(self, level: Level) -> Level | None:
        higher = [lv for lv in self.levels if lv.threshold > level.threshold]
        return higher[0] if higher else None


@dataclass(frozen=True)
class ActivityRule:
    points: int
    per_day: int
    per_week: int


@dataclass(frozen=True)
class Offset:
    """Points as cash at a till: `points` points are worth `yuan`; at most `max_share` of a basket's discountable
    amount (never prescription, insurer-paid or not-discountable lines); used in whole steps of `step_points`,
    each step's value rounded down to the fen."""

    points: int = 100
    yuan: Decimal = Decimal(1)
    max_share: Decimal = Decimal("0.5")
    step_points: int = 1

    def value(self, points: int) -> int:
        """Fen that `points` are worth, rounded down."""
        return int(points * self.yuan * 100 // self.points)

    def points_for(self, fen: int) -> int:
        """The most points (in whole steps) worth at most `fen`."""
        points = int(fen * self.points // (self.yuan * 100))
        return points - points % self.step_points


@dataclass(frozen=True)
class Version:
    effective_from: datetime  # midnight in the programme's time zone, as UTC-aware datetime
    return_window_days: int
    earning: Earning
    tiers: Tiers
    activities: dict[str, ActivityRule]
    offset: Offset = Offset()


@dataclass(frozen=True)
class Programme:
    source: str
    versions: tuple[Version, ...]  # ascending effective_from, no two equal
    _starts: tuple[datetime, ...] = field(default=(), repr=False)

    def at(self, moment: datetime) -> Version:
        """The version in force at `moment` (the first version also covers anything before it)."""
        index = bisect_right(self._starts, moment) - 1
        return self.versions[max(index, 0)]


# -- locating keys --------------------------------------------------------------------------------------------------
_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-]+)\s*\]\]?")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")


def _line_index(text: str) -> dict[str, int]:
    """Dotted key paths (with [i] for arrays of tables) → 1-based line numbers."""
    lines: dict[str, int] = {}
    counters: dict[str, int] = {}
    latest: dict[str, int] = {}  # array path (unindexed, resolved parent) -> its latest index
    current = ""
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            parts = header.group(2).split(".")
            resolved: list[str] = []
            for i, part in enumerate(parts):
                base = ".".join([*resolved, part])
                last = i == len(parts) - 1
                if last and header.group(1) == "[[":
                    counters[base] = counters.get(base, -1) + 1
                    latest[base] = counters[base]
                    resolved.append(f"{part}[{counters[base]}]")
                elif base in latest:
                    resolved.append(f"{part}[{latest[base]}]")
                else:
                    resolved.append(part)
            current = ".".join(resolved)
            lines.setdefault(current, number)
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault(f"{current}.{key.group(1)}" if current else key.group(1), number)
    return lines


class _Checker:
    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.lines = _line_index(text)
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        line = self.lines.get(path)
        while line is None and "." in path:
            path_up = path.rsplit(".", 1)[0]
            line = self.lines.get(path_up)
            if line is None:
                path = path_up
        self.problems.append(f"{self.name}:{line or 1}: {path}: {message}")

    def known(self, path: str, table: dict[str, Any], keys: set[str]) -> None:
        for key in table.keys() - keys:
            self.fail(f"{path}.{key}", f"unknown key (expected one of: {', '.join(sorted(keys))})")

    def decimal(self, path: str, value: Any, *, minimum: Decimal = Decimal(0), above: bool = False) -> Decimal:
        try:
            number = Decimal(str(value)) if isinstance(value, (int, float, str)) else None
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite() or isinstance(value, bool):
            self.fail(path, f"must be a decimal number, got {value!r}")
            return minimum
        if number < minimum or (above and number == minimum):
            self.fail(path, f"must be {'above' if above else 'at least'} {minimum}, got {number}")
        return number

    def integer(self, path: str, value: Any, *, minimum: int = 0) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(path, f"must be a whole number, got {value!r}")
            return minimum
        if value < minimum:
            self.fail(path, f"must be at least {minimum}, got {value}")
        return value

    def boolean(self, path: str, value: Any) -> bool:
        if not isinstance(value, bool):
            self.fail(path, f"must be true or false, got {value!r}")
            return False
        return value

    def table(self, path: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(path, "must be a table")
            return {}
        return value


def _earning(c: _Checker, path: str, raw: dict[str, Any]) -> Earning:
    c.known(
        path,
        raw,
        {
            "points_per_yuan",
            "birthday_month_multiplier",
            "exclude_prescription",
            "exclude_insurer_paid",
            "category_multipliers",
        },
    )
    categories = c.table(f"{path}.category_multipliers", raw.get("category_multipliers", {}))
    return Earning(
        points_per_yuan=c.decimal(f"{path}.points_per_yuan", raw.get("points_per_yuan", "1")),
        birthday_month_multiplier=c.decimal(
            f"{path}.birthday_month_multiplier", raw.get("birthday_month_multiplier", "1"), minimum=Decimal(1)
        ),
        exclude_prescription=c.boolean(f"{path}.exclude_prescription", raw.get("exclude_prescription", True)),
        exclude_insurer_paid=c.boolean(f"{path}.exclude_insurer_paid", raw.get("exclude_insurer_paid", True)),
        category_multipliers={str(k): c.decimal(f"{path}.category_multipliers.{k}", v) for k, v in categories.items()},
    )


_LEVEL_KEYS = {
    "level",
    "name",
    "threshold",
    "discount_rate",
    "points_multiplier",
    "birthday_gift",
    "free_health_check",
    "priority_purchase",
}


def _tiers(c: _Checker, path: str, raw: dict[str, Any]) -> Tiers:
    c.known(path, raw, {"window", "grace_days", "level"})
    window = raw.get("window", "lifetime")
    months: int | None = None
    found = re.fullmatch(r"rolling:(\d+)", str(window))
    if found and 1 <= int(found.group(1)) <= 120:
        months = int(found.group(1))
    elif window != "lifetime":
        c.fail(f"{path}.window", f'must be "lifetime" or "rolling:N" (1-120 months), got {window!r}')
    levels: list[Level] = []
    raw_levels = raw.get("level", [])
    if not isinstance(raw_levels, list) or not raw_levels:
        c.fail(f"{path}.level", "needs at least one [[version.tiers.level]]")
        raw_levels = []
    for i, item in enumerate(raw_levels):
        at = f"{path}.level[{i}]"
        item = c.table(at, item)
        c.known(at, item, _LEVEL_KEYS)
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            c.fail(f"{at}.name", "must be a non-empty string")
            name = f"level {i}"
        level = Level(
            level=c.integer(f"{at}.level", item.get("level", i)),
            name=name,
            threshold=c.decimal(f"{at}.threshold", item.get("threshold", "0")),
            discount_rate=c.decimal(f"{at}.discount_rate", item.get("discount_rate", "1"), minimum=Decimal(0)),
            points_multiplier=c.decimal(f"{at}.points_multiplier", item.get("points_multiplier", "1")),
            birthday_gift=c.boolean(f"{at}.birthday_gift", item.get("birthday_gift", False)),
            free_health_check=c.boolean(f"{at}.free_health_check", item.get("free_health_check", False)),
            priority_purchase=c.boolean(f"{at}.priority_purchase", item.get("priority_purchase", False)),
        )
        if level.discount_rate > 1:
            c.fail(f"{at}.discount_rate", f"must be at most 1 (a price multiplier), got {level.discount_rate}")
        if levels and level.threshold <= levels[-1].threshold:
            c.fail(f"{at}.threshold", f"must be above level {levels[-1].level}'s ({levels[-1].threshold})")
        if levels and level.level <= levels[-1].level:
            c.fail(f"{at}.level", f"levels must increase; {level.level} follows {levels[-1].level}")
        levels.append(level)
    if levels and levels[0].threshold != 0:
        c.fail(f"{path}.level[0].threshold", "the first level is where every member starts: its threshold is 0")
    return Tiers(
        window_months=months,
        grace_days=c.integer(f"{path}.grace_days", raw.get("grace_days", 30)),
        levels=tuple(levels) or (Level(0, "member", Decimal(0), Decimal(1), Decimal(1)),),
    )


def _activities(c: _Checker, path: str, raw: dict[str, Any]) -> dict[str, ActivityRule]:
    rules: dict[str, ActivityRule] = {}
    for kind, item in raw.items():
        at = f"{path}.{kind}"
        if kind not in ACTIVITY_KINDS:
            c.fail(at, f"unknown activity kind (expected one of: {', '.join(ACTIVITY_KINDS)})")
            continue
        item = c.table(at, item)
        c.known(at, item, {"points", "per_day", "per_week"})
        rule = ActivityRule(
            points=c.integer(f"{at}.points", item.get("points"), minimum=1),
            per_day=c.integer(f"{at}.per_day", item.get("per_day"), minimum=1),
            per_week=c.integer(f"{at}.per_week", item.get("per_week"), minimum=1),
        )
        if rule.per_week < rule.per_day:
            c.fail(f"{at}.per_week", f"must be at least per_day ({rule.per_day})")
        rules[kind] = rule
    return rules


def _offset(c: _Checker, path: str, raw: dict[str, Any]) -> Offset:
    c.known(path, raw, {"points", "yuan", "max_share", "step_points"})
    share = c.decimal(f"{path}.max_share", raw.get("max_share", "0.5"))
    if share > 1:
        c.fail(f"{path}.max_share", f"must be at most 1 (a share of the discountable amount), got {share}")
    return Offset(
        points=c.integer(f"{path}.points", raw.get("points", 100), minimum=1),
        yuan=c.decimal(f"{path}.yuan", raw.get("yuan", "1"), above=True),
        max_share=share,
        step_points=c.integer(f"{path}.step_points", raw.get("step_points", 1), minimum=1),
    )


def parse(text: str, *, name: str = "programme.toml", zone: ZoneInfo) -> Programme:
    """Validate a programme document; raise ProgrammeError listing every problem with its line."""
    checker = _Checker(name, text)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProgrammeError([f"{name}: not valid TOML: {exc}"]) from None
    for key in document.keys() - {"version"}:
        checker.fail(key, "unknown key (expected [[version]] tables)")
    raw_versions = document.get("version", [])
    if not isinstance(raw_versions, list) or not raw_versions:
        raise ProgrammeError([f"{name}:1: version: needs at least one [[version]]"])
    versions: list[Version] = []
    for i, raw in enumerate(raw_versions):
        path = f"version[{i}]"
        raw = checker.table(path, raw)
        checker.known(path, raw, {"effective_from", "return_window_days", "earning", "tiers", "activities", "offset"})
        start = raw.get("effective_from")
        if isinstance(start, str):
            try:
                start = date.fromisoformat(start)
            except ValueError:
                start = None
        if not isinstance(start, date) or isinstance(start, datetime):
            checker.fail(f"{path}.effective_from", f"must be a date like 2026-11-01, got {raw.get('effective_from')!r}")
            start = date(1970, 1, 1)
        versions.append(
            Version(
                effective_from=datetime.combine(start, time(), zone),
                return_window_days=checker.integer(f"{path}.return_window_days", raw.get("return_window_days", 0)),
                earning=_earning(checker, f"{path}.earning", checker.table(f"{path}.earning", raw.get("earning", {}))),
                tiers=_tiers(checker, f"{path}.tiers", checker.table(f"{path}.tiers", raw.get("tiers", {}))),
                activities=_activities(
                    checker, f"{path}.activities", checker.table(f"{path}.activities", raw.get("activities", {}))
                ),
                offset=_offset(checker, f"{path}.offset", checker.table(f"{path}.offset", raw.get("offset", {}))),
            )
        )
    ordered = sorted(enumerate(versions), key=lambda item: item[1].effective_from)
    for (_, earlier), (j, later) in pairwise(ordered):
        if later.effective_from == earlier.effective_from:
            checker.fail(
                f"version[{j}].effective_from",
                f"overlaps another version effective from the same date ({later.effective_from.date()})",
            )
    if checker.problems:
        raise ProgrammeError(checker.problems)
    chosen = tuple(v for _, v in ordered)
    return Programme(source=name, versions=chosen, _starts=tuple(v.effective_from for v in chosen))


def load(path: Path | None, zone: ZoneInfo) -> Programme:
    source = path or DEFAULT_FILE
    return parse(source.read_text(encoding="utf-8"), name=source.name, zone=zone)
