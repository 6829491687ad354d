"""`hub webhooks`: partners' endpoints, their delivery logs, redelivery, and the event catalogue."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from hub.cli.output import JsonOption, Output
from hub.errors import DomainError
from hub.state import Hub

NAME = "webhooks"
app = typer.Typer(help="Partners' webhook endpoints and deliveries.", no_args_is_help=True)
EndpointOption = Annotated[str, typer.Option("--endpoint", help="The endpoint (whe_...)")]


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


@app.command("list")
def webhooks_list(
    partner: Annotated[str | None, typer.Option(help="Only this partner's (ptn_...)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Every live endpoint, with whether it is enabled and why not."""
    out = Output(as_json)
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

    rows = out.run(work)
    out.rows("endpoints", rows, ["id", "partner_id", "url", "enabled", "disabled_reason"], "webhook endpoints")


@app.command("deliveries")
def webhooks_deliveries(
    endpoint: Annotated[str, typer.Option(help="The endpoint (whe_...)")],
    status: Annotated[str | None, typer.Option(help="PENDING, RETRYING, SUCCEEDED, FAILED or CANCELLED")] = None,
    first: Annotated[int, typer.Option(help="How many, newest first (at most 100)")] = 20,
    as_json: JsonOption = False,
) -> None:
    """An endpoint's delivery log: one line per attempt."""
    out = Output(as_json)
    from hub.webhooks import service

    async def work(hub: Hub) -> list[service.Delivery]:
        async with hub.db.read() as conn:
            pk = await _endpoint_pk(conn, endpoint)
            items, _ = await service.deliveries(conn, pk, first=first, after=None, status=status)
        return items

    items = out.run(work)
    rows = [
        {
            "id": d.public_id, "event_id": d.event_id, "event_type": d.event_type, "attempt": d.attempt,
            "status": d.status, "response_status": d.response_status, "duration_ms": d.duration_ms,
            "error": d.error, "next_attempt_at": _iso(d.next_attempt_at), "at": d.at.isoformat(),
        }
        for d in items
    ]  # fmt: skip
    columns = ["at", "event_id", "event_type", "attempt", "status", "response_status", "error"]
    out.rows("deliveries", rows, columns, f"deliveries to {endpoint}")


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


@app.command("redeliver")
def webhooks_redeliver(
    endpoint: Annotated[str, typer.Option(help="The endpoint (whe_...)")],
    since: Annotated[datetime | None, typer.Option(help="Deliveries created from (ISO 8601)")] = None,
    until: Annotated[datetime | None, typer.Option(help="... until (ISO 8601)")] = None,
    event_id: Annotated[list[str] | None, typer.Option(help="A webhook-id (repeatable)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Send deliveries again, as they were (same webhook-id and body, signed anew)."""
    out = Output(as_json)
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

    count = out.run(work)
    out.emit({"endpoint": endpoint, "redelivering": count}, "redelivery queued")


def _aware(value: datetime | None) -> datetime | None:
    return value if value is None or value.tzinfo is not None else value.replace(tzinfo=UTC)


def _switch(endpoint: str, enabled: bool, as_json: bool) -> None:
    out = Output(as_json)
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

    out.run(work)
    out.emit({"endpoint": endpoint, "enabled": enabled}, "endpoint " + ("enabled" if enabled else "disabled"))


@app.command("disable")
def webhooks_disable(
    endpoint: Annotated[str, typer.Option(help="The endpoint (whe_...)")], as_json: JsonOption = False
) -> None:
    """Stop sending to an endpoint (its deliveries wait until it is enabled again)."""
    _switch(endpoint, False, as_json)


@app.command("enable")
def webhooks_enable(
    endpoint: Annotated[str, typer.Option(help="The endpoint (whe_...)")], as_json: JsonOption = False
) -> None:
    """Send to an endpoint again."""
    _switch(endpoint, True, as_json)


@app.command("catalogue")
def webhooks_catalogue(as_json: JsonOption = False) -> None:
    """Print the event catalogue as Markdown (docs/webhooks.md), or with `--json` each type and its schema."""
    from hub.webhooks.catalogue import SUBSCRIBABLE, document

    if not as_json:
        sys.stdout.write(document())
        return
    types = [
        {"name": e.name, "description": e.description, "mandatory": e.mandatory, "schema": e.payload_schema()}
        for e in SUBSCRIBABLE.values()
    ]
    Output(True).json({"event_types": types})
