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

import asyncio
import json
from datetime import timedelta

import httpx
from sqlalchemy.engine import make_url

from bench.common import alternate, analyze, arguments, hub_server, prepared, token
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
    args = arguments(connections=16, first=100).parse_args()
    permissions = ["member:read", "points:read", "points:earn", "purchases:write"]
    ready = prepared(args.database, "hub_bench", args.members, permissions)
    asyncio.run(shop(ready.settings, ready.seeded.partner_pk, ready.seeded.member_ids))
    analyze(ready.url)
    with hub_server(ready.url, ready.workdir, app="bench.app:create_bench_app") as base:
        bearer = token(base, ready.seeded)
        auth = {"Authorization": f"Bearer {bearer}"}
        check_gql = httpx.post(
            base + "/graphql", json={"query": QUERY, "variables": {"first": args.first}}, headers=auth
        ).json()
        check_raw = httpx.get(base + "/bench/raw-page", params={"first": args.first}, headers=auth).json()
        assert check_gql == {**check_raw, "extensions": check_gql["extensions"]}, (check_gql, check_raw)
        assert len(check_raw["data"]["members"]["edges"]) == args.first
        targets = {}
        for mode in ("graphql", "raw"):
            script = ready.workdir / f"{mode}.lua"
            values = {"mode": mode, "token": bearer, "query": QUERY.replace('"', '\\"'), "first": args.first}
            script.write_text(LUA % values)
            targets[mode] = (base, script)
        measured = alternate(targets, args.runs, args.seconds, args.connections)
    graphql, raw = measured["medians"]["graphql"], measured["medians"]["raw"]
    report = {
        "database": make_url(ready.url).get_backend_name(),
        "first": args.first,
        "runs": measured["runs"],
        "graphql_median_rps": graphql,
        "raw_median_rps": raw,
        "ratio": round(graphql / raw, 3),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
