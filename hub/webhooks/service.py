"""Webhook endpoints as a partner manages them: every read and write takes the partner, and another partner's
endpoint looks exactly like a missing one (WEBHOOK_ENDPOINT_NOT_FOUND)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub import cursors
from hub.errors import DomainError
from hub.ids import new_id
from hub.webhooks.catalogue import SUBSCRIBABLE, WEBHOOK_TEST
from hub.webhooks.crypto import WebhookKey, new_secret
from hub.webhooks.models import webhook_attempt, webhook_delivery, webhook_endpoint, webhook_secret
from hub.webhooks.transport import forbidden

MAX_URL = 2000
ROTATION_OVERLAP = timedelta(hours=24)
MAX_ENDPOINTS = 20


@dataclass(frozen=True)
class Endpoint:
    id: int
    public_id: str
    url: str
    event_types: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None
    created_at: datetime


@dataclass(frozen=True)
class Delivery:
    public_id: str
    event_id: str
    event_type: str
    attempt: int
    status: str
    response_status: int | None
    duration_ms: int | None
    error: str | None
    next_attempt_at: datetime | None
    at: datetime


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(
        row.id, row.public_id, row.url, list(row.event_types), row.description, row.enabled, row.disabled_reason,
        row.created_at,
    )  # fmt: skip


def check_url(url: str, *, allow_private: bool, production: bool) -> str:
    if len(url) > MAX_URL:
        raise DomainError("INVALID_URL", f"the URL is longer than {MAX_URL} characters", "url")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (a bad port raises here)
    except ValueError:
        raise DomainError("INVALID_URL", "not a URL", "url") from None
    # Plain http only for receivers on this machine or network, in development and tests.
    allowed = ("https",) if production and not allow_private else ("https", "http")
    if parts.scheme not in allowed or not host:
        raise DomainError("INVALID_URL", f"the URL must be {' or '.join(allowed)} with a host", "url")
    if parts.username is not None or parts.password is not None:
        raise DomainError("INVALID_URL", "the URL may not carry credentials", "url")
    if parts.fragment:
        raise DomainError("INVALID_URL", "the URL may not carry a fragment", "url")
    try:
        literal = ip_address(host)
    except ValueError:
        local = host == "localhost" or host.endswith((".localhost", ".local", ".internal"))
        if local and not allow_private:
            raise DomainError("FORBIDDEN_ADDRESS", "the URL points at this network", "url") from None
    else:
        if forbidden(literal, allow_private):
            raise DomainError("FORBIDDEN_ADDRESS", "the URL points at a private or reserved address", "url")
    return url


def check_event_types(event_types: list[str]) -> list[str]:
    if not event_types:
        raise DomainError("INVALID_INPUT", "subscribe to at least one event type", "eventTypes")
    unknown = sorted(set(event_types) - SUBSCRIBABLE.keys())
    if unknown:
        raise DomainError("UNKNOWN_EVENT_TYPE", f"unknown event type(s): {', '.join(unknown)}", "eventTypes")
    return sorted(set(event_types))


def _check_description(description: str | None) -> None:
    if description is not None and len(description) > 200:
        raise DomainError("INVALID_INPUT", "description must be at most 200 characters", "description")


async def _own(conn: AsyncConnection, partner_id: int, public_id: str, *, lock: bool = False) -> Any:
    query = select(webhook_endpoint).where(
        webhook_endpoint.c.public_id == public_id,
        webhook_endpoint.c.partner_id == partner_id,
        webhook_endpoint.c.deleted_at.is_(None),
    )
    row = (await conn.execute(query.with_for_update() if lock else query)).one_or_none()
    if row is None:
        raise DomainError("WEBHOOK_ENDPOINT_NOT_FOUND", "no such webhook endpoint", "id")
    return row


async def create(
    conn: AsyncConnection,
    key: WebhookKey,
    partner_id: int,
    *,
    url: str,
    event_types: list[str],
    description: str | None,
    now: datetime,
    allow_private: bool,
    production: bool,
) -> tuple[Endpoint, str]:
    """A new endpoint and its signing secret (returned once; stored encrypted)."""
    check_url(url, allow_private=allow_private, production=production)
    types = check_event_types(event_types)
    _check_description(description)
    count = len((await conn.execute(select(webhook_endpoint.c.id).where(
        webhook_endpoint.c.partner_id == partner_id, webhook_endpoint.c.deleted_at.is_(None)))).all())  # fmt: skip
    if count >= MAX_ENDPOINTS:
        raise DomainError("TOO_MANY_ENDPOINTS", f"at most {MAX_ENDPOINTS} endpoints a partner", "url")
    public_id = new_id("whe", 12)
    endpoint_id = await conn.scalar(
        insert(webhook_endpoint)
        .values(
            public_id=public_id, partner_id=partner_id, url=url, event_types=types, description=description,
            enabled=True, created_at=now,
        )
        .returning(webhook_endpoint.c.id)
    )  # fmt: skip
    secret = new_secret()
    await conn.execute(insert(webhook_secret).values(endpoint_id=endpoint_id, secret=key.seal(secret), created_at=now))
    assert endpoint_id is not None
    return Endpoint(int(endpoint_id), public_id, url, types, description, True, None, now), secret


async def change(
    conn: AsyncConnection,
    partner_id: int,
    public_id: str,
    *,
    url: str | None,
    event_types: list[str] | None,
    enabled: bool | None,
    description: str | None,
    allow_private: bool,
    production: bool,
) -> Endpoint:
    row = await _own(conn, partner_id, public_id, lock=True)
    values: dict[str, Any] = {}
    if url is not None:
        values["url"] = check_url(url, allow_private=allow_private, production=production)
    if event_types is not None:
        values["event_types"] = check_event_types(event_types)
    if description is not None:
        _check_description(description)
        values["description"] = description
    if enabled is not None:
        # Re-enabling starts the failure clock afresh; disabling by hand says so.
        values.update(enabled=enabled, disabled_reason=None if enabled else "disabled by you", failing_since=None)
    if values:
        await conn.execute(update(webhook_endpoint).where(webhook_endpoint.c.id == row.id).values(**values))
    return _endpoint((await conn.execute(select(webhook_endpoint).where(webhook_endpoint.c.id == row.id))).one())


async def delete(conn: AsyncConnection, partner_id: int, public_id: str, now: datetime) -> None:
    """Gone for the partner at once; its deliveries still waiting are cancelled."""
    row = await _own(conn, partner_id, public_id, lock=True)
    await conn.execute(
        update(webhook_endpoint).where(webhook_endpoint.c.id == row.id).values(deleted_at=now, enabled=False)
    )
    await _cancel_waiting(conn, row.id)


async def _cancel_waiting(conn: AsyncConnection, endpoint_id: int) -> None:
    await conn.execute(
        update(webhook_delivery)
        .where(webhook_delivery.c.endpoint_id == endpoint_id, webhook_delivery.c.status.in_(("PENDING", "RETRYING")))
        .values(status="CANCELLED", next_attempt_at=None)
    )


async def rotate(
    conn: AsyncConnection, key: WebhookKey, partner_id: int, public_id: str, now: datetime
) -> tuple[Endpoint, str]:
    """A new secret; the ones before it keep signing for 24 hours (each delivery carries every signature)."""
    row = await _own(conn, partner_id, public_id, lock=True)
    await conn.execute(
        update(webhook_secret)
        .where(webhook_secret.c.endpoint_id == row.id, webhook_secret.c.retires_at.is_(None))
        .values(retires_at=now + ROTATION_OVERLAP)
    )
    secret = new_secret()
    await conn.execute(insert(webhook_secret).values(endpoint_id=row.id, secret=key.seal(secret), created_at=now))
    return _endpoint(row), secret


async def of_partner(conn: AsyncConnection, partner_id: int) -> list[Endpoint]:
    rows = await conn.execute(
        select(webhook_endpoint)
        .where(webhook_endpoint.c.partner_id == partner_id, webhook_endpoint.c.deleted_at.is_(None))
        .order_by(webhook_endpoint.c.id)
    )
    return [_endpoint(r) for r in rows]


MAX_PAGE = 100


async def deliveries(
    conn: AsyncConnection, endpoint_id: int, *, first: int, after: str | None, status: str | None
) -> tuple[list[Delivery], bool]:
    """The endpoint's delivery log, newest first: one entry per attempt (and one for a delivery not tried yet)."""
    if not 0 <= first <= MAX_PAGE:
        raise DomainError("INVALID_INPUT", f"first must be between 0 and {MAX_PAGE}", "first")
    query = (
        select(
            webhook_delivery.c.id,
            webhook_delivery.c.public_id,
            webhook_delivery.c.webhook_id,
            webhook_delivery.c.event_type,
            webhook_delivery.c.status.label("delivery_status"),
            webhook_delivery.c.next_attempt_at,
            webhook_delivery.c.created_at,
            webhook_attempt.c.attempt,
            webhook_attempt.c.status,
            webhook_attempt.c.response_status,
            webhook_attempt.c.duration_ms,
            webhook_attempt.c.error,
            webhook_attempt.c.at,
        )
        .select_from(webhook_delivery)
        .outerjoin(webhook_attempt, webhook_attempt.c.delivery_id == webhook_delivery.c.id)
        .where(webhook_delivery.c.endpoint_id == endpoint_id)
    )
    if status is not None:
        query = query.where(webhook_delivery.c.status == status)
    if after:
        public_id, _, attempt = cursors.decode(after, "whd_").rpartition(":")
        if not attempt.isdigit():
            raise DomainError("INVALID_CURSOR", "the cursor is not one this API returned", "after")
        seen = select(webhook_delivery.c.id).where(webhook_delivery.c.public_id == public_id).scalar_subquery()
        query = query.where(
            (webhook_delivery.c.id < seen)
            | ((webhook_delivery.c.id == seen) & (func.coalesce(webhook_attempt.c.attempt, 0) < int(attempt)))
        )
    query = query.order_by(webhook_delivery.c.id.desc(), webhook_attempt.c.attempt.desc()).limit(first + 1)
    rows = (await conn.execute(query)).all()
    items = [
        Delivery(
            public_id=f"{r.public_id}:{r.attempt or 0}",
            event_id=r.webhook_id,
            event_type=r.event_type,
            attempt=r.attempt or 0,
            status=r.status or r.delivery_status,
            response_status=r.response_status,
            duration_ms=r.duration_ms,
            error=r.error,
            next_attempt_at=r.next_attempt_at,
            at=r.at or r.created_at,
        )
        for r in rows[:first]
    ]
    return items, len(rows) > first


def delivery_cursor(delivery: Delivery) -> str:
    """A page cursor: the delivery's public id and the attempt's number, nothing internal."""
    return cursors.encode(delivery.public_id)


async def endpoint_pk(conn: AsyncConnection, partner_id: int, public_id: str) -> int:
    return int((await _own(conn, partner_id, public_id)).id)


async def redeliver(
    conn: AsyncConnection,
    partner_id: int,
    public_id: str,
    *,
    since: datetime | None,
    until: datetime | None,
    webhook_ids: list[str] | None,
    now: datetime,
) -> int:
    """Send those deliveries again, as they were (same `webhook-id`, same body, signed anew); how many."""
    row = await _own(conn, partner_id, public_id)
    if since is None and until is None and not webhook_ids:
        raise DomainError("INVALID_INPUT", "name the events: since and until, or eventIds", "eventIds")
    if webhook_ids is not None and len(webhook_ids) > 1000:
        raise DomainError("INVALID_INPUT", "at most 1000 eventIds at once", "eventIds")
    where = [webhook_delivery.c.endpoint_id == row.id, webhook_delivery.c.status != "CANCELLED"]
    if since is not None:
        where.append(webhook_delivery.c.created_at >= since)
    if until is not None:
        where.append(webhook_delivery.c.created_at <= until)
    if webhook_ids:
        where.append(webhook_delivery.c.webhook_id.in_(webhook_ids))
    chosen = (await conn.execute(select(webhook_delivery.c.id).where(*where).limit(10_001))).scalars().all()
    if len(chosen) > 10_000:
        raise DomainError("INVALID_INPUT", "at most 10,000 deliveries at once: narrow the window", "since")
    if chosen:
        await conn.execute(
            update(webhook_delivery)
            .where(webhook_delivery.c.id.in_(chosen))
            .values(status="PENDING", next_attempt_at=now, locked_until=None)
        )
    return len(chosen)


async def send_test(conn: AsyncConnection, key: WebhookKey, partner_id: int, public_id: str, now: datetime) -> str:
    """Queue a `webhook.test` delivery to the endpoint; returns its webhook id."""
    row = await _own(conn, partner_id, public_id)
    body = json.dumps(
        {"type": WEBHOOK_TEST.name, "timestamp": now.isoformat(),
         "data": {"endpointId": row.public_id, "message": "hello from hub"}},
        separators=(",", ":"), ensure_ascii=False,
    )  # fmt: skip
    webhook_id = new_id("msg", 16)  # no event behind it: nothing for two partners to share
    await conn.execute(
        insert(webhook_delivery).values(
            public_id=new_id("whd", 12), event_id=None, endpoint_id=row.id, member_id=None, consent_id=None,
            event_type=WEBHOOK_TEST.name, webhook_id=webhook_id, body=body, status="PENDING", attempts=0,
            next_attempt_at=now, created_at=now,
        )
    )  # fmt: skip
    return webhook_id
