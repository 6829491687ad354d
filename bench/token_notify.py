"""Benchmark: how soon a change to a token's state reaches another connection's token cache.

A `TokenStates` (one listening connection, as in each hub process) and a second connection that changes a
partner row, as an operator's SQL or another hub process would. For each change: the time from the changing
statement's return to the cache's clearing. Both run in this one process, so the figure is PostgreSQL's
notification delivery plus one event-loop turn, not a cross-process wake-up.

    python -m bench.token_notify [--database postgresql://postgres@127.0.0.1:5432/postgres] [--changes 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from bench.common import fresh_database, seed_partner
from hub import migrate
from hub.auth.token_states import TokenStates
from hub.config import Settings


async def measure(url: str, changes: int) -> list[float]:
    states = TokenStates(url)
    states.get("warm-up")  # starts the listener
    while not states.listening:  # noqa: ASYNC110 (TokenStates has no event to wait on; polling is the point)
        await asyncio.sleep(0.01)
    other = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))
    delays = []
    for _ in range(changes):
        before = states.generation
        await other.execute("UPDATE partner SET status = status")
        committed = time.perf_counter()
        while states.generation == before:  # noqa: ASYNC110 (one event-loop turn per check is the measurement)
            await asyncio.sleep(0)
        delays.append((time.perf_counter() - committed) * 1000)
    await other.close()
    await states.close()
    return sorted(delays)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--changes", type=int, default=200)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    url = fresh_database(args.database, workdir, "hub_bench_notify")
    migrate.upgrade(url)
    settings = Settings(database_url=url, keys_dir=workdir / "keys", env="production")
    asyncio.run(seed_partner(settings, 1, {"member:read"}, ["member:read"]))
    delays = asyncio.run(measure(url, args.changes))
    print(
        json.dumps(
            {
                "changes": len(delays),
                "median_ms": round(statistics.median(delays), 3),
                "p99_ms": round(delays[int(len(delays) * 0.99) - 1], 3),
                "max_ms": round(delays[-1], 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
