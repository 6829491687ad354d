"""Benchmark: the `member(id:)` GraphQL query against a raw Starlette route doing the same work.

Both run in one uvicorn process (same workers, pool, database) started by this script; the raw route calls the
same `authenticate` and the same `members.by_pairwise_id` the resolver calls and returns the same JSON, so the
ratio is the cost of the GraphQL layer itself. wrk drives both with random members from the partner's list,
alternating runs so drift on a shared machine hits both alike. The figure is graphql / raw, medians of the runs.

    python bench/member_query.py [--database postgresql://postgres@127.0.0.1:5432/postgres] [--runs 3]

Needs wrk (Debian package `wrk`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hub import migrate
from hub.config import Settings
from hub.consent.service import Evidence
from hub.members import service as members
from hub.partners import service as partners
from hub.state import Hub

ROOT = Path(__file__).resolve().parent.parent


QUERY = "query Member($id: ID!) { member(id: $id) { id externalId name birthday memberSince } }"


def fresh_database(url: str, workdir: Path) -> str:
    if not url.startswith("postgresql"):
        return f"sqlite:///{workdir / 'bench.sqlite3'}"
    parsed = make_url(url)
    name = "hub_bench"
    admin = create_engine(
        parsed.set(drivername="postgresql+psycopg", database="postgres"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


async def seed(settings: Settings, count: int) -> tuple[str, str, list[str]]:
    hub = Hub.create(settings)
    now = hub.clock.now()
    async with hub.db.write() as conn:
        partner = await partners.create_partner(conn, name="Bench Pharmacy", kind="pharmacy_chain", now=now)
        client = await partners.create_client(
            conn, partner_public_id=partner.public_id, scopes=frozenset({"member:read"}), now=now
        )
        ids = []
        for i in range(count):
            enrolled = await members.enrol(
                conn,
                partner.id,
                members.Enrolment(
                    external_id=f"B-{i}",
                    phone=f"+86137{i:08d}",
                    name="王芳",
                    birthday=None,
                    permissions=["member:read"],
                    evidence=Evidence(policy_version="1", channel="POS", actor="bench"),
                ),
                now=now,
                default_region="CN",
            )
            ids.append(enrolled.member.pairwise_id)
    await hub.db.dispose()
    assert client.client_secret is not None
    return client.client_id, client.client_secret, ids


LUA = """
local ids = {%(ids)s}
local mode = "%(mode)s"
wrk.headers["Authorization"] = "Bearer %(token)s"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local id = ids[math.random(#ids)]
  if mode == "graphql" then
    return wrk.format("POST", "/graphql", nil, '{"query":"%(query)s","variables":{"id":"' .. id .. '"}}')
  end
  return wrk.format("GET", "/bench/raw-member?id=" .. id)
end
"""


def wrk(base: str, script: Path, seconds: int, connections: int) -> float:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), base],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(out)
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default=os.environ.get("HUB_DATABASE_URL", "sqlite:///"))
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    port = 18000 + secrets.randbelow(1000)
    base = f"http://127.0.0.1:{port}"
    url = fresh_database(args.database, workdir)
    migrate.upgrade(url)
    env = {
        **os.environ,
        "HUB_DATABASE_URL": url,
        "HUB_ISSUER": base,
        "HUB_KEYS_DIR": str(workdir / "keys"),
        "HUB_ENV": "production",
    }
    settings = Settings(database_url=url, issuer=base, keys_dir=workdir / "keys", env="production")
    client_id, secret, ids = asyncio.run(seed(settings, args.members))

    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.app:create_bench_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        for _ in range(100):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        token = httpx.post(
            base + "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
        ).json()["access_token"]
        # Tokens live 10 minutes by default: enough for the default runs.
        check_gql = httpx.post(
            base + "/graphql",
            json={"query": QUERY, "variables": {"id": ids[0]}},
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        check_raw = httpx.get(
            base + "/bench/raw-member", params={"id": ids[0]}, headers={"Authorization": f"Bearer {token}"}
        ).json()
        assert check_gql["data"] == check_raw["data"], (check_gql, check_raw)

        scripts = {}
        for mode in ("graphql", "raw"):
            path = workdir / f"{mode}.lua"
            path.write_text(
                LUA
                % {
                    "ids": ",".join(f'"{i}"' for i in ids),
                    "mode": mode,
                    "token": token,
                    "query": QUERY.replace('"', '\\"'),
                }
            )
            scripts[mode] = path
        wrk(base, scripts["graphql"], 3, args.connections)  # warm-up
        wrk(base, scripts["raw"], 3, args.connections)
        results: dict[str, list[float]] = {"graphql": [], "raw": []}
        for _ in range(args.runs):
            for mode in ("graphql", "raw"):
                results[mode].append(wrk(base, scripts[mode], args.seconds, args.connections))
    finally:
        server.terminate()
        server.wait(timeout=10)

    graphql, raw = statistics.median(results["graphql"]), statistics.median(results["raw"])
    report = {
        "database": make_url(url).get_backend_name(),
        "runs": results,
        "graphql_median_rps": graphql,
        "raw_median_rps": raw,
        "ratio": round(graphql / raw, 3),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
