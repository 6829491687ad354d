"""The operator's command line, run as a real process: what it prints with --json, and its exit codes."""

from __future__ import annotations

import asyncio
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
        "at_risk_threshold": 0.3,
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
    assert csv_out.splitlines()[0] == "issuer_id,issuer,redeemer_id,redeemer,basis,points,value_cny"
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


async def cli_change(database_url: str, keys: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A change made by the operator's command in its own process. `subprocess.run` blocks this test's event loop,
    which also runs the hub under test: it is given a moment to read what arrived meanwhile (PostgreSQL's
    notification that token state changed), as a serving hub's loop does between requests."""
    done = hub_cli(database_url, keys, *args)
    await asyncio.sleep(0.2)
    return done


def test_version_and_json_on_every_command(database_url: str, settings: Any) -> None:
    from importlib.metadata import version

    shown = hub_cli(database_url, settings.keys_dir, "--version")
    assert shown.returncode == 0 and shown.stdout.strip() == f"hub {version('hub')}"
    for command in (
        ["db", "current"], ["partner", "list"], ["client", "list"], ["keys", "list"], ["schema", "print"],
        ["programme", "show"], ["ledger", "verify"], ["settle", "--period", "2026-11"], ["webhooks", "list"],
        ["webhooks", "catalogue"],
    ):  # fmt: skip
        done = hub_cli(database_url, settings.keys_dir, *command, "--json")
        assert done.returncode == 0, (command, done.stderr)
        assert isinstance(json.loads(done.stdout), dict), (command, done.stdout)


def test_errors_with_json_are_json_and_exit_non_zero(database_url: str, settings: Any, tmp_path: Path) -> None:
    def error_of(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
        if env:
            os.environ.update(env)
        try:
            done = hub_cli(database_url, settings.keys_dir, *args, "--json")
        finally:
            for key in env or {}:
                os.environ.pop(key)
        assert done.stderr == "", done.stderr  # nothing for people, no traceback
        return done.returncode, json.loads(done.stdout)["error"]

    assert error_of("client", "disable", "--client", "hub_ci_nope") == (
        1,
        {"code": "CLIENT_NOT_FOUND", "message": "no such client"},
    )
    code, error = error_of("partner", "suspend", "--partner", "ptn_nope")
    assert code == 1 and error["code"] == "PARTNER_NOT_FOUND"
    code, error = error_of("settle", "--period", "2026-13")
    assert code == 1 and error["code"] == "INVALID_PERIOD"
    code, error = error_of("partner", "list", env={"HUB_ENV": "staging"})
    assert code == 2 and error["code"] == "CONFIGURATION_ERROR"
    empty = tmp_path / "never-migrated.sqlite3"
    done = hub_cli(f"sqlite:///{empty}", settings.keys_dir, "partner", "list", "--json")
    assert done.returncode == 3 and json.loads(done.stdout)["error"]["code"] == "DATABASE_NOT_MIGRATED"


async def test_disabling_a_client_or_suspending_its_partner_stops_it_at_the_next_request(
    database_url: str, settings: Any, http: httpx.AsyncClient
) -> None:
    partner = json.loads(
        hub_cli(database_url, settings.keys_dir, "partner", "create", "--name", "Stop Shop", "--kind", "other",
                "--json").stdout
    )  # fmt: skip
    client = json.loads(
        hub_cli(database_url, settings.keys_dir, "client", "create", "--partner", partner["id"], "--scopes",
                "member:read", "--json").stdout
    )  # fmt: skip
    auth = (client["client_id"], client["client_secret"])

    async def token() -> httpx.Response:
        return await http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=auth)

    async def viewer(bearer: str) -> int:
        answer = await http.post(
            "/graphql", json={"query": "{ viewer { scopes } }"}, headers={"Authorization": f"Bearer {bearer}"}
        )
        return answer.status_code

    bearer = (await token()).json()["access_token"]
    assert await viewer(bearer) == 200
    listed = json.loads(hub_cli(database_url, settings.keys_dir, "client", "list", "--partner", partner["id"],
                                "--json").stdout)  # fmt: skip
    assert [(c["client_id"], c["status"], c["live_secrets"]) for c in listed["clients"]] == [
        (client["client_id"], "active", 1)
    ]
    for stop, start, flag, value in (
        ("disable", "enable", "--client", client["client_id"]),
        ("suspend", "resume", "--partner", partner["id"]),
    ):
        group = "client" if flag == "--client" else "partner"
        assert (await cli_change(database_url, settings.keys_dir, group, stop, flag, value, "--json")).returncode == 0
        assert await viewer(bearer) == 401  # the token it already holds, at once (PostgreSQL: through NOTIFY)
        assert (await token()).status_code == 401
        assert (await cli_change(database_url, settings.keys_dir, group, start, flag, value, "--json")).returncode == 0
        assert await viewer(bearer) == 200 and (await token()).status_code == 200


async def test_rotating_a_secret(database_url: str, settings: Any, http: httpx.AsyncClient) -> None:
    partner = json.loads(
        hub_cli(database_url, settings.keys_dir, "partner", "create", "--name", "Rotor", "--kind", "gym",
                "--json").stdout
    )  # fmt: skip
    client = json.loads(
        hub_cli(database_url, settings.keys_dir, "client", "create", "--partner", partner["id"], "--scopes",
                "member:read", "--json").stdout
    )  # fmt: skip
    client_id = client["client_id"]

    async def token(secret: str) -> httpx.Response:
        return await http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))

    async def rotate(*extra: str) -> str:
        done = await cli_change(database_url, settings.keys_dir, "client", "rotate-secret", "--client", client_id,
                                *extra, "--json")  # fmt: skip
        assert done.returncode == 0, done.stdout
        return str(json.loads(done.stdout)["client_secret"])

    first = client["client_secret"]
    bearer = (await token(first)).json()["access_token"]
    second = await rotate("--grace-hours", "1")  # no downtime: both work for an hour
    assert (await token(first)).status_code == 200 and (await token(second)).status_code == 200
    third = await rotate()  # a leak: the older ones stop now
    assert (await token(first)).status_code == 401 and (await token(second)).status_code == 401
    assert (await token(third)).status_code == 200
    ok = await http.post(
        "/graphql", json={"query": "{ viewer { scopes } }"}, headers={"Authorization": f"Bearer {bearer}"}
    )
    assert ok.status_code == 200  # a token outlives the secret it was got with, unless asked otherwise
    fourth = await rotate("--revoke-tokens")
    gone = await http.post(
        "/graphql", json={"query": "{ viewer { scopes } }"}, headers={"Authorization": f"Bearer {bearer}"}
    )
    assert gone.status_code == 401 and (await token(fourth)).status_code == 200
    assert third != fourth and all(s.startswith("hub_cs_") for s in (second, third, fourth))


def test_imports_read_utf8_with_or_without_bom_and_gbk(database_url: str, settings: Any, tmp_path: Path) -> None:
    partner = json.loads(
        hub_cli(database_url, settings.keys_dir, "partner", "create", "--name", "连锁药房", "--kind",
                "pharmacy_chain", "--json").stdout
    )  # fmt: skip
    header = "external_id,phone,name,birthday,permissions,policy_version\n"
    files = {}
    for label, codec in (("utf8", "utf-8"), ("bom", "utf-8-sig"), ("gbk", "gbk")):
        phone = f"+86137{int.from_bytes(os.urandom(3), 'big') % 10**8:08d}"
        row = f"{label}-{os.urandom(3).hex()},{phone},王芳,1980-05-17,member:read,2026-01\n"
        files[label] = tmp_path / f"{label}.csv"
        files[label].write_bytes((header + row).encode(codec))
    for label, expected in (("utf8", "utf-8"), ("bom", "utf-8"), ("gbk", "gb18030")):
        done = hub_cli(database_url, settings.keys_dir, "import", "members", str(files[label]), "--partner",
                       partner["id"], "--json")  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads(done.stdout)
        assert (report["accepted"], report["rejected"], report["encoding"]) == (1, 0, expected), report
    forced = hub_cli(database_url, settings.keys_dir, "import", "members", str(files["gbk"]), "--partner",
                     partner["id"], "--encoding", "utf-8", "--json")  # fmt: skip
    assert forced.returncode == 1
    assert json.loads(forced.stdout)["error"] == {
        "code": "INVALID_ENCODING",
        "message": "gbk.csv: line 2 is not UTF-8 text (tried UTF-8); save the file as UTF-8 or give --encoding",
    }
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(header.encode() + b"x,\xff\xfe\xfd\n")
    broken = hub_cli(database_url, settings.keys_dir, "import", "members", str(garbage), "--partner", partner["id"])
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
    assert "line 2 is not UTF-8 text (tried UTF-8 or GB18030)" in broken.stderr
