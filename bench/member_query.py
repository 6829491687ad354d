"""Benchmark: the `member(id:)` GraphQL query against a raw Starlette route doing the same work.

Both run in one uvicorn process (same workers, pool, database) started by this script; the raw route calls the
same `authenticate` and the same `members.by_pairwise_id` the resolver calls and returns the same JSON, so the
ratio is the cost of the GraphQL layer itself. wrk drives both with random members from the partner's list,
alternating runs so drift on a shared machine hits both alike. The figure is graphql / raw, medians of the runs.

    python -m bench.member_query [--database postgresql://postgres@127.0.0.1:5432/postgres] [--runs 3]

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
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from bench.common import analyze, fresh_database, hub_server, seed_partner, wrk
from hub import migrate
from hub.config import Settings

QUERY = "query Member($id: ID!) { member(id: $id) { id externalId name birthday memberSince } }"


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
    url = fresh_database(args.database, workdir, "hub_bench")
    migrate.upgrade(url)
    settings = Settings(database_url=url, keys_dir=workdir / "keys", env="production")
    seeded = asyncio.run(seed_partner(settings, args.members, {"member:read"}, ["member:read"]))
    analyze(url)
    client_id, secret, ids = seeded.client_id, seeded.client_secret, seeded.member_ids

    results: dict[str, list[float]] = {"graphql": [], "raw": []}
    with hub_server(url, workdir, app="bench.app:create_bench_app") as base:
        token = httpx.post(
            base + "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        check_gql = httpx.post(base + "/graphql", json={"query": QUERY, "variables": {"id": ids[0]}}, headers=auth)
        check_raw = httpx.get(base + "/bench/raw-member", params={"id": ids[0]}, headers=auth)
        assert check_gql.json()["data"] == check_raw.json()["data"], (check_gql.text, check_raw.text)

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
        for mode in ("graphql", "raw"):  # warm-up
            wrk(base, scripts[mode], 3, args.connections, threads=1)
        for _ in range(args.runs):
            for mode in ("graphql", "raw"):
                results[mode].append(wrk(base, scripts[mode], args.seconds, args.connections, threads=1)[0])

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
