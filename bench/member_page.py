"""Benchmark: a partner's page of members with points and tier, through GraphQL, against a raw Starlette route
doing the same batched SQL (issue 12).

    members(first: 100) { edges { node { id externalId points { available pending }
                                          tier { level name benefits { discountRate } } } } }

One uvicorn process serves both (`bench.app:create_bench_app`); the raw route `/bench/raw-page` runs the same
authentication, the same domain reads (`members.page`, `points.balances_of`, `tiers.standings_of`) and writes the
same access-log rows, and returns the same JSON. The members hold points, purchases and tiers, so every read finds
rows. wrk alternates the two; the figure is graphql / raw, medians of the runs. Target: ≥ 0.6.

    python -m bench.member_page [--database postgresql://postgres@127.0.0.1:5432/postgres] [--runs 3]

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
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from bench.common import analyze, fresh_database, hub_server, seed_partner, wrk
from hub import migrate
from hub.config import Settings
from hub.points import ledger
from hub.purchases import service as purchases
from hub.state import Hub

QUERY = (
    "query Page($first: Int) { members(first: $first) { edges { node { id externalId points { available pending } "
    "tier { level name benefits { discountRate } } } } } }"
)

LUA = """
local mode = "%(mode)s"
wrk.headers["Authorization"] = "Bearer %(token)s"
wrk.headers["Content-Type"] = "application/json"
request = function()
  if mode == "graphql" then
    return wrk.format("POST", "/graphql", nil, '{"query":"%(query)s","variables":{"first":%(first)d}}')
  end
  return wrk.format("GET", "/bench/raw-page?first=%(first)d")
end
"""


async def shop(settings: Settings, partner_pk: int, member_ids: list[str]) -> None:
    """Every member earns points; every third buys enough for a tier (purchases through the API's own service)."""
    hub = Hub.create(settings)
    now = hub.clock.now()
    policy, programme = settings.points_policy, settings.programme
    async with hub.db.write() as conn:
        for i, member_id in enumerate(member_ids):
            earn = ledger.Earn(member_id, 100 + i, "bench", f"E-{i}", None, f"earn-{i}")
            await ledger.earn(conn, partner_pk, earn, now, policy)
            if i % 3 == 0:
                line = purchases.LineInput("SKU-1", "otc", "1200.00" if i % 2 else "6000.00")
                bought = purchases.RecordPurchase(member_id, f"P-{i}", now - timedelta(days=2), None, (line,), f"p-{i}")
                await purchases.record(conn, partner_pk, bought, now=now, programme=programme, policy=policy)
    await hub.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default=os.environ.get("HUB_DATABASE_URL", "sqlite:///"))
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--first", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    url = fresh_database(args.database, workdir, "hub_bench")
    migrate.upgrade(url)
    settings = Settings(database_url=url, keys_dir=workdir / "keys", env="production")
    permissions = ["member:read", "points:read", "points:earn", "purchases:write"]
    seeded = asyncio.run(seed_partner(settings, args.members, set(permissions), permissions))
    asyncio.run(shop(settings, seeded.partner_pk, seeded.member_ids))
    analyze(url)

    results: dict[str, list[float]] = {"graphql": [], "raw": []}
    with hub_server(url, workdir, app="bench.app:create_bench_app") as base:
        token = httpx.post(
            base + "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(seeded.client_id, seeded.client_secret),
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        check_gql = httpx.post(
            base + "/graphql", json={"query": QUERY, "variables": {"first": args.first}}, headers=auth
        ).json()
        check_raw = httpx.get(base + "/bench/raw-page", params={"first": args.first}, headers=auth).json()
        assert check_gql == {**check_raw, "extensions": check_gql["extensions"]}, (check_gql, check_raw)
        assert len(check_raw["data"]["members"]["edges"]) == args.first

        scripts = {}
        for mode in ("graphql", "raw"):
            path = workdir / f"{mode}.lua"
            values = {"mode": mode, "token": token, "query": QUERY.replace('"', '\\"'), "first": args.first}
            path.write_text(LUA % values)
            scripts[mode] = path
        for mode in ("graphql", "raw"):  # warm-up
            wrk(base, scripts[mode], 3, args.connections, threads=1)
        for _ in range(args.runs):
            for mode in ("graphql", "raw"):
                results[mode].append(wrk(base, scripts[mode], args.seconds, args.connections, threads=1)[0])

    graphql, raw = statistics.median(results["graphql"]), statistics.median(results["raw"])
    report = {
        "database": make_url(url).get_backend_name(),
        "first": args.first,
        "runs": results,
        "graphql_median_rps": graphql,
        "raw_median_rps": raw,
        "ratio": round(graphql / raw, 3),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
