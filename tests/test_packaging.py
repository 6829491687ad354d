"""The wheel is the product: built from this checkout, installed in a clean virtual environment outside it, the
`hub` it installs migrates, seeds the demo, serves the portal and GraphQL, and issues tokens. On SQLite the
default install (no PostgreSQL drivers); on PostgreSQL the `postgresql` extra."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT


def run(args: list[str], env: dict[str, str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, check=False)  # noqa: S603
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Path:
    """A virtual environment with the built wheel installed: its `bin`."""
    place = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(place / "dist"), str(ROOT)], env, place
    )
    [wheel] = (place / "dist").glob("hub-*.whl")
    run([sys.executable, "-m", "venv", str(place / "venv")], env, place)
    postgres = database_url.startswith("postgresql")
    requirement = f"hub[postgresql] @ {wheel.as_uri()}" if postgres else str(wheel)
    run([str(place / "venv" / "bin" / "pip"), "install", "--quiet", requirement], env, place, timeout=900)
    return place / "venv" / "bin"


def test_the_installed_wheel_migrates_seeds_and_serves(
    installed: Path, fresh_database_url: str, tmp_path: Path
) -> None:
    work = tmp_path / "operator"  # nowhere near the checkout: nothing can come from it
    work.mkdir()
    port = 19000 + secrets.randbelow(900)
    env = {
        "PATH": f"{installed}:/usr/bin:/bin",
        "HOME": str(work),
        "HUB_DATABASE_URL": fresh_database_url,
        "HUB_KEYS_DIR": str(work / "keys"),
        "HUB_DEMO_CREDENTIALS_FILE": str(work / "demo.json"),
        "HUB_ISSUER": f"http://127.0.0.1:{port}",
    }
    python = str(installed / "python")
    where = run([python, "-c", "import hub; print(hub.__file__)"], env, work).stdout
    assert "site-packages" in where and str(ROOT) not in where
    drivers = subprocess.run([python, "-c", "import asyncpg"], capture_output=True, env=env, cwd=work, check=False)  # noqa: S603
    assert (drivers.returncode == 0) == fresh_database_url.startswith("postgresql")  # the extra, only when asked

    hub = str(installed / "hub")
    assert run([hub, "--version"], env, work).stdout.startswith("hub ")
    assert json.loads(run([hub, "db", "upgrade", "--json"], env, work).stdout)["revision"]
    programme = json.loads(run([hub, "programme", "show", "--json"], env, work).stdout)
    assert programme["source"] == "built-in defaults" and programme["tiers"]["levels"]
    seeded = json.loads(run([hub, "demo", "seed", "--members", "20", "--json"], env, work).stdout)
    pharmacy = next(c for c in seeded["clients"] if c["kind"] == "pharmacy_chain")

    server = subprocess.Popen(  # noqa: S603
        [hub, "serve", "--port", str(port)], env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        token = httpx.post(
            base + "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(pharmacy["client_id"], pharmacy["client_secret"]),
        )
        assert token.status_code == 200, token.text
        query = "{ viewer { partner { name } } members(first: 3) { edges { node { id points { available } } } } }"
        answer = httpx.post(
            base + "/graphql",
            json={"query": query},
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        ).json()
        assert "errors" not in answer, answer
        assert answer["data"]["viewer"]["partner"]["name"] == pharmacy["partner_name"]
        assert len(answer["data"]["members"]["edges"]) == 3
        assert httpx.get(base + "/portal/login").status_code == 200  # the templates came with the wheel
        assert "type Member" in httpx.get(base + "/schema.graphql").text
    finally:
        server.terminate()
        output = server.communicate(timeout=20)[0].decode()
    assert "Traceback" not in output, output
