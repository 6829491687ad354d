"""Shared pieces of the benchmarks: a fresh database, a hub server process, wrk runs."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hub import migrate
from hub.config import Settings
from hub.consent.service import Evidence
from hub.members import service as members
from hub.partners import service as partners
from hub.state import Hub

ROOT = Path(__file__).resolve().parent.parent


def fresh_database(url: str, workdir: Path, name: str) -> str:
    """An empty database: a new SQLite file, or a dropped-and-recreated database on the PostgreSQL server."""
    if not url.startswith("postgresql"):
        return f"sqlite:///{workdir / (name + '.sqlite3')}"
    parsed = make_url(url)
    admin = create_engine(
        parsed.set(drivername="postgresql+psycopg", database="postgres"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


def analyze(url: str) -> None:
    """Statistics for a freshly seeded database, as pgbench's own initialisation takes: without them PostgreSQL
    plans the member lookup as a scan of every link of the partner, and plpgsql keeps such plans per session."""
    if not url.startswith("postgresql"):
        return
    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()


@contextmanager
def hub_server(
    url: str,
    workdir: Path,
    *,
    workers: int = 1,
    pool: int = 10,
    app: str = "hub.app:create_app",
    extra_env: dict[str, str] | None = None,
    log: Path | None = None,
) -> Iterator[str]:
    """A hub process on a free port with production settings; yields its base URL."""
    port = 18000 + secrets.randbelow(1000)
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "HUB_DATABASE_URL": url,
        "HUB_ISSUER": base,
        "HUB_KEYS_DIR": str(workdir / "keys"),
        "HUB_ENV": "production",
        "HUB_DB_POOL_SIZE": str(pool),
        **(extra_env or {}),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stderr=log.open("a") if log is not None else None,  # the hub's own log lines, when it writes them
    )
    try:
        for _ in range(150):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise RuntimeError("the hub did not start")
        yield base
    finally:
        server.terminate()
        server.wait(timeout=20)


def wrk(base: str, script: Path, seconds: int, connections: int, threads: int = 2) -> tuple[float, int]:
    """Requests per second and requests completed."""
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", str(script), base],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    assert rate and total, out
    return float(rate.group(1)), int(total.group(1))


@dataclass(frozen=True)
class Seeded:
    client_id: str
    client_secret: str
    partner_pk: int
    member_ids: list[str]  # the partner's pairwise ids


async def seed_partner(settings: Settings, count: int, scopes: set[str], permissions: list[str]) -> Seeded:
    """One pharmacy with a client and `count` enrolled members who consented to `permissions`."""
    hub = Hub.create(settings)
    now = hub.clock.now()
    async with hub.db.write() as conn:
        partner = await partners.create_partner(conn, name="Bench Pharmacy", kind="pharmacy_chain", now=now)
        client = await partners.create_client(
            conn, partner_public_id=partner.public_id, scopes=frozenset(scopes), now=now
        )
        ids = []
        for i in range(count):
            enrolment = members.Enrolment(
                external_id=f"B-{i}",
                phone=f"+86137{i:08d}",
                name="王芳",
                birthday=None,
                permissions=permissions,
                evidence=Evidence(policy_version="1", channel="POS", actor="bench"),
            )
            enrolled = await members.enrol(conn, partner.id, enrolment, now=now, default_region="CN")
            ids.append(enrolled.member.pairwise_id)
    await hub.close()
    assert client.client_secret is not None
    return Seeded(client.client_id, client.client_secret, partner.id, ids)


def arguments(runs: int = 3, connections: int = 32, **extra: Any) -> argparse.ArgumentParser:
    """The options every wrk benchmark takes (each may add its own), and wrk itself checked for."""
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default=os.environ.get("HUB_DATABASE_URL", "sqlite:///"))
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=runs)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=connections)
    for name, default in extra.items():
        parser.add_argument(f"--{name}", type=type(default), default=default)
    return parser


@dataclass(frozen=True)
class Prepared:
    url: str
    workdir: Path
    settings: Settings
    seeded: Seeded


def prepared(
    database: str, name: str, members: int, permissions: list[str], scopes: set[str] | None = None
) -> Prepared:
    """A fresh database built by the migrations and one pharmacy with `members` members who consented to
    `permissions` (call `analyze` once everything is seeded)."""
    workdir = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    url = fresh_database(database, workdir, name)
    migrate.upgrade(url)
    settings = Settings(database_url=url, keys_dir=workdir / "keys", env="production")
    seeded = asyncio.run(seed_partner(settings, members, scopes or set(permissions), permissions))
    return Prepared(url, workdir, settings, seeded)


def token(base: str, seeded: Seeded) -> str:
    answer = httpx.post(
        base + "/oauth/token", data={"grant_type": "client_credentials"}, auth=(seeded.client_id, seeded.client_secret)
    )
    return str(answer.json()["access_token"])


def alternate(targets: dict[str, tuple[str, Path]], runs: int, seconds: int, connections: int) -> dict[str, Any]:
    """wrk against each (base URL, script) in turn, after a 3 s warm-up of each, so that drift on a shared machine
    hits all alike: requests per second of every run, and requests completed, by target."""
    for base, script in targets.values():
        wrk(base, script, 3, connections, threads=1)
    rates: dict[str, list[float]] = {name: [] for name in targets}
    done = dict.fromkeys(targets, 0)
    for _ in range(runs):
        for name, (base, script) in targets.items():
            rate, completed = wrk(base, script, seconds, connections, threads=1)
            rates[name].append(rate)
            done[name] += completed
    return {"runs": rates, "requests": done, "medians": {n: statistics.median(r) for n, r in rates.items()}}
