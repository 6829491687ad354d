"""Benchmark: the `member(id:)` GraphQL query against a raw Starlette route doing the same work.

Both run in one uvicorn process (same workers, pool, database) started by this script; the raw route calls the
same `authenticate` and the same `members.by_pairwise_id` the resolver calls and returns the same JSON, so the
ratio is the cost of the GraphQL layer itself. wrk drives both with random members from the partner's list,
alternating runs so drift on a shared machine hits both alike. The figure is graphql / raw, medians of the runs.

    python -m bench.member_query [--database postgresql://postgres@127.0.0.1:5432/postgres] [--runs 3]

Needs wrk (Debian package `wrk`).
"""

from __future__ import annotations

import json

import httpx
from sqlalchemy.engine import make_url

from bench.common import alternate, analyze, arguments, hub_server, prepared, token

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
    args = arguments().parse_args()
    ready = prepared(args.database, "hub_bench", args.members, ["member:read"])
    analyze(ready.url)
    ids = ready.seeded.member_ids
    with hub_server(ready.url, ready.workdir, app="bench.app:create_bench_app") as base:
        bearer = token(base, ready.seeded)
        auth = {"Authorization": f"Bearer {bearer}"}
        check_gql = httpx.post(base + "/graphql", json={"query": QUERY, "variables": {"id": ids[0]}}, headers=auth)
        check_raw = httpx.get(base + "/bench/raw-member", params={"id": ids[0]}, headers=auth)
        assert check_gql.json()["data"] == check_raw.json()["data"], (check_gql.text, check_raw.text)
        targets = {}
        for mode in ("graphql", "raw"):
            script = ready.workdir / f"{mode}.lua"
            ids_lua = ",".join(f'"{i}"' for i in ids)
            script.write_text(LUA % {"ids": ids_lua, "mode": mode, "token": bearer, "query": QUERY.replace('"', '\\"')})
            targets[mode] = (base, script)
        measured = alternate(targets, args.runs, args.seconds, args.connections)
    graphql, raw = measured["medians"]["graphql"], measured["medians"]["raw"]
    report = {
        "database": make_url(ready.url).get_backend_name(),
        "runs": measured["runs"],
        "graphql_median_rps": graphql,
        "raw_median_rps": raw,
        "ratio": round(graphql / raw, 3),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
