"""The operator's command line, run as a real process: what it prints with --json, and its exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from hub import migrate
from tests.conftest import ROOT


def hub_cli(database_url: str, keys: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HUB_DATABASE_URL": database_url,
        "HUB_KEYS_DIR": str(keys),
        "HUB_DEMO_CREDENTIALS_FILE": str(keys / "demo.json"),
    }
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "hub.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


async def test_partner_and_client_creation_as_json(
    database_url: str, settings: Any, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    created = hub_cli(
        database_url, settings.keys_dir, "partner", "create", "--name", "CLI Gym", "--kind", "gym", "--json"
    )
    assert created.returncode == 0, created.stderr
    partner = json.loads(created.stdout)
    assert partner["name"] == "CLI Gym" and partner["kind"] == "gym" and partner["id"].startswith("ptn_")

    client = hub_cli(
        database_url,
        settings.keys_dir,
        "client",
        "create",
        "--partner",
        partner["id"],
        "--scopes",
        "member:read points:read",
        "--json",
    )
    assert client.returncode == 0, client.stderr
    credentials = json.loads(client.stdout)
    assert credentials["client_secret"].startswith("hub_cs_") and credentials["partner_id"] == partner["id"]
    token = await http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(credentials["client_id"], credentials["client_secret"]),
    )
    assert token.status_code == 200 and token.json()["scope"] == "member:read points:read"


def test_cli_refuses_bad_input_with_a_non_zero_exit(database_url: str, settings: Any) -> None:
    bad_kind = hub_cli(database_url, settings.keys_dir, "partner", "create", "--name", "X", "--kind", "bakery")
    assert bad_kind.returncode == 1 and "INVALID_INPUT" in bad_kind.stderr
    owner = json.loads(
        hub_cli(
            database_url, settings.keys_dir, "partner", "create", "--name", "Op", "--kind", "other", "--json"
        ).stdout
    )
    reserved = hub_cli(
        database_url, settings.keys_dir, "client", "create", "--partner", owner["id"], "--scopes", "operator:admin"
    )
    assert reserved.returncode == 1 and "never grantable" in reserved.stderr
    unknown = hub_cli(
        database_url, settings.keys_dir, "client", "create", "--partner", "ptn_nope", "--scopes", "member:read"
    )
    assert unknown.returncode == 1 and "PARTNER_NOT_FOUND" in unknown.stderr


def test_demo_seed_on_a_fresh_database(fresh_database_url: str, tmp_path: Path) -> None:
    upgraded = hub_cli(fresh_database_url, tmp_path, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert migrate.current(fresh_database_url) is not None
    seeded = hub_cli(fresh_database_url, tmp_path, "demo", "seed", "--members", "60", "--json")
    assert seeded.returncode == 0, seeded.stderr
    clients = json.loads(seeded.stdout)["clients"]
    assert sorted(c["kind"] for c in clients) == ["gym", "gym", "insurer", "pharmacy_chain"]
    assert [c["redirect_uri"] for c in clients if c["redirect_uri"]] == ["http://127.0.0.1:8765/callback"]
    assert all(c["client_secret"].startswith("hub_cs_") for c in clients)
    again = hub_cli(fresh_database_url, tmp_path, "demo", "seed")
    assert again.returncode == 1


def test_ledger_commands(fresh_database_url: str, tmp_path: Path) -> None:
    assert hub_cli(fresh_database_url, tmp_path, "db", "upgrade").returncode == 0
    seeded = json.loads(hub_cli(fresh_database_url, tmp_path, "demo", "seed", "--members", "30", "--json").stdout)
    pharmacy = next(c for c in seeded["clients"] if c["kind"] == "pharmacy_chain")["partner_id"]
    terms = hub_cli(fresh_database_url, tmp_path, "partner", "terms", "--partner", pharmacy, "--billing", "prepaid",
                    "--point-value", "0.02", "--json")  # fmt: skip
    assert json.loads(terms.stdout) == {
        "partner_id": pharmacy,
        "point_value": "0.02",
        "billing": "prepaid",
        "activity_kinds": [],
    }
    funded = hub_cli(
        fresh_database_url, tmp_path, "partner", "fund", "--partner", pharmacy, "--points", "500", "--json"
    )
    assert json.loads(funded.stdout)["prepaid_balance"] == 500
    verified = hub_cli(fresh_database_url, tmp_path, "ledger", "verify", "--json")
    assert verified.returncode == 0 and json.loads(verified.stdout) == {"ok": True, "violations": []}
    worker = hub_cli(fresh_database_url, tmp_path, "worker", "--once")
    assert worker.returncode == 0 and "matured" in worker.stdout
    from datetime import datetime
    from zoneinfo import ZoneInfo

    period = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    settled = json.loads(hub_cli(fresh_database_url, tmp_path, "settle", "--period", period, "--format", "json").stdout)
    assert settled["currency"] == "CNY" and settled["lines"], settled
    csv_out = hub_cli(fresh_database_url, tmp_path, "settle", "--period", period, "--format", "csv").stdout
    assert csv_out.splitlines()[0] == "issuer_id,issuer,redeemer_id,redeemer,points,value_cny"
    bad = hub_cli(fresh_database_url, tmp_path, "settle", "--period", "2026-13")
    assert bad.returncode == 1 and "INVALID_PERIOD" in bad.stderr


def test_programme_check_names_line_and_key(tmp_path: Path, database_url: str) -> None:
    from hub.programme.config import DEFAULT_FILE

    good = hub_cli(database_url, tmp_path, "programme", "check", str(DEFAULT_FILE))
    assert good.returncode == 0 and "ok, 1 version" in good.stdout
    text = DEFAULT_FILE.read_text(encoding="utf-8")
    bad = tmp_path / "bad.toml"
    broken = text.replace("grace_days = 30", "grace_dayz = 30") + '\n[[version]]\neffective_from = "2020-01-01"\n'
    bad.write_text(broken, encoding="utf-8")
    checked = hub_cli(database_url, tmp_path, "programme", "check", str(bad))
    assert checked.returncode == 1
    wrong_key_line = next(i for i, line in enumerate(broken.splitlines()) if line.startswith("grace_dayz"))
    assert f"bad.toml:{wrong_key_line + 1}: version[0].tiers.grace_dayz: unknown key" in checked.stderr
    assert "version[1].effective_from: overlaps another version" in checked.stderr
    shown = json.loads(hub_cli(database_url, tmp_path, "programme", "show", "--json").stdout)
    assert [level["threshold"] for level in shown["tiers"]["levels"]] == ["0", "1000", "5000", "10000"]
