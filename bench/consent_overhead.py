"""Benchmark: what consent checking and access logging cost on the read path.

Two hub processes on the same database: the hub as it is, and the same hub with consent checking and access
logging taken out (`bench.app:create_unchecked_app`: no consent join in the member lookup, no per-field consent
permission, no access-log write). wrk sends the same `member(id:)` query reading profile and points (two data
categories, so every request writes one access-log row) to each in turn, alternating runs. The figure is the
overhead: 1 − checked / unchecked, medians of the runs. Target: ≤ 15 %.

    python -m bench.consent_overhead [--database postgresql://postgres@127.0.0.1:5432/postgres] [--runs 3]
"""

from __future__ import annotations

import asyncio
import json

import httpx
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bench.common import alternate, analyze, arguments, hub_server, prepared, token
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
    args = arguments().parse_args()
    ready = prepared(args.database, "hub_bench_consent", args.members, ["member:read", "points:read"])
    analyze(ready.url)
    ids = ",".join(f'"{i}"' for i in ready.seeded.member_ids)
    with (
        hub_server(ready.url, ready.workdir) as checked,
        hub_server(ready.url, ready.workdir, app="bench.app:create_unchecked_app") as unchecked,
    ):
        targets = {}
        for mode, base in {"checked": checked, "unchecked": unchecked}.items():
            bearer = token(base, ready.seeded)
            answer = httpx.post(
                base + "/graphql",
                json={"query": QUERY, "variables": {"id": ready.seeded.member_ids[0]}},
                headers={"Authorization": f"Bearer {bearer}"},
            ).json()
            assert answer["data"]["member"]["name"] == "王芳" and "errors" not in answer, answer
            script = ready.workdir / f"{mode}.lua"
            script.write_text(LUA % {"ids": ids, "token": bearer, "query": QUERY.replace('"', '\\"')})
            targets[mode] = (base, script)
        before = asyncio.run(logged_reads(ready.settings))
        measured = alternate(targets, args.runs, args.seconds, args.connections)
    logged = asyncio.run(logged_reads(ready.settings)) - before

    checked_rps, unchecked_rps = measured["medians"]["checked"], measured["medians"]["unchecked"]
    report = {
        "database": make_url(ready.url).get_backend_name(),
        "runs": measured["runs"],
        "checked_median_rps": checked_rps,
        "unchecked_median_rps": unchecked_rps,
        "overhead": round(1 - checked_rps / unchecked_rps, 3),
        "checked_requests": measured["requests"]["checked"],
        "access_log_rows_written": logged,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
