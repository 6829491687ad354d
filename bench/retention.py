"""Benchmark: scoring a partner with a million members on PostgreSQL.

Generates `--members` members of one pharmacy with purchase histories drawn from BG/NBD itself (a first purchase
in the first year of an 18-month window, then Poisson visits at the member's own rate, leaving after each visit
with the member's own probability; parameters below), nine in ten consenting to `analytics:read`, and loads them
straight into a database built by the migrations (SQL and COPY: the import path has its own benchmark). Then, for
each of `--runs` runs, scores the partner as `hub worker` and `hub analytics score` do (`service.score_partner`)
and reports its three parts, each as a ratio to a floor taken in the same run:

- the SQL aggregation (x, t_x, T and spend per member) against a bare `count(*) GROUP BY member_id` over the same
  purchases: what any per-member summary must at least read;
- fit + scoring against one evaluation of the BG/NBD log-likelihood over every member, unpatterned: how many
  "passes over the members" the fit costs after patterns collapse them;
- writing the scores (the partner's old scores deleted, the new ones written, newly at-risk members announced)
  against COPYing the same rows into a table without indexes or keys.

The first run also announces every member it finds at risk (a `member.at_risk` event and a notice each); the
later runs rescore the same data, as the daily rescoring does, and announce nobody new.

    python -m bench.retention [--database postgresql://postgres@127.0.0.1:5432/postgres] [--members 1000000]
                              [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from sqlalchemy import MetaData, func, select, text
from sqlalchemy.engine import make_url

from bench.common import analyze, fresh_database, seed_partner
from hub import migrate
from hub.config import Settings
from hub.db import bulk_insert
from hub.purchases.models import purchase
from hub.retention import model, service
from hub.retention.models import retention_score
from hub.retention.summary import summarise
from hub.state import Hub

TRUTH = model.BgNbd(r=0.6, alpha=4.0, a=0.7, b=3.0)  # weeks: a visit every ~7 weeks on average, ~1 in 5 leave
WINDOW_WEEKS = 78.0
PERMISSIONS = ["member:read", "points:read", "purchases:read", "analytics:read"]


def histories(members: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(member index, week of the purchase within the window, amount in fen) of every purchase, drawn from BG/NBD
    (the Gamma-Gamma spirit for amounts: each member's own mean, spread around it)."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(TRUTH.r, 1 / TRUTH.alpha, members)
    leave = rng.beta(TRUTH.a, TRUTH.b, members)
    mean_spend = rng.lognormal(np.log(8_000), 0.6, members)
    at = rng.uniform(0, 52, members)
    who, when = [np.arange(members)], [at.copy()]
    active = np.arange(members)
    while active.size:  # BG/NBD: a member may leave after each repeat purchase, not after the first
        later = at[active] + rng.exponential(1 / np.maximum(rate[active], 1e-9))
        inside = later < WINDOW_WEEKS
        active = active[inside]
        at[active] = later[inside]
        who.append(active)
        when.append(at[active].copy())
        active = active[rng.random(active.size) >= leave[active]]
    member = np.concatenate(who)
    week = np.concatenate(when)
    amount = np.maximum(100, mean_spend[member] * rng.gamma(4, 1 / 4, member.size)).astype(np.int64)
    return member, week, amount


def load(url: str, partner_id: int, members: int, seed: int, as_of: datetime) -> int:
    """Members, their consents and purchases, written in bulk. Returns the number of purchases."""
    member_index, week, amount = histories(members, seed)
    epoch = as_of.timestamp() - (WINDOW_WEEKS - week) * 7 * 86_400
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=False) as conn:
        # A fresh database: the members get consecutive ids from the first.
        conn.execute(
            "INSERT INTO member (status, created_at) SELECT 'active', now() FROM generate_series(1, %s)", (members,)
        )
        first_id = conn.execute("SELECT min(id) FROM member").fetchone()[0]  # type: ignore[index]
        conn.execute(
            """INSERT INTO consent (public_id, member_id, partner_id, status, permissions, purposes, policy_version,
                                    channel, expires_at, version, created_at, updated_at)
               SELECT 'cns_bench_' || id, id, %(partner)s, 'AUTHORISED',
                      CASE WHEN id %% 10 = 0 THEN %(without)s::jsonb ELSE %(with)s::jsonb END,
                      '["analytics"]'::jsonb, 'bench', 'POS', now() + interval '1 year', 1, now(), now()
               FROM member WHERE name IS NULL""",
            {
                "partner": partner_id,
                "with": json.dumps(PERMISSIONS),
                "without": json.dumps([p for p in PERMISSIONS if p != "analytics:read"]),
            },
        )
        conn.execute("CREATE TEMP TABLE staged (member_id bigint, at double precision, amount bigint)")
        with conn.cursor().copy("COPY staged (member_id, at, amount) FROM STDIN") as copy:
            for row in zip((member_index + first_id).tolist(), epoch.tolist(), amount.tolist(), strict=True):
                copy.write_row(row)
        conn.execute(
            """INSERT INTO purchase (public_id, partner_id, member_id, reference, store_id, occurred_at, amount,
                                     qualifying, points, tier_level, idempotency_key, request_hash, created_at)
               SELECT 'pur_bench_' || n, %(partner)s, member_id, 'R' || n, 'S1', to_timestamp(at), amount, amount,
                      0, 0, 'K' || n, '', now()
               FROM (SELECT row_number() OVER () AS n, * FROM staged) s""",
            {"partner": partner_id},
        )
        conn.commit()
    return int(member_index.size)


async def floors(hub: Hub, partner_id: int, as_of: datetime) -> dict[str, float]:
    """The same run's floors: a bare aggregation, one likelihood pass, a COPY of the scores into a bare table."""
    found: dict[str, float] = {}
    async with hub.db.read() as conn:
        started = time.perf_counter()
        await conn.execute(
            select(purchase.c.member_id, func.count())
            .where(purchase.c.partner_id == partner_id, purchase.c.occurred_at < as_of)
            .group_by(purchase.c.member_id)
        )
        found["summary"] = time.perf_counter() - started
        members = await summarise(conn, partner_id, as_of, hub.settings.points_policy.zone, now=as_of)
        rows = [dict(r) for r in (await conn.execute(select(retention_score))).mappings()]
    params = np.array([TRUTH.r, TRUTH.alpha, TRUTH.a, TRUTH.b])
    started = time.perf_counter()
    model.bgnbd_log_likelihood(params, members.x, members.t_x, members.T)
    found["fit_and_score"] = time.perf_counter() - started
    bare = retention_score.to_metadata(MetaData(), name="bench_bare_scores")
    async with hub.db.write() as conn:
        await conn.execute(text("CREATE TEMP TABLE bench_bare_scores AS SELECT * FROM retention_score WITH NO DATA"))
        started = time.perf_counter()
        await bulk_insert(conn, bare, rows)
        found["store"] = time.perf_counter() - started
        await conn.execute(text("DROP TABLE bench_bare_scores"))
    return found


async def measure(settings: Settings, partner_id: int, as_of: datetime, runs: int) -> dict[str, Any]:
    hub = Hub.create(settings)
    zone = settings.points_policy.zone
    seen: list[dict[str, Any]] = []
    try:
        for run in range(runs):
            scored = await service.score_partner(hub.db, partner_id, as_of, zone, now=as_of)
            if scored.error:
                raise RuntimeError(scored.error)
            floor = await floors(hub, partner_id, as_of)
            seen.append(
                {
                    "run": run + 1,
                    "members": scored.members,
                    "at_risk": scored.at_risk,
                    "announced": scored.announced,
                    "seconds": {k: round(v, 3) for k, v in scored.seconds.items()},
                    "floor_seconds": {k: round(v, 3) for k, v in floor.items()},
                    "ratio": {k: round(scored.seconds[k] / floor[k], 2) for k in floor},
                    "fit": scored.fit.params if scored.fit else None,
                }
            )
            print(json.dumps(seen[-1]), flush=True)
    finally:
        await hub.close()
    later = seen[1:] or seen
    return {
        "runs": seen,
        "median_seconds": {k: round(statistics.median(r["seconds"][k] for r in later), 2) for k in seen[0]["seconds"]},
        "median_ratio": {k: round(statistics.median(r["ratio"][k] for r in later), 2) for k in seen[0]["ratio"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if not args.database.startswith("postgresql"):
        parser.error("this benchmark is for PostgreSQL")

    workdir = Path(tempfile.mkdtemp(prefix="hub-bench-retention-"))
    url = fresh_database(args.database, workdir, "hub_bench_retention")
    migrate.upgrade(url)
    settings = Settings(database_url=url, keys_dir=workdir / "keys", env="production")
    seeded = asyncio.run(seed_partner(settings, 0, {"analytics:read"}, PERMISSIONS))
    as_of = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    started = time.perf_counter()
    purchases = load(url, seeded.partner_pk, args.members, args.seed, as_of)
    analyze(url)
    loaded = time.perf_counter() - started
    print(json.dumps({"members": args.members, "purchases": purchases, "load_seconds": round(loaded, 1)}), flush=True)
    result = asyncio.run(measure(settings, seeded.partner_pk, as_of, args.runs))
    print(json.dumps({"truth": TRUTH.as_dict(), **result["median_seconds"], "ratio": result["median_ratio"]}))


if __name__ == "__main__":
    main()
