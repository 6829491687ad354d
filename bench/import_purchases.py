"""Benchmark: bulk import of a chain's members and purchase history into a fresh database.

Generates `--members` members and `--purchases` purchases (one to three lines each, over two years, a tenth of
lines on prescription), runs `hub import members` and `hub import purchases` as an operator would (the CLI, one
process), and reports rows per second and total time for each, then runs `hub ledger verify`.

    python -m bench.import_purchases [--database postgresql://postgres@127.0.0.1:5432/postgres]
                                     [--members 100000] [--purchases 1000000]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import fresh_database
from hub import migrate
from hub.imports import MEMBER_COLUMNS, PURCHASE_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
PERMISSIONS = "member:read points:read points:earn points:redeem purchases:write"


def generate(workdir: Path, members: int, purchases: int, seed: int = 7) -> tuple[Path, Path, int]:
    rng = random.Random(seed)
    members_csv, purchases_csv = workdir / "members.csv", workdir / "purchases.csv"
    with members_csv.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(MEMBER_COLUMNS)
        for n in range(members):
            writer.writerow([f"M{n:07d}", f"+86135{n:08d}", "会员", "1980-01-01", PERMISSIONS, "2025-paper", ""])
    lines = 0
    start = datetime.now(UTC) - timedelta(days=730)
    with purchases_csv.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(PURCHASE_COLUMNS)
        for n in range(purchases):
            at = (start + timedelta(seconds=730 * 86400 * n // purchases)).isoformat()
            owner = f"M{rng.randrange(members):07d}"
            for line in range(rng.choice((1, 1, 2, 3))):
                writer.writerow(
                    [f"P{n:08d}", owner, at, "S1", f"SKU{line}", rng.choice(("otc", "vitamins", "devices")),
                     f"{rng.randint(100, 50000) / 100:.2f}", 1, "true" if rng.random() < 0.1 else "false", "false"]
                )  # fmt: skip
                lines += 1
    return members_csv, purchases_csv, lines


def hub(url: str, workdir: Path, *args: str) -> str:
    env = {**os.environ, "HUB_DATABASE_URL": url, "HUB_KEYS_DIR": str(workdir / "keys")}
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"hub {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--purchases", type=int, default=1_000_000)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="hub-bench-import-"))
    url = fresh_database(args.database, workdir, "hub_bench_import")
    migrate.upgrade(url)
    started = time.monotonic()
    members_csv, purchases_csv, lines = generate(workdir, args.members, args.purchases)
    generated = time.monotonic() - started
    partner = json.loads(
        hub(url, workdir, "partner", "create", "--name", "Chain", "--kind", "pharmacy_chain", "--json")
    )

    report = {}
    for kind, path, rows in (("members", members_csv, args.members), ("purchases", purchases_csv, args.purchases)):
        started = time.monotonic()
        out = json.loads(hub(url, workdir, "import", kind, str(path), "--partner", partner["id"], "--json"))
        seconds = time.monotonic() - started
        report[kind] = {
            "rows": rows,
            "accepted": out["accepted"],
            "rejected": out["rejected"],
            "seconds": round(seconds, 1),
            "per_second": round(rows / seconds, 1),
        }
    report["purchases"]["csv_lines"] = lines
    started = time.monotonic()
    verified = json.loads(hub(url, workdir, "ledger", "verify", "--json"))
    print(
        json.dumps(
            {
                "database": url.split(":")[0],
                "generate_seconds": round(generated, 1),
                **report,
                "verify_seconds": round(time.monotonic() - started, 1),
                "ledger_violations": verified["violations"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
