"""Benchmark: `member(id:)` with the query cost measure and per-client rate limits on, against the same hub with
both off (HUB_GRAPHQL_MAX_COST=0: strawberry's depth and alias rules instead of the measure;
HUB_RATE_LIMIT_REQUESTS=0 and HUB_RATE_LIMIT_COST=0: no counting).

Two hub processes on one database, started by this script; wrk drives them in turn with random members, so drift
on a shared machine hits both alike. The figure is the overhead, 1 - on/off, from the medians of the runs.
Rate limits count in process unless --redis is given (then both count in Redis, as a multi-process hub does).

    python -m bench.limits_overhead [--database postgresql://postgres@127.0.0.1:5432/postgres] [--runs 5]
                                    [--redis redis://127.0.0.1:6379/0]

Needs wrk (Debian package `wrk`).
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
from contextlib import ExitStack
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from bench.common import analyze, fresh_database, hub_server, seed_partner, wrk
from hub import migrate
from hub.config import Settings

QUERY = "query Member($id: ID!) { member(id: $id) { id externalId name birthday memberSince } }"

LUA = """
local ids = {%(ids)s}
wrk.headers["Authorization"] = "Bearer %(token)s"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local id = ids[math.random(#ids)]
  return wrk.format("POST", "/graphql", nil, '{"query":"%(query)s","variables":{"id":"' .. id .. '"}}')
end
"""

OFF = {"HUB_GRAPHQL_MAX_COST": "0", "HUB_RATE_LIMIT_REQUESTS": "0", "HUB_RATE_LIMIT_COST": "0"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default=os.environ.get("HUB_DATABASE_URL", "sqlite:///"))
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--redis", default=None, help="count rate limits in this Redis (HUB_REDIS_URL)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    url = fresh_database(args.database, workdir, "hub_bench")
    migrate.upgrade(url)
    settings = Settings(database_url=url, keys_dir=workdir / "keys", env="production")
    seeded = asyncio.run(seed_partner(settings, args.members, {"member:read"}, ["member:read"]))
    analyze(url)
    on_env = {"HUB_REDIS_URL": args.redis} if args.redis else {}

    results: dict[str, list[float]] = {"on": [], "off": []}
    with ExitStack() as stack:
        bases = {
            "on": stack.enter_context(hub_server(url, workdir, extra_env=on_env)),
            "off": stack.enter_context(hub_server(url, workdir, extra_env=OFF)),
        }
        scripts = {}
        for mode, base in bases.items():
            token = httpx.post(
                base + "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(seeded.client_id, seeded.client_secret),
            ).json()["access_token"]
            check = httpx.post(
                base + "/graphql",
                json={"query": QUERY, "variables": {"id": seeded.member_ids[0]}},
                headers={"Authorization": f"Bearer {token}"},
            ).json()
            assert check["data"]["member"]["id"] == seeded.member_ids[0], check
            assert ("cost" in check.get("extensions", {})) == (mode == "on"), check
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
        for mode in ("on", "off"):  # warm-up
            wrk(bases[mode], scripts[mode], 3, args.connections, threads=1)
        for _ in range(args.runs):
            for mode in ("on", "off"):
                results[mode].append(wrk(bases[mode], scripts[mode], args.seconds, args.connections, threads=1)[0])

    on, off = statistics.median(results["on"]), statistics.median(results["off"])
    report = {
        "database": make_url(url).get_backend_name(),
        "rate_limit_storage": "redis" if args.redis else "memory",
        "runs": results,
        "on_median_rps": on,
        "off_median_rps": off,
        "overhead": round(1 - on / off, 3),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
