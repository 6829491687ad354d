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

import json
from contextlib import ExitStack

import httpx
from sqlalchemy.engine import make_url

from bench.common import alternate, analyze, arguments, hub_server, prepared, token

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
    args = arguments(runs=5, redis="").parse_args()
    ready = prepared(args.database, "hub_bench", args.members, ["member:read"])
    analyze(ready.url)
    on_env = {"HUB_REDIS_URL": args.redis} if args.redis else {}
    ids = ",".join(f'"{i}"' for i in ready.seeded.member_ids)
    with ExitStack() as stack:
        targets = {}
        for mode, env in (("on", on_env), ("off", OFF)):
            base = stack.enter_context(hub_server(ready.url, ready.workdir, extra_env=env))
            bearer = token(base, ready.seeded)
            check = httpx.post(
                base + "/graphql",
                json={"query": QUERY, "variables": {"id": ready.seeded.member_ids[0]}},
                headers={"Authorization": f"Bearer {bearer}"},
            ).json()
            assert check["data"]["member"]["id"] == ready.seeded.member_ids[0], check
            assert ("cost" in check.get("extensions", {})) == (mode == "on"), check
            script = ready.workdir / f"{mode}.lua"
            script.write_text(LUA % {"ids": ids, "token": bearer, "query": QUERY.replace('"', '\\"')})
            targets[mode] = (base, script)
        measured = alternate(targets, args.runs, args.seconds, args.connections)

    on, off = measured["medians"]["on"], measured["medians"]["off"]
    report = {
        "database": make_url(ready.url).get_backend_name(),
        "rate_limit_storage": "redis" if args.redis else "memory",
        "runs": measured["runs"],
        "on_median_rps": on,
        "off_median_rps": off,
        "overhead": round(1 - on / off, 3),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
