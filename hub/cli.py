"""The `hub` command line for the operator. Commands that create something print it for people and, with
`--json`, as one JSON object for scripts."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from hub import migrate
from hub.config import Settings
from hub.errors import DomainError
from hub.state import Hub

T = TypeVar("T")

app = typer.Typer(help="hub: the partner-integration hub for pharmacy membership coalitions.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
partner_app = typer.Typer(help="Partners (pharmacy chains, insurers, gyms, ...).", no_args_is_help=True)
client_app = typer.Typer(help="OAuth clients of partners.", no_args_is_help=True)
demo_app = typer.Typer(help="The demo coalition.", no_args_is_help=True)
keys_app = typer.Typer(help="Access-token signing keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(partner_app, name="partner")
app.add_typer(client_app, name="client")
app.add_typer(demo_app, name="demo")
app.add_typer(keys_app, name="keys")

console = Console()
err = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.")]


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ValueError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _run(work: Callable[[Hub], Awaitable[T]]) -> T:
    """Run one command against the database and report domain errors as a clean non-zero exit."""
    hub = Hub.create(_settings())

    async def main() -> T:
        try:
            return await work(hub)
        finally:
            await hub.close()

    try:
        return asyncio.run(main())
    except DomainError as exc:
        err.print(f"[red]error[/red] {exc.code}: {exc.message}")
        raise typer.Exit(1) from exc


def _emit(as_json: bool, data: dict[str, Any], title: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
        return
    # Plain lines, never a table: secrets must not be truncated or wrapped, whatever the terminal width.
    console.print(f"[bold]{title}[/bold]")
    width = max(len(k) for k in data)
    for key, value in data.items():
        console.print(f"  {key.ljust(width)}  {value}", soft_wrap=True, highlight=False)


# -- db --------------------------------------------------------------------------------------------------------------
@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations (the only way the schema is built)."""
    settings = _settings()
    migrate.upgrade(settings.database_url, revision)
    console.print(f"database at revision {migrate.current(settings.database_url)}")


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the database."""
    console.print(migrate.current(_settings().database_url) or "(empty)")


# -- partners and clients --------------------------------------------------------------------------------------------
@partner_app.command("create")
def partner_create(
    name: Annotated[str, typer.Option(help="The partner's name")],
    kind: Annotated[str, typer.Option(help="pharmacy_chain, insurer, gym, clinic or other")],
    as_json: JsonOption = False,
) -> None:
    """Create a partner."""
    from hub.partners import service

    async def work(hub: Hub) -> service.Partner:
        async with hub.db.write() as conn:
            return await service.create_partner(conn, name=name, kind=kind, now=hub.clock.now())

    created = _run(work)
    _emit(as_json, {"id": created.public_id, "name": created.name, "kind": created.kind}, "partner created")


@partner_app.command("list")
def partner_list(as_json: JsonOption = False) -> None:
    """List partners."""
    from hub.partners import service

    async def work(hub: Hub) -> list[service.Partner]:
        async with hub.db.read() as conn:
            return await service.list_partners(conn)

    found = _run(work)
    rows = [{"id": p.public_id, "name": p.name, "kind": p.kind, "status": p.status} for p in found]
    if as_json:
        sys.stdout.write(json.dumps({"partners": rows}, ensure_ascii=False) + "\n")
        return
    table = Table("id", "name", "kind", "status", title="partners")
    for r in rows:
        table.add_row(*r.values())
    console.print(table)


@client_app.command("create")
def client_create(
    partner: Annotated[str, typer.Option(help="The partner's id (ptn_...)")],
    scopes: Annotated[str, typer.Option(help="Space-separated scopes: the client's ceiling")],
    auth_method: Annotated[
        str, typer.Option(help="client_secret_basic, client_secret_post or private_key_jwt")
    ] = "client_secret_basic",
    jwks: Annotated[
        Path | None, typer.Option(help="JWK Set file of the client's public keys (private_key_jwt)")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A label for the client")] = None,
    redirect_uri: Annotated[
        list[str] | None, typer.Option(help="Redirect URI for the authorization code grant (repeatable)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an OAuth client for a partner. The secret is printed once and stored only as a hash."""
    from hub.partners import service

    key_set = json.loads(jwks.read_text()) if jwks else None

    async def work(hub: Hub) -> service.NewClient:
        async with hub.db.write() as conn:
            return await service.create_client(
                conn,
                partner_public_id=partner,
                scopes=frozenset(scopes.split()),
                auth_method=auth_method,
                jwks=key_set,
                name=name,
                redirect_uris=redirect_uri,
                now=hub.clock.now(),
            )

    created = _run(work)
    data = {
        "client_id": created.client_id,
        "client_secret": created.client_secret,
        "partner_id": created.partner_public_id,
        "scopes": " ".join(sorted(created.scopes)),
        "auth_method": created.auth_method,
        "redirect_uris": redirect_uri or [],
    }
    _emit(as_json, data, "client created: the secret is shown only now")


@client_app.command("limits")
def client_limits(
    client: Annotated[str, typer.Option(help="The client's id")],
    requests_per_minute: Annotated[
        int | None, typer.Option(help="Requests a minute (0: the hub's default, HUB_RATE_LIMIT_REQUESTS)")
    ] = None,
    cost_per_minute: Annotated[
        int | None, typer.Option(help="Query cost a minute (0: the hub's default, HUB_RATE_LIMIT_COST)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show or set a client's rate limits; a request over them is answered 429 with Retry-After."""
    from hub.partners import service

    async def work(hub: Hub) -> tuple[service.ClientLimits, Settings]:
        async with hub.db.write() as conn:
            limits = await service.set_client_limits(
                conn, client_id=client, requests_per_minute=requests_per_minute, cost_per_minute=cost_per_minute
            )
        return limits, hub.settings

    limits, settings = _run(work)
    data = {
        "client_id": limits.client_id,
        "requests_per_minute": limits.requests_per_minute or settings.rate_limit_requests,
        "cost_per_minute": limits.cost_per_minute or settings.rate_limit_cost,
        "own_limits": limits.requests_per_minute is not None or limits.cost_per_minute is not None,
    }
    _emit(as_json, data, "client limits")


@partner_app.command("terms")
def partner_terms(
    partner: Annotated[str, typer.Option(help="The partner's id (ptn_...)")],
    point_value: Annotated[str | None, typer.Option(help="Yuan one of its points is worth, e.g. 0.01")] = None,
    billing: Annotated[str | None, typer.Option(help="prepaid or postpaid")] = None,
    activity_kinds: Annotated[
        str | None, typer.Option(help='Health activities it may record, e.g. "GYM_VISIT WORKOUT" ("" for none)')
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Set a partner's point value, billing (prepaid partners must be funded before they can issue) and the
    health-activity kinds its contract covers."""
    from decimal import Decimal, InvalidOperation

    from hub.partners import service

    try:
        value = Decimal(point_value) if point_value is not None else None
    except InvalidOperation as exc:
        err.print(f"[red]error[/red] INVALID_INPUT: {point_value!r} is not a number")
        raise typer.Exit(1) from exc

    async def work(hub: Hub) -> service.Terms:
        async with hub.db.write() as conn:
            return await service.set_terms(
                conn,
                partner_public_id=partner,
                point_value=value,
                billing=billing,
                activity_kinds=activity_kinds.split() if activity_kinds is not None else None,
                now=hub.clock.now(),
            )

    terms = _run(work)
    data = {
        "partner_id": partner,
        "point_value": str(terms.point_value),
        "billing": terms.billing,
        "activity_kinds": list(terms.activity_kinds),
    }
    _emit(as_json, data, "terms")


@partner_app.command("fund")
def partner_fund(
    partner: Annotated[str, typer.Option(help="The partner's id (ptn_...)")],
    points: Annotated[int, typer.Option(help="Points the partner has paid for")],
    as_json: JsonOption = False,
) -> None:
    """Top up a prepaid partner's points (record a payment received)."""
    from hub.partners import service
    from hub.points import ledger, queries

    async def work(hub: Hub) -> int:
        async with hub.db.write() as conn:
            owner = await service.get_partner(conn, partner)
            if owner is None:
                raise DomainError("PARTNER_NOT_FOUND", f"no partner {partner!r}", "partner")
            await ledger.fund(conn, owner.id, points, hub.clock.now())
            return await queries.prepaid_balance(conn, owner.id)

    balance = _run(work)
    _emit(as_json, {"partner_id": partner, "funded_points": points, "prepaid_balance": balance}, "partner funded")


# -- ledger ----------------------------------------------------------------------------------------------------------
ledger_app = typer.Typer(help="The points ledger.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")


@ledger_app.command("verify")
def ledger_verify(as_json: JsonOption = False) -> None:
    """Check every ledger invariant; print each violation; exit 1 if there is any."""
    from hub.points.verify import verify

    async def work(hub: Hub) -> list[str]:
        async with hub.db.read() as conn:
            return await verify(conn)

    problems = _run(work)
    if as_json:
        sys.stdout.write(json.dumps({"ok": not problems, "violations": problems}, ensure_ascii=False) + "\n")
    elif problems:
        for problem in problems:
            console.print(f"[red]✗[/red] {problem}", highlight=False)
    else:
        console.print("[green]ledger verified: every invariant holds[/green]")
    if problems:
        raise typer.Exit(1)


@app.command()
def worker(
    once: Annotated[bool, typer.Option("--once", help="Run each job once and exit")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between rounds")] = 30.0,
) -> None:
    """Run the periodic jobs (mature pending points, expire lots, holds and consents, forget expired tokens, prune
    webhook deliveries) and deliver webhooks.

    Safe to run as several processes: they share the work through row locks (FOR UPDATE SKIP LOCKED)."""
    from hub.auth.housekeeping import purge_expired
    from hub.consent.service import expire_due
    from hub.points import jobs
    from hub.tiers.jobs import review_tiers
    from hub.webhooks import delivery, transport

    async def jobs_round(hub: Hub) -> None:
        report = await jobs.run_once(hub.db, hub.clock.now())
        async with hub.db.write() as conn:
            consents = await expire_due(conn, hub.clock.now())
        reviewed, gifts = await review_tiers(hub.db, hub.settings, hub.clock.now())
        purged = await purge_expired(hub.db, datetime.now(UTC))
        pruned = await delivery.prune(hub.db, hub.clock.now(), timedelta(days=hub.settings.webhook_retention_days))
        console.print(
            f"matured {report.matured_points} points, expired {report.expired_points} points, "
            f"expired {report.expired_holds} holds, expired {consents} consents, "
            f"reviewed {reviewed} tiers, {gifts} birthday gifts, forgot {purged} expired records, "
            f"pruned {pruned} webhook deliveries",
            highlight=False,
        )

    async def work(hub: Hub) -> None:
        async with transport.new_client(hub.settings.webhook_allow_private) as client:
            dispatcher = delivery.Dispatcher(hub.db, hub.webhook_key, client, hub.settings.webhook_allow_private)
            if once:
                await jobs_round(hub)
                fanned = await delivery.fan_out(hub.db, hub.webhook_key, hub.clock.now())
                sent = await dispatcher.dispatch(hub.clock.now())
                console.print(f"fanned out {fanned} events, sent {sent} webhook deliveries", highlight=False)
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

    _run(work)


webhooks_app = typer.Typer(help="Partners' webhook endpoints and deliveries.", no_args_is_help=True)
EndpointOption = Annotated[str, typer.Option("--endpoint", help="The endpoint (whe_...)")]
app.add_typer(webhooks_app, name="webhooks")


def _endpoint_rows(rows: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": r.public_id, "partner_id": r.partner_public_id, "url": r.url, "event_types": list(r.event_types),
            "enabled": r.enabled, "disabled_reason": r.disabled_reason, "failing_since": _iso(r.failing_since),
        }
        for r in rows
    ]  # fmt: skip


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@webhooks_app.command("list")
def webhooks_list(
    partner: Annotated[str | None, typer.Option(help="Only this partner's (ptn_...)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Every live endpoint, with whether it is enabled and why not."""
    from sqlalchemy import select

    from hub.partners.models import partner as partner_table
    from hub.webhooks.models import webhook_endpoint

    async def work(hub: Hub) -> list[dict[str, Any]]:
        query = (
            select(webhook_endpoint, partner_table.c.public_id.label("partner_public_id"))
            .join(partner_table, partner_table.c.id == webhook_endpoint.c.partner_id)
            .where(webhook_endpoint.c.deleted_at.is_(None))
            .order_by(webhook_endpoint.c.id)
        )
        if partner is not None:
            query = query.where(partner_table.c.public_id == partner)
        async with hub.db.read() as conn:
            return _endpoint_rows(await conn.execute(query))

    rows = _run(work)
    if as_json:
        sys.stdout.write(json.dumps({"endpoints": rows}, ensure_ascii=False) + "\n")
        return
    table = Table("id", "partner", "url", "enabled", "disabled reason", title="webhook endpoints")
    for r in rows:
        table.add_row(r["id"], r["partner_id"], r["url"], str(r["enabled"]), r["disabled_reason"] or "")
    console.print(table)


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    endpoint: Annotated[str, typer.Option(help="The endpoint (whe_...)")],
    status: Annotated[str | None, typer.Option(help="PENDING, RETRYING, SUCCEEDED, FAILED or CANCELLED")] = None,
    first: Annotated[int, typer.Option(help="How many, newest first (at most 100)")] = 20,
    as_json: JsonOption = False,
) -> None:
    """An endpoint's delivery log: one line per attempt."""
    from hub.webhooks import service

    async def work(hub: Hub) -> list[service.Delivery]:
        async with hub.db.read() as conn:
            pk = await _endpoint_pk(conn, endpoint)
            items, _ = await service.deliveries(conn, pk, first=first, after=None, status=status)
        return items

    items = _run(work)
    rows = [
        {
            "id": d.public_id, "event_id": d.event_id, "event_type": d.event_type, "attempt": d.attempt,
            "status": d.status, "response_status": d.response_status, "duration_ms": d.duration_ms,
            "error": d.error, "next_attempt_at": _iso(d.next_attempt_at), "at": d.at.isoformat(),
        }
        for d in items
    ]  # fmt: skip
    if as_json:
        sys.stdout.write(json.dumps({"deliveries": rows}, ensure_ascii=False) + "\n")
        return
    table = Table("at", "event", "type", "attempt", "status", "HTTP", "error", title=f"deliveries to {endpoint}")
    for r in rows:
        table.add_row(*(str(r[k] if r[k] is not None else "") for k in
                        ("at", "event_id", "event_type", "attempt", "status", "response_status", "error")))  # fmt: skip
    console.print(table)


async def _endpoint_pk(conn: Any, public_id: str) -> int:
    from sqlalchemy import select

    from hub.webhooks.models import webhook_endpoint

    pk = await conn.scalar(
        select(webhook_endpoint.c.id).where(
            webhook_endpoint.c.public_id == public_id, webhook_endpoint.c.deleted_at.is_(None)
        )
    )
    if pk is None:
        raise DomainError("WEBHOOK_ENDPOINT_NOT_FOUND", "no such webhook endpoint", "endpoint")
    return int(pk)


@webhooks_app.command("redeliver")
def webhooks_redeliver(
    endpoint: Annotated[str, typer.Option(help="The endpoint (whe_...)")],
    since: Annotated[datetime | None, typer.Option(help="Deliveries created from (ISO 8601)")] = None,
    until: Annotated[datetime | None, typer.Option(help="... until (ISO 8601)")] = None,
    event_id: Annotated[list[str] | None, typer.Option(help="A webhook-id (repeatable)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Send deliveries again, as they were (same webhook-id and body, signed anew)."""
    from sqlalchemy import select

    from hub.webhooks import service
    from hub.webhooks.models import webhook_endpoint

    async def work(hub: Hub) -> int:
        async with hub.db.write() as conn:
            owner = await conn.scalar(
                select(webhook_endpoint.c.partner_id).where(webhook_endpoint.c.id == await _endpoint_pk(conn, endpoint))
            )
            return await service.redeliver(
                conn, int(owner or 0), endpoint, since=_aware(since), until=_aware(until), webhook_ids=event_id,
                now=hub.clock.now(),
            )  # fmt: skip

    count = _run(work)
    _emit(as_json, {"endpoint": endpoint, "redelivering": count}, "redelivery queued")


def _aware(value: datetime | None) -> datetime | None:
    return value if value is None or value.tzinfo is not None else value.replace(tzinfo=UTC)


def _switch(endpoint: str, enabled: bool, as_json: bool) -> None:
    from sqlalchemy import update

    from hub.webhooks.models import webhook_endpoint

    async def work(hub: Hub) -> None:
        async with hub.db.write() as conn:
            pk = await _endpoint_pk(conn, endpoint)
            reason = None if enabled else "disabled by the hub's operator"
            await conn.execute(
                update(webhook_endpoint)
                .where(webhook_endpoint.c.id == pk)
                .values(enabled=enabled, disabled_reason=reason, failing_since=None)
            )

    _run(work)
    _emit(as_json, {"endpoint": endpoint, "enabled": enabled}, "endpoint " + ("enabled" if enabled else "disabled"))


@webhooks_app.command("disable")
def webhooks_disable(
    endpoint: Annotated[str, typer.Option(help="The endpoint (whe_...)")], as_json: JsonOption = False
) -> None:
    """Stop sending to an endpoint (its deliveries wait until it is enabled again)."""
    _switch(endpoint, False, as_json)


@webhooks_app.command("enable")
def webhooks_enable(
    endpoint: Annotated[str, typer.Option(help="The endpoint (whe_...)")], as_json: JsonOption = False
) -> None:
    """Send to an endpoint again."""
    _switch(endpoint, True, as_json)


@webhooks_app.command("catalogue")
def webhooks_catalogue() -> None:
    """Print the event catalogue as Markdown (docs/webhooks.md)."""
    from hub.webhooks.catalogue import document

    sys.stdout.write(document())


@app.command()
def settle(
    period: Annotated[str, typer.Option(help="The month, YYYY-MM")],
    format: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """Print the settlement statement of a month: who owes whom, per issuing and redeeming partner."""
    import csv

    from hub.points import settlement

    if format not in ("table", "csv", "json"):
        err.print("[red]error[/red] INVALID_INPUT: --format must be table, csv or json")
        raise typer.Exit(2)

    async def work(hub: Hub) -> list[settlement.Line]:
        async with hub.db.read() as conn:
            return await settlement.lines(conn, period, hub.settings.points_policy.zone)

    lines = _run(work)
    rows = [
        {
            "issuer_id": x.issuer_id,
            "issuer": x.issuer_name,
            "redeemer_id": x.redeemer_id,
            "redeemer": x.redeemer_name,
            "points": x.points,
            "value_cny": str(x.value),
        }
        for x in lines
    ]
    if format == "json":
        sys.stdout.write(json.dumps({"period": period, "currency": "CNY", "lines": rows}, ensure_ascii=False) + "\n")
    elif format == "csv":
        columns = ["issuer_id", "issuer", "redeemer_id", "redeemer", "points", "value_cny"]
        out = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        out.writeheader()
        out.writerows(rows)
    else:
        table = Table("issuer", "redeemer", "points", "value (CNY)", title=f"settlement {period}")
        for r in rows:
            table.add_row(str(r["issuer"]), str(r["redeemer"]), str(r["points"]), str(r["value_cny"]))
        console.print(table)


# -- demo ------------------------------------------------------------------------------------------------------------
@demo_app.command("seed")
def demo_seed(
    members: Annotated[int, typer.Option(help="How many members to create")] = 300,
    as_json: JsonOption = False,
) -> None:
    """Seed the demo coalition into an empty database and print the demo clients' credentials."""
    from hub import demo

    settings = _settings()

    async def work(hub: Hub) -> list[demo.DemoClient]:
        async with hub.db.write() as conn:
            if await demo.is_seeded(conn):
                err.print("[yellow]the database already has partners; not seeding[/yellow]")
                raise typer.Exit(1)
            return await demo.seed(
                conn,
                now=hub.clock.now(),
                policy=hub.settings.points_policy,
                programme=hub.settings.programme,
                members_count=members,
            )

    clients = _run(work)
    demo.save_credentials(settings.demo_credentials_file, clients)
    _print_demo_clients(clients, as_json)


def _print_demo_clients(clients: list[Any], as_json: bool) -> None:
    from dataclasses import asdict

    if as_json:
        sys.stdout.write(json.dumps({"clients": [asdict(c) for c in clients]}, ensure_ascii=False) + "\n")
        return
    for c in clients:
        _emit(
            False,
            {
                "partner_id": c.partner_id,
                "client_id": c.client_id,
                "client_secret": c.client_secret,
                "scopes": c.scopes,
                **({"redirect_uri": c.redirect_uri} if c.redirect_uri else {}),
            },
            f"{c.partner_name} ({c.kind})",
        )


# -- import ----------------------------------------------------------------------------------------------------------
import_app = typer.Typer(help="Bulk import a chain's existing members and purchase history.", no_args_is_help=True)
app.add_typer(import_app, name="import")


def _import(kind: str, file: Path, partner: str, rejects: Path | None, batch: int | None, as_json: bool) -> None:
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from hub import imports

    if not file.is_file():
        err.print(f"[red]error[/red] INVALID_INPUT: no such file {file}")
        raise typer.Exit(2)
    reject_path = rejects or file.with_suffix(".rejects.csv")
    started = time.monotonic()
    with Progress(
        TextColumn(f"importing {kind}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=as_json,
    ) as bar:
        task = bar.add_task(kind, total=imports.count_lines(file))

        async def work(hub: Hub) -> imports.Report:
            return await imports.run(
                hub,
                kind=kind,
                partner_public_id=partner,
                path=file,
                rejects=reject_path,
                batch=batch,
                progress=lambda lines: bar.advance(task, lines),
            )

        report = _run(work)
    seconds = time.monotonic() - started
    data = {
        "kind": kind,
        "lines": report.total_lines,
        "accepted": report.accepted,
        "rejected": report.rejected,
        "provisional": report.provisional,
        "resumed_after_line": report.resumed_after,
        "rejects_file": str(reject_path),
        "seconds": round(seconds, 2),
    }
    _emit(as_json, data, f"import of {kind} finished" + (" (resumed)" if report.resumed_after else ""))
    if report.rejected and not as_json:
        err.print(f"{report.rejected} rejected: see {reject_path} (line, code, reason, then the row)")
    if report.provisional and not as_json:
        err.print(
            f"{report.provisional} under a phone another partner's member has: provisional until the member "
            "confirms the link in the portal"
        )


@import_app.command("members")
def import_members(
    file: Annotated[Path, typer.Argument(help="CSV: external_id, phone, name, birthday, permissions, ...")],
    partner: Annotated[str, typer.Option(help="The chain's partner id (ptn_...)")],
    rejects: Annotated[Path | None, typer.Option(help="Where rejected rows go (default FILE.rejects.csv)")] = None,
    batch: Annotated[int | None, typer.Option(help="Rows per transaction (default 5000)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Enrol a chain's existing members with their recorded consent. Resumable: run it again after a stop."""
    _import("members", file, partner, rejects, batch, as_json)


@import_app.command("purchases")
def import_purchases(
    file: Annotated[Path, typer.Argument(help="CSV, one row per line: reference, external_id, occurred_at, ...")],
    partner: Annotated[str, typer.Option(help="The chain's partner id (ptn_...)")],
    rejects: Annotated[Path | None, typer.Option(help="Where rejected rows go (default FILE.rejects.csv)")] = None,
    batch: Annotated[int | None, typer.Option(help="Purchases per transaction (default 5000)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Record a chain's purchase history as if each purchase came through the API, in file order. Resumable."""
    _import("purchases", file, partner, rejects, batch, as_json)


# -- programme -------------------------------------------------------------------------------------------------------
programme_app = typer.Typer(help="The programme file: earning rules, tiers, activity caps.", no_args_is_help=True)
app.add_typer(programme_app, name="programme")


@programme_app.command("check")
def programme_check(file: Annotated[Path, typer.Argument(help="A programme TOML file")]) -> None:
    """Validate a programme file; print every problem with its line and key, exit 1 if there is any."""
    from zoneinfo import ZoneInfo

    from hub.programme.config import ProgrammeError, parse

    try:
        programme = parse(file.read_text(encoding="utf-8"), name=file.name, zone=ZoneInfo(_settings().timezone))
    except OSError as exc:
        err.print(f"[red]error[/red] {file}: {exc.strerror}")
        raise typer.Exit(1) from exc
    except ProgrammeError as exc:
        for problem in exc.problems:
            err.print(problem, highlight=False, markup=False)
        raise typer.Exit(1) from exc
    console.print(f"{file}: ok, {len(programme.versions)} version(s)", highlight=False)


@programme_app.command("show")
def programme_show(as_json: JsonOption = False) -> None:
    """Print the rules in force now (HUB_PROGRAMME_FILE, or the built-in defaults)."""
    from dataclasses import asdict

    settings = _settings()
    version = settings.programme.at(datetime.now(UTC))
    window = "lifetime" if version.tiers.window_months is None else f"rolling:{version.tiers.window_months}"
    data = {
        "source": str(settings.programme_file or "built-in defaults"),
        "effective_from": version.effective_from.date().isoformat(),
        "return_window_days": version.return_window_days,
        "earning": asdict(version.earning),
        "tiers": {
            "window": window,
            "grace_days": version.tiers.grace_days,
            "levels": [asdict(level) for level in version.tiers.levels],
        },
        "activities": {kind: asdict(rule) for kind, rule in version.activities.items()},
    }
    if as_json:
        sys.stdout.write(json.dumps(data, default=str, ensure_ascii=False) + "\n")
        return
    console.print(f"rules in force (from {data['source']}, version effective {data['effective_from']})")
    rules = version.earning
    console.print(
        f"earning: {rules.points_per_yuan} point(s) per yuan; birthday month ×{rules.birthday_month_multiplier}; "
        f"prescription lines {'excluded' if rules.exclude_prescription else 'earn'}; insurer-paid lines "
        f"{'excluded' if rules.exclude_insurer_paid else 'earn'}; pending {version.return_window_days} days",
        highlight=False,
    )
    for category, multiplier in rules.category_multipliers.items():
        console.print(f"  category {category}: ×{multiplier}", highlight=False)
    table = Table("level", "name", "threshold (yuan)", "discount", "points ×", "benefits")
    for level in version.tiers.levels:
        perks = [n for n, on in (("birthday gift", level.birthday_gift), ("free health check",
                 level.free_health_check), ("priority purchase", level.priority_purchase)) if on]  # fmt: skip
        table.add_row(
            str(level.level), level.name, str(level.threshold), str(level.discount_rate),
            str(level.points_multiplier), ", ".join(perks),
        )  # fmt: skip
    console.print(table)
    console.print(f"tier window: {window}, grace {version.tiers.grace_days} days", highlight=False)
    for kind, rule in version.activities.items():
        console.print(
            f"activity {kind}: {rule.points} points, at most {rule.per_day} a day and {rule.per_week} a week",
            highlight=False,
        )


# -- schema ----------------------------------------------------------------------------------------------------------
schema_app = typer.Typer(help="The GraphQL schema.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")


@schema_app.command("print")
def schema_print() -> None:
    """Print the SDL partners build against (also served at /schema.graphql)."""
    from hub.schema import build_schema

    sys.stdout.write(build_schema(_settings()).as_str() + "\n")


# -- keys ------------------------------------------------------------------------------------------------------------
@keys_app.command("rotate")
def keys_rotate() -> None:
    """Start signing with a new key; older keys keep verifying the tokens they signed."""
    from hub.auth.keys import KeyStore

    key = KeyStore(_settings().keys_dir).rotate()
    console.print(f"new signing key {key.kid}")


@keys_app.command("prune")
def keys_prune() -> None:
    """Remove keys that have not signed anything for longer than the longest token lifetime."""
    from hub.auth.keys import KeyStore

    settings = _settings()
    removed = KeyStore(settings.keys_dir).prune(older_than_seconds=settings.access_token_ttl + 60)
    console.print(f"removed {len(removed)} key(s)")


@keys_app.command("list")
def keys_list() -> None:
    """List the keys in the JWKS; the last one signs."""
    from hub.auth.keys import KeyStore

    for key in KeyStore(_settings().keys_dir).jwks()["keys"]:
        console.print(key["kid"])


# -- serve -----------------------------------------------------------------------------------------------------------
@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
    demo: Annotated[bool, typer.Option("--demo", help="Migrate, seed the demo coalition if empty, print it")] = False,
) -> None:
    """Serve the hub (GraphQL at /graphql, OAuth at /oauth/*)."""
    import uvicorn

    if not os.environ.get("HUB_ISSUER"):
        # Tokens name their issuer; without configuration that is the address we serve on.
        os.environ["HUB_ISSUER"] = f"http://{host}:{port}"
    if demo:
        # The demo is for a developer's machine: GraphiQL, error detail, sign-in codes in the log.
        os.environ.setdefault("HUB_ENV", "development")
    settings = _settings()
    if demo:
        _prepare_demo(settings)
    console.print(f"hub serving on http://{host}:{port}  (GraphQL: http://{host}:{port}/graphql)")
    uvicorn.run(
        "hub.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_level="info",
        # X-Forwarded-* only from the proxies named in HUB_TRUSTED_PROXIES: anyone else could pick the client
        # address that the sign-in limits count (uvicorn's default trusts 127.0.0.1).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
    )


def _prepare_demo(settings: Settings) -> None:
    from hub import demo

    migrate.upgrade(settings.database_url)

    async def work(hub: Hub) -> list[demo.DemoClient] | None:
        async with hub.db.write() as conn:
            if await demo.is_seeded(conn):
                return None
            return await demo.seed(
                conn, now=hub.clock.now(), policy=hub.settings.points_policy, programme=hub.settings.programme
            )

    clients = _run(work)
    if clients is not None:
        demo.save_credentials(settings.demo_credentials_file, clients)
    else:
        clients = demo.load_credentials(settings.demo_credentials_file)
    if clients:
        _print_demo_clients(clients, as_json=False)
        console.print(
            "get a token:  curl -s -u CLIENT_ID:CLIENT_SECRET -d grant_type=client_credentials "
            f"{settings.issuer}/oauth/token",
            soft_wrap=True,
        )
        console.print(
            f"member portal: {settings.issuer}/portal  (demo member {demo.DEMO_MEMBER_PHONE}; in development the "
            "one-time code is printed in this log)",
            soft_wrap=True,
        )


if __name__ == "__main__":
    app()
