"""Benchmark: `member(id:)` with the hub's observability on (a request id, the Prometheus counters and histograms,
one JSON log line per request written to a file) against the same hub without any of it, in the same run.

Two hub processes on one database (`hub.app:serve_app`, as `hub serve` runs it, with HUB_LOG_FORMAT=json and its
log into a file; and `bench.app:create_unobserved_app`); wrk drives them in turn with random members. The figure is
the overhead, 1 - on/off, from the medians of the runs. Target: ≤ 5 %.

    python -m bench.observability_overhead [--database postgresql://postgres@127.0.0.1:5432/postgres] [--runs 5]
"""

from __future__ import annotations

import json
from contextlib import ExitStack

import httpx
from sqlalchemy.engine import make_url

from bench.common import alternate, analyze, arguments, hub_server, prepared, token
from bench.limits_overhead import LUA, QUERY


def main() -> None:
    args = arguments(runs=5).parse_args()
    ready = prepared(args.database, "hub_bench", args.members, ["member:read"])
    analyze(ready.url)
    ids = ",".join(f'"{i}"' for i in ready.seeded.member_ids)
    log = ready.workdir / "hub.log"
    with ExitStack() as stack:
        targets = {}
        for mode, app, env in (
            ("on", "hub.app:serve_app", {"HUB_LOG_FORMAT": "json", "HUB_METRICS_TOKEN": "bench"}),
            ("off", "bench.app:create_unobserved_app", {}),
        ):
            base = stack.enter_context(hub_server(ready.url, ready.workdir, app=app, extra_env=env, log=log))
            bearer = token(base, ready.seeded)
            check = httpx.post(
                base + "/graphql",
                json={"query": QUERY, "variables": {"id": ready.seeded.member_ids[0]}},
                headers={"Authorization": f"Bearer {bearer}"},
            )
            assert check.json()["data"]["member"]["id"] == ready.seeded.member_ids[0], check.text
            assert ("x-request-id" in check.headers) == (mode == "on"), check.headers
            script = ready.workdir / f"{mode}.lua"
            script.write_text(LUA % {"ids": ids, "token": bearer, "query": QUERY.replace('"', '\\\\"')})
            targets[mode] = (base, script)
        measured = alternate(targets, args.runs, args.seconds, args.connections)
    logged = sum(1 for line in log.read_text().splitlines() if '"message": "request"' in line)
    on, off = measured["medians"]["on"], measured["medians"]["off"]
    report = {
        "database": make_url(ready.url).get_backend_name(),
        "runs": measured["runs"],
        "on_median_rps": on,
        "off_median_rps": off,
        "overhead": round(1 - on / off, 3),
        "requests_on": measured["requests"]["on"],
        "request_lines_logged": logged,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
