"""Limits as real hub processes enforce them: a client's rate limit shared by two processes through Redis, and
proxy headers that a caller sends to escape the per-IP sign-in limit being ignored."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from hub import migrate
from tests.conftest import ROOT, live_server, new_phone

REDIS_URL = os.environ.get("HUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _cli(env: dict[str, str], *args: str) -> dict[str, object]:
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "hub.cli", *args, "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_a_clients_rate_limit_is_shared_by_processes_through_redis(database_url: str, tmp_path: Path) -> None:
    if not _redis_up():
        if os.environ.get("HUB_REQUIRE_REDIS"):
            pytest.fail("Redis is not running on 127.0.0.1:6379")
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    issuer = "http://127.0.0.1:8000"  # both processes issue and accept the same tokens
    env = {**os.environ, "HUB_DATABASE_URL": database_url, "HUB_KEYS_DIR": str(tmp_path / "keys"), "HUB_ISSUER": issuer}
    partner = _cli(env, "partner", "create", "--name", f"Shared {tmp_path.name}", "--kind", "gym")
    client = _cli(env, "client", "create", "--partner", str(partner["id"]), "--scopes", "member:read")
    limits = _cli(env, "client", "limits", "--client", str(client["client_id"]), "--requests-per-minute", "4")
    assert limits["requests_per_minute"] == 4 and limits["own_limits"] is True

    served = {"HUB_DATABASE_URL": database_url, "HUB_KEYS_DIR": str(tmp_path / "keys"), "HUB_ISSUER": issuer,
              "HUB_REDIS_URL": REDIS_URL}  # fmt: skip
    with live_server(served, _free_port()) as first, live_server(served, _free_port()) as second:
        token = httpx.post(
            f"{first}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(str(client["client_id"]), str(client["client_secret"])),
        ).json()["access_token"]
        statuses = []
        for n in range(6):
            base = (first, second)[n % 2]
            response = httpx.post(
                f"{base}/graphql",
                json={"query": "{ viewer { scopes } }"},
                headers={"Authorization": f"Bearer {token}"},
            )
            statuses.append(response.status_code)
        assert statuses == [200, 200, 200, 200, 429, 429]
        assert int(response.headers["retry-after"]) >= 1
        assert response.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


def test_forwarded_for_from_an_untrusted_caller_is_ignored(fresh_database_url: str, tmp_path: Path) -> None:
    migrate.upgrade(fresh_database_url)  # its own database: no other test's codes count against 127.0.0.1
    served = {"HUB_DATABASE_URL": fresh_database_url, "HUB_KEYS_DIR": str(tmp_path / "keys")}
    with live_server(served, _free_port()) as base, httpx.Client(base_url=base) as browser:
        page = browser.get("/portal/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf
        statuses = []
        for n in range(21):  # the per-IP limit is 20 codes a quarter of an hour
            response = browser.post(
                "/portal/login/code",
                data={"csrf_token": csrf.group(1), "phone": new_phone(), "next": "/portal"},
                headers={"X-Forwarded-For": f"203.0.113.{n}", "X-Real-IP": f"203.0.113.{n}"},
            )
            statuses.append(response.status_code)
    assert statuses[:20] == [200] * 20 and statuses[20] == 429
