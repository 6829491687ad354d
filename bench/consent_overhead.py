"""Benchmark: what consent checking and access logging cost on the read path.

Two hub processes on the same database: the hub as it is, and the same hub with consent checking and access
logging taken out (`bench.app:create_unchecked_app`: no consent join in the member lookup, no per-field consent
permission, no access-log write). wrk sends the same `member(id:)` query reading profile and points (two data
categories, so every request writes one access-log row) to each in turn, alternating runs. The figure is the
overhead: 1 − checked / unchecked, medians of the runs. Target: ≤ 15 %.

    python -m bench.consent_overhead [--database postgresql://postgres@127.0.0.1:5432/postgres] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bench.common import analyze, fresh_database, hub_server, seed_partner, wrk
from hub import migrate
from hub.config import Settings
from hub.consent.models import access_log
from hub.state import Hub

QUERY = "query Member($id: ID!) { member(id: $id) { id name birthday points { available } } }"

LUA = """
local ids = {%(ids)s}
wrk.headers["Authorization"] = "Bearer %(token)s"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local id = ids[math.random(#ids)]
  return wrk.format("POST", "/graphql", nil, '{"query":"%(query)s","variables":{"id":"' .. id .. '"}}')
end
"""


async def logged_reads(settings: Settings) -> int:
    hub = Hub.create(settings)
    async with hub.db.read() as conn:
        count = await conn.scalar(select(func.count()).select_from(access_log))
    await hub.close()
    return int(count or 0)


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
    url = fresh_database(args.database, workdir, "hub_bench_consent")
    migrate.upgrade(url)
    settings = Settings(database_url=url, keys_dir=workdir / "keys", env="production")
    permissions = ["member:read", "points:read"]
    seeded = asyncio.run(seed_partner(settings, args.members, set(permissions), permissions))
    analyze(url)

    results: dict[str, list[float]] = {"checked": [], "unchecked": []}
    requests = {"checked": 0, "unchecked": 0}
    with (
        hub_server(url, workdir) as checked,
        hub_server(url, workdir, app="bench.app:create_unchecked_app") as unchecked,
    ):
        bases = {"checked": checked, "unchecked": unchecked}
        scripts = {}
        for mode, base in bases.items():
            token = httpx.post(
                base + "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(seeded.client_id, seeded.client_secret),
            ).json()["access_token"]
            answer = httpx.post(
                base + "/graphql",
                json={"query": QUERY, "variables": {"id": seeded.member_ids[0]}},
                headers={"Authorization": f"Bearer {token}"},
            ).json()
            assert answer["data"]["member"]["name"] == "王芳" and "errors" not in answer, answer
            path = workdir / f"{mode}.lua"
            path.write_text(
                LUA
                % {
                    "ids": ",".join(f'"{i}"' for i in seeded.member_ids),
                    "token": token,
                    "query": QUERY.replace('"', '\\"'),
                }
            )
            scripts[mode] = path
        before = asyncio.run(logged_reads(settings))
        for mode in bases:  # warm-up
            wrk(bases[mode], scripts[mode], 3, args.connections, threads=1)
        for _ in range(args.runs):
            for mode in bases:
                rate, done = wrk(bases[mode], scripts[mode], args.seconds, args.connections, threads=1)
                results[mode].append(rate)
                requests[mode] += done
    logged = asyncio.run(logged_reads(settings)) - before

    checked_rps, unchecked_rps = statistics.median(results["checked"]), statistics.median(results["unchecked"])
    print(
        json.dumps(
            {
                "database": make_url(url).get_backend_name(),
                "runs": results,
                "checked_median_rps": checked_rps,
                "unchecked_median_rps": unchecked_rps,
                "overhead": round(1 - checked_rps / unchecked_rps, 3),
                "checked_requests": requests["checked"],
                "access_log_rows_written": logged,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
