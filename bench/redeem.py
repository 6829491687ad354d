"""Benchmark: `redeemPoints` through HTTP against pgbench's simple-update on the same PostgreSQL, same run.

The hub runs as one single-worker uvicorn process per core (production settings; wrk's long-lived connections
are split evenly between them) on a fresh database with one partner and N members, each
holding plenty of points. wrk sends `redeemPoints(points: 1)` with a fresh idempotency key per request, as a
till would, with constant query text and variables: for random members, then with every request on one hot
member. pgbench runs `-N` (simple-update, scale 10, 8 clients, TCP like the hub) on its own database on the same
server. Runs alternate; the figures are medians; the ratios are hub req/s over pgbench TPS.

    python -m bench.redeem --database postgresql://postgres@127.0.0.1:5432/postgres [--workers 2] [--runs 3]

Needs wrk and pgbench (Debian packages `wrk`, `postgresql-client`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bench.common import analyze, fresh_database, hub_server, seed_partner, wrk
from hub import migrate
from hub.config import Settings
from hub.points import ledger
from hub.points.models import ledger_txn
from hub.points.verify import verify
from hub.state import Hub

MUTATION = (
    "mutation Redeem($input: RedeemPointsInput!) { redeemPoints(input: $input) "
    "{ transaction { id points } errors { code } } }"
)

# Every request carries a key no other request used: the run's nonce, the wrk thread, a counter.
LUA = """
local ids = {%(ids)s}
local hot = %(hot)s
local counter = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
wrk.headers["Authorization"] = "Bearer %(token)s"
wrk.headers["Content-Type"] = "application/json"
request = function()
  counter = counter + 1
  local id = hot and ids[1] or ids[math.random(#ids)]
  local body = '{"query":"%(query)s","variables":{"input":{"memberId":"' .. id ..
    '","points":1,"idempotencyKey":"%(nonce)s-' .. tid .. '-' .. counter .. '"}}}'
  return wrk.format("POST", "/graphql", nil, body)
end
"""


async def seed(settings: Settings, count: int) -> tuple[str, str, list[str]]:
    seeded = await seed_partner(settings, count, {"points:redeem", "points:earn"}, ["points:earn", "points:redeem"])
    hub = Hub.create(settings)
    now = hub.clock.now()
    for i, pairwise_id in enumerate(seeded.member_ids):
        async with hub.db.write() as conn:
            earn = ledger.Earn(pairwise_id, 100_000_000, None, None, None, f"seed-{i}")
            await ledger.earn(conn, seeded.partner_pk, earn, now, settings.points_policy)
    await hub.close()
    return seeded.client_id, seeded.client_secret, seeded.member_ids


async def check(settings: Settings) -> tuple[int, list[str]]:
    hub = Hub.create(settings)
    async with hub.db.read() as conn:
        redeemed = await conn.scalar(select(func.count()).select_from(ledger_txn).where(ledger_txn.c.kind == "redeem"))
        problems = await verify(conn)
    await hub.close()
    return int(redeemed or 0), problems


def pgbench(server_url: str, seconds: int) -> float:
    parsed = make_url(server_url)
    args = ["-h", parsed.host or "127.0.0.1", "-p", str(parsed.port or 5432), "-U", parsed.username or "postgres"]
    out = subprocess.run(
        ["pgbench", *args, "-N", "-c", "8", "-j", "2", "-T", str(seconds), "hub_bench_pgbench"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = re.search(r"tps = ([\d.]+)", out)
    assert found, out
    return float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    for tool in ("wrk", "pgbench"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed")
    if not args.database.startswith("postgresql"):
        sys.exit("this benchmark compares against pgbench: give a PostgreSQL URL")

    workdir = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    url = fresh_database(args.database, workdir, "hub_bench_redeem")
    migrate.upgrade(url)
    settings = Settings(database_url=url, keys_dir=workdir / "keys", env="production")
    client_id, secret, ids = asyncio.run(seed(settings, args.members))
    analyze(url)
    fresh_database(args.database, workdir, "hub_bench_pgbench")
    parsed = make_url(args.database)
    subprocess.run(
        [
            "pgbench",
            "-h",
            parsed.host or "127.0.0.1",
            "-p",
            str(parsed.port or 5432),
            "-U",
            parsed.username or "postgres",
            "-i",
            "-s",
            "10",
            "-q",
            "hub_bench_pgbench",
        ],
        check=True,
        capture_output=True,
    )

    results: dict[str, list[float]] = {"random": [], "hot": [], "pgbench": []}
    # One single-worker process per core, each with its own share of wrk's connections: with one shared socket
    # the kernel handed most of wrk's long-lived connections to one worker and left the other idle.
    with ExitStack() as stack:
        bases = [stack.enter_context(hub_server(url, workdir, workers=1, pool=16)) for _ in range(args.workers)]
        tokens = {
            base: httpx.post(
                base + "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
            ).json()["access_token"]
            for base in bases
        }
        probe = httpx.post(
            bases[0] + "/graphql",
            json={
                "query": MUTATION,
                "variables": {"input": {"memberId": ids[0], "points": 1, "idempotencyKey": "probe"}},
            },
            headers={"Authorization": f"Bearer {tokens[bases[0]]}"},
        ).json()
        assert probe["data"]["redeemPoints"]["errors"] == [], probe

        def script(mode: str, base: str) -> Path:
            path = workdir / f"{mode}-{secrets.token_hex(4)}.lua"
            path.write_text(
                LUA
                % {
                    "ids": ",".join(f'"{i}"' for i in ids),
                    "hot": "true" if mode == "hot" else "false",
                    "token": tokens[base],
                    "query": MUTATION.replace('"', '\\"'),
                    "nonce": secrets.token_hex(6),
                }
            )
            return path

        def load(mode: str, seconds: int) -> tuple[float, int]:
            """All servers at once; the sum of their rates and requests."""
            share = max(1, args.connections // len(bases))
            with ThreadPoolExecutor(len(bases)) as pool:
                runs = list(pool.map(lambda base: wrk(base, script(mode, base), seconds, share, threads=1), bases))
            return round(sum(r[0] for r in runs), 1), sum(r[1] for r in runs)

        sent = load("random", 3)[1]  # warm-up
        for _ in range(args.runs):
            for mode in ("random", "hot"):
                rate, requests = load(mode, args.seconds)
                results[mode].append(rate)
                sent += requests
            results["pgbench"].append(pgbench(args.database, args.seconds))

    redeemed, problems = asyncio.run(check(settings))
    medians = {k: statistics.median(v) for k, v in results.items()}
    print(
        json.dumps(
            {
                "workers": args.workers,
                "runs": results,
                "medians": medians,
                "ratio_random": round(medians["random"] / medians["pgbench"], 3),
                "ratio_hot": round(medians["hot"] / medians["pgbench"], 3),
                "requests_sent": sent + 1,
                "redemptions_recorded": redeemed,
                "ledger_violations": problems,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
