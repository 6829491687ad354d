"""Benchmark: webhook deliveries per second to a local receiver, and the delay from an event's commit to its
receipt at a steady rate, with `hub worker` as it runs in production (PostgreSQL by default).

The receiver is a minimal ASGI app in its own uvicorn process (so the hub's two cores are not spent parsing
requests in Python threads); it verifies nothing and answers 204, keeping when each body arrived and the event
time inside it. Events are written straight into the outbox, as the ledger does, one member and one endpoint.

1. Throughput: `--burst` events committed at once, then the time until the receiver has all of them.
2. Delay: `--rate` events a second for `--seconds`, each in its own transaction; p50 and p99 of arrival minus
   commit.

    python -m bench.webhooks [--database postgresql://postgres@127.0.0.1:5432/postgres] [--workers 1]

Targets (issue 11): ≥ 1,000 deliveries/s; p99 ≤ 1 s at 200 events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert

from bench.common import ROOT, fresh_database
from hub import migrate
from hub.config import Settings
from hub.consent.service import Evidence
from hub.events.models import event
from hub.members import service as members
from hub.partners import service as partners
from hub.state import Hub
from hub.webhooks import service as webhooks

RECEIVER = """
import json, time
from datetime import datetime
arrivals = []
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["method"] == "GET":
        out = json.dumps(arrivals).encode()
        arrivals.clear() if scope["path"] == "/reset" else None
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": out})
        return
    arrivals.append([time.time(), datetime.fromisoformat(json.loads(body)["timestamp"]).timestamp()])
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
"""


@contextmanager
def process(args: list[str], env: dict[str, str], cwd: Path) -> Any:
    proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def setup(settings: Settings, receiver_url: str) -> tuple[int, int]:
    hub = Hub.create(settings)
    now = hub.clock.now()
    async with hub.db.write() as conn:
        partner = await partners.create_partner(conn, name="Bench Pharmacy", kind="pharmacy_chain", now=now)
        enrolled = await members.enrol(
            conn,
            partner.id,
            members.Enrolment(
                external_id="B-1", phone="+8613700000001", name="王芳", birthday=None,
                permissions=["member:read", "points:read"],
                evidence=Evidence(policy_version="1", channel="POS", actor="bench"),
            ),
            now=now,
            default_region="CN",
        )  # fmt: skip
        await webhooks.create(
            conn, hub.webhook_key, partner.id, url=receiver_url, event_types=["points.earned"], description=None,
            now=now, allow_private=True, production=True,
        )  # fmt: skip
    await hub.close()
    return partner.id, enrolled.member.member_id


async def write_events(settings: Settings, partner_id: int, member_id: int, count: int, rate: float | None) -> None:
    hub = Hub.create(settings)
    try:
        if rate is None:
            async with hub.db.write() as conn:
                rows = [
                    {"type": "points.earned", "member_id": member_id, "partner_id": partner_id,
                     "payload": {"transactionId": f"txn_{i}", "points": i}, "occurred_at": datetime.now(UTC)}
                    for i in range(count)
                ]  # fmt: skip
                await conn.execute(insert(event), rows)
            return
        started = time.monotonic()
        for i in range(count):
            async with hub.db.write() as conn:
                await conn.execute(
                    insert(event).values(
                        type="points.earned", member_id=member_id, partner_id=partner_id,
                        payload={"transactionId": f"txn_{i}", "points": i}, occurred_at=datetime.now(UTC),
                    )
                )  # fmt: skip
            await asyncio.sleep(max(0.0, started + (i + 1) / rate - time.monotonic()))
    finally:
        await hub.close()


def arrivals(receiver: str, reset: bool = False) -> list[list[float]]:
    return httpx.get(receiver + ("/reset" if reset else "/stats"), timeout=10).json()  # type: ignore[no-any-return]


def wait_all(receiver: str, count: int, timeout: float) -> list[list[float]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = arrivals(receiver)
        if len(got) >= count:
            return got
        time.sleep(0.1)
    raise RuntimeError(f"only {len(arrivals(receiver))} of {count} deliveries arrived")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--database", default=os.environ.get("HUB_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--burst", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1, help="hub worker processes")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    url = fresh_database(args.database, workdir, "hub_bench")
    migrate.upgrade(url)
    (workdir / "receiver.py").write_text(RECEIVER)
    port = 19000 + os.getpid() % 500
    receiver = f"http://127.0.0.1:{port}"
    settings = Settings(database_url=url, keys_dir=workdir / "keys", env="production", webhook_allow_private=True)
    partner_id, member_id = asyncio.run(setup(settings, receiver + "/hooks"))
    env = {
        **os.environ, "HUB_DATABASE_URL": url, "HUB_KEYS_DIR": str(workdir / "keys"), "HUB_ENV": "production",
        "HUB_WEBHOOK_ALLOW_PRIVATE": "true",
    }  # fmt: skip
    receiver_cmd = [sys.executable, "-m", "uvicorn", "receiver:app", "--port", str(port), "--log-level", "warning",
                    "--no-access-log", "--app-dir", str(workdir)]  # fmt: skip
    report: dict[str, Any] = {"database": url.split(":")[0], "workers": args.workers, "throughput": [], "delay": []}
    with process(receiver_cmd, env, workdir):
        for _ in range(100):
            try:
                arrivals(receiver)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        worker_cmd = [sys.executable, "-m", "hub.cli", "worker", "--interval", "3600"]
        with ExitStack() as workers:
            for _ in range(args.workers):
                workers.enter_context(process(worker_cmd, env, ROOT))
            time.sleep(3)  # the workers start and run their first round of jobs
            for _ in range(args.runs):
                arrivals(receiver, reset=True)
                started = time.time()
                asyncio.run(write_events(settings, partner_id, member_id, args.burst, None))
                got = wait_all(receiver, args.burst, timeout=600)
                elapsed = max(t for t, _ in got) - started
                report["throughput"].append(round(args.burst / elapsed, 1))

                arrivals(receiver, reset=True)
                count = int(args.rate * args.seconds)
                asyncio.run(write_events(settings, partner_id, member_id, count, args.rate))
                got = wait_all(receiver, count, timeout=120)
                report["delay"].append(got)
    p50s, p99s = [], []
    for run in report.pop("delay"):
        delays = sorted(arrived - stamped for arrived, stamped in run)
        p50s.append(delays[len(delays) // 2] * 1000)
        p99s.append(delays[int(len(delays) * 0.99) - 1] * 1000)
    report["deliveries_per_second_median"] = statistics.median(report["throughput"])
    report["delay_p50_ms"] = [round(x, 1) for x in p50s]
    report["delay_p99_ms"] = [round(x, 1) for x in p99s]
    report["delay_p50_ms_median"] = round(statistics.median(p50s), 1)
    report["delay_p99_ms_median"] = round(statistics.median(p99s), 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
