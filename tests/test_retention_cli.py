"""`hub analytics` as an operator runs it, on a fresh database (SQLite or PostgreSQL): a history simulated from
known BG/NBD parameters goes in through `hub import`, `analytics fit` finds the parameters again and predicts the
holdout, `analytics score` scores, `analytics report` writes a table, JSON, CSV and a PNG; bad input is a typed
error that writes nothing."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from hub import imports
from tests.conftest import new_phone
from tests.test_cli import hub_cli
from tests.test_import import write_csv
from tests.test_retention_model import OTHER, simulate

ZONE = ZoneInfo("Asia/Shanghai")
MEMBERS = 4000
HOLDOUT_DAYS = 91


def history(today: date, seed: int) -> tuple[list[dict[str, str]], list[dict[str, str]], date]:
    """Members first buying 4 to 52 weeks before the calibration end (13 weeks and a day before today), then
    buying and leaving as BG/NBD with `OTHER`'s parameters says; a purchase a day at most (noon, local)."""
    calibration_end = today - timedelta(days=HOLDOUT_DAYS + 1)
    rng = np.random.default_rng(seed)
    first = rng.integers(28, 365, MEMBERS)  # days before the calibration end
    timelines = simulate(OTHER, MEMBERS, seed, (first + HOLDOUT_DAYS) / 7)
    members, purchases = [], []
    expires = (datetime.now(UTC) + timedelta(days=365)).isoformat()
    for n, (weeks, before) in enumerate(zip(timelines, first, strict=True)):
        external_id = f"S{n:05d}"
        members.append({"external_id": external_id, "phone": new_phone(), "name": "", "birthday": "",
                        "permissions": "member:read purchases:write analytics:read", "policy_version": "2026-01",
                        "consent_expires_at": expires})  # fmt: skip
        start = calibration_end - timedelta(days=int(before))
        days = sorted({0, *(int(t * 7) for t in weeks)})
        for k, day in enumerate(days):
            at = datetime.combine(start + timedelta(days=day), time(12), ZONE)
            purchases.append({"reference": f"{external_id}-{k}", "external_id": external_id,
                              "occurred_at": at.isoformat(), "store_id": "S1", "sku": "SKU", "category": "otc",
                              "amount": f"{rng.gamma(4, 20):.2f}", "quantity": "1", "prescription": "false",
                              "insurer_paid": "false"})  # fmt: skip
    return members, purchases, calibration_end


def run(url: str, tmp: Path, *args: str) -> tuple[int, dict]:
    done = hub_cli(url, tmp, *args, "--json")
    return done.returncode, json.loads(done.stdout.splitlines()[-1]) if done.stdout else {"stderr": done.stderr}


def test_fit_score_and_report_from_the_command_line(fresh_database_url: str, tmp_path: Path) -> None:
    url = fresh_database_url
    assert hub_cli(url, tmp_path, "db", "upgrade").returncode == 0
    _, created = run(url, tmp_path, "partner", "create", "--name", "Simulated Chain", "--kind", "pharmacy_chain")
    partner = created["id"]
    today = datetime.now(ZONE).date()
    members, purchases, calibration_end = history(today, seed=11)
    for kind, rows, columns in (("members", members, imports.MEMBER_COLUMNS),
                                ("purchases", purchases, imports.PURCHASE_COLUMNS)):  # fmt: skip
        path = tmp_path / f"{kind}.csv"
        write_csv(path, columns, rows)
        code, report = run(url, tmp_path, "import", kind, str(path), "--partner", partner)
        assert code == 0 and report["rejected"] == 0, report

    holdout_end = calibration_end + timedelta(days=HOLDOUT_DAYS)
    code, fit = run(url, tmp_path, "analytics", "fit", "--partner", partner, "--calibration-end",
                    calibration_end.isoformat(), "--holdout-end", holdout_end.isoformat())  # fmt: skip
    assert code == 0, fit
    assert set(fit) == {"model", "time_unit", "members", "repeat_purchases", "params", "log_likelihood", "holdout"}
    assert fit["model"] == "bgnbd" and fit["time_unit"] == "week" and fit["members"] == MEMBERS
    assert set(fit["params"]) == {"r", "alpha", "a", "b"} and fit["log_likelihood"] < 0
    # Tolerance: the purchase rate's parameters within 15 %; the dropout's a and b are poorly identified one by
    # one at 4,000 members (they move together), their mean dropout a / (a + b) within 10 %.
    for name in ("r", "alpha"):
        assert fit["params"][name] == pytest.approx(OTHER.as_dict()[name], rel=0.15), (name, fit["params"])
    dropout = fit["params"]["a"] / (fit["params"]["a"] + fit["params"]["b"])
    assert dropout == pytest.approx(OTHER.a / (OTHER.a + OTHER.b), rel=0.10)
    holdout = fit["holdout"]
    assert holdout["actual"] > 0 and holdout["predicted"] == pytest.approx(holdout["actual"], rel=0.15)

    code, scored = run(url, tmp_path, "analytics", "score", "--partner", partner)
    assert code == 0, scored
    [mine] = scored["partners"]
    assert mine["fit"] is not None and mine["members"] == MEMBERS and sum(mine["segments"].values()) == MEMBERS

    start, end = (today - timedelta(days=400)).isoformat(), today.isoformat()
    code, data = run(url, tmp_path, "analytics", "report", "--partner", partner, "--from", start, "--to", end,
                     "--format", "json")  # fmt: skip
    assert code == 0 and data["active_members"] > 0 and len(data["cohorts"]) >= 13, data
    assert data["scored_members"] == MEMBERS and sum(s["members"] or 0 for s in data["segments"]) == MEMBERS
    table = hub_cli(url, tmp_path, "analytics", "report", "--partner", partner, "--from", start, "--to", end)
    assert table.returncode == 0 and "retained, months later" in table.stdout
    csv_file, png = tmp_path / "report.csv", tmp_path / "report.png"
    for fmt, out in (("csv", csv_file), ("png", png)):
        made = hub_cli(url, tmp_path, "analytics", "report", "--partner", partner, "--from", start, "--to", end,
                       "--format", fmt, "--output", str(out))  # fmt: skip
        assert made.returncode == 0, made.stderr
    assert csv_file.read_text().startswith("cohort,size,suppressed,month_1")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000

    # Bad input: a typed error, exit 1, nothing written.
    cases = [
        (("fit", "--partner", partner, "--calibration-end", calibration_end.isoformat(), "--holdout-end",
          (calibration_end - timedelta(days=1)).isoformat()), "INVALID_INPUT"),
        (("fit", "--partner", partner, "--calibration-end", "2019-01-01"), "NOT_ENOUGH_DATA"),
        (("fit", "--partner", "ptn_nobody", "--calibration-end", "2026-01-01"), "PARTNER_NOT_FOUND"),
        (("fit", "--partner", partner, "--calibration-end", "yesterday"), "INVALID_INPUT"),
        (("report", "--partner", partner, "--from", "2019-01-01", "--to", end, "--format", "json"), "INVALID_INPUT"),
        (("report", "--partner", partner, "--from", start, "--to", end, "--format", "gif"), "INVALID_INPUT"),
        (("score", "--partner", partner, "--as-of", "2999-01-01"), "INVALID_INPUT"),
    ]  # fmt: skip
    for args, expected in cases:
        code, answer = run(url, tmp_path, "analytics", *args)
        assert code == 1 and answer["error"]["code"] == expected, (args, answer)

    # Too few members to fit: said, and nothing fitted.
    _, small = run(url, tmp_path, "partner", "create", "--name", "Corner Shop", "--kind", "pharmacy_chain")
    path = tmp_path / "few.csv"
    write_csv(path, imports.MEMBER_COLUMNS, members[:3])
    assert run(url, tmp_path, "import", "members", str(path), "--partner", small["id"])[0] == 0
    few = tmp_path / "few-purchases.csv"
    write_csv(
        few,
        imports.PURCHASE_COLUMNS,
        [dict(p, reference="F" + p["reference"]) for p in purchases if p["external_id"] in {"S00000", "S00001"}],
    )
    assert run(url, tmp_path, "import", "purchases", str(few), "--partner", small["id"])[0] == 0
    code, answer = run(url, tmp_path, "analytics", "fit", "--partner", small["id"], "--calibration-end", end)
    assert code == 1 and answer["error"]["code"] == "NOT_ENOUGH_DATA" and "too few" in answer["error"]["message"]
    code, scored = run(url, tmp_path, "analytics", "score", "--partner", small["id"])
    assert code == 0 and scored["partners"][0]["fit"] is None and "too few" in scored["partners"][0]["error"]
