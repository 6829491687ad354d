"""`hub worker`: the periodic jobs and webhook delivery."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from prometheus_client import start_http_server

from hub.cli.output import JsonOption, Output
from hub.observability import logs, metrics
from hub.state import Hub


def worker(
    once: Annotated[bool, typer.Option("--once", help="Run each job once and exit")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between rounds")] = 30.0,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics on this port (of --metrics-address)")
    ] = None,
    metrics_address: Annotated[str, typer.Option(help="Interface for --metrics-port")] = "127.0.0.1",
    as_json: JsonOption = False,
) -> None:
    """Run the periodic jobs (mature pending points, expire lots, holds, reward claims and consents, announce points
    expiring soon, rescore members' retention daily, forget expired tokens, prune webhook deliveries and old
    quotes) and deliver webhooks.

    Safe to run as several processes: they share the work through row locks (FOR UPDATE SKIP LOCKED). With
    `--json`, one JSON object a line: each round's counts."""
    out = Output(as_json)
    settings = out.settings()
    if not once:  # a long-running process: its log lines as configured (JSON lines in production)
        logs.configure(json_lines=settings.json_logs, level=settings.log_level)
    if metrics_port is not None:
        # The worker's own metrics (jobs, webhook deliveries and their lag) on a port of their own, for the
        # operator's Prometheus: never behind the hub's public address.
        start_http_server(metrics_port, addr=metrics_address, registry=metrics.registry())
    from hub.auth.housekeeping import purge_expired
    from hub.consent.service import expire_due
    from hub.points import jobs
    from hub.retention.service import rescore_due
    from hub.rewards.jobs import expire_claims, prune_quotes
    from hub.tiers.jobs import review_tiers
    from hub.webhooks import delivery, transport

    async def jobs_round(hub: Hub) -> None:
        started = time.perf_counter()
        claims = await expire_claims(hub.db, hub.clock.now())
        report = await jobs.run_once(hub.db, hub.clock.now())
        async with hub.db.write() as conn:
            consents = await expire_due(conn, hub.clock.now())
        reviewed, gifts = await review_tiers(hub.db, hub.settings, hub.clock.now())
        settings = hub.settings
        expiring = await jobs.announce_expiring(hub.db, hub.clock.now(), timedelta(days=settings.expiry_notice_days))
        every = timedelta(hours=settings.retention_rescore_hours)
        rescored = await rescore_due(hub.db, hub.clock.now(), every, settings.points_policy.zone)
        purged = await purge_expired(hub.db, datetime.now(UTC))
        pruned = await delivery.prune(hub.db, hub.clock.now(), timedelta(days=hub.settings.webhook_retention_days))
        quotes = await prune_quotes(hub.db, hub.clock.now())
        done = {
            "matured_points": report.matured_points, "expired_points": report.expired_points,
            "expired_holds": report.expired_holds, "expired_reward_claims": claims, "expired_consents": consents,
            "reviewed_tiers": reviewed,
            "birthday_gifts": gifts, "expiring_points_notices": expiring,
            "retention_scored_partners": sum(1 for r in rescored if r.fit is not None),
            "at_risk_announced": sum(r.announced for r in rescored),
            "forgotten_records": purged, "pruned_webhook_deliveries": pruned, "pruned_quotes": quotes,
        }  # fmt: skip
        for job, count in done.items():
            metrics.WORKER_JOBS.labels(job).inc(count)
        metrics.WORKER_ROUNDS.observe(time.perf_counter() - started)
        if as_json:
            out.json({"jobs": done})
        else:
            out.say(", ".join(f"{k.replace('_', ' ')} {v}" for k, v in done.items()))

    async def work(hub: Hub) -> None:
        async with transport.new_client(hub.settings.webhook_allow_private) as client:
            dispatcher = delivery.Dispatcher(hub.db, hub.webhook_key, client, hub.settings.webhook_allow_private)
            if once:
                await jobs_round(hub)
                fanned = await delivery.fan_out(hub.db, hub.webhook_key, hub.clock.now())
                sent = await dispatcher.dispatch(hub.clock.now())
                if as_json:
                    out.json({"webhooks": {"fanned_out_events": fanned, "sent_deliveries": sent}})
                else:
                    out.say(f"fanned out {fanned} events, sent {sent} webhook deliveries")
                return
            # Webhooks poll every 250 ms (back to back while busy); the other jobs every `interval` seconds.
            stop = asyncio.Event()
            webhooks = asyncio.create_task(delivery.run(hub.db, dispatcher, hub.clock, stop))
            try:
                while True:
                    await jobs_round(hub)
                    await asyncio.sleep(interval)
            finally:
                stop.set()
                await webhooks

    out.run(work)
