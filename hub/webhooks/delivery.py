"""Turning outbox events into signed deliveries, and sending them: what `hub worker` runs every 250 ms.

Fan-out claims events not yet fanned out (`FOR UPDATE SKIP LOCKED`, so several workers share them) and writes one
delivery per entitled endpoint with the exact body to send: the event projected into what that partner may know
(catalogue.py): its pairwise id for the member, the catalogue's fields, and only if the member's consent in force
covers the data (privacy events excepted). Dispatch claims due deliveries with a 60 s lease, re-checks that
consent, signs (Standard Webhooks, with every live secret of the endpoint), posts through the SSRF-safe
transport at most 4 at a time per endpoint, and records each attempt in one transaction per batch: success (and
the member's access-log row), a retry on the schedule, or a final failure. Nothing here adds a NOTIFY to any write
path: workers poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from standardwebhooks.webhooks import Webhook

from hub.consent import rule
from hub.consent.models import access_log, consent
from hub.db import Database, UtcDateTime
from hub.events.models import event
from hub.ids import new_ids
from hub.members.models import member_link
from hub.observability import metrics
from hub.webhooks.catalogue import CATALOGUE, SUBSCRIBABLE, EventType
from hub.webhooks.crypto import WebhookKey
from hub.webhooks.models import webhook_attempt, webhook_delivery, webhook_endpoint, webhook_secret
from hub.webhooks.transport import Answer, post

# After the 1st, 2nd, ... failed attempt: then the delivery has failed (Svix's schedule, about 28 hours).
SCHEDULE = (timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
            timedelta(hours=5), timedelta(hours=10), timedelta(hours=10))  # fmt: skip
RETRYABLE = frozenset({408, 409, 425, 429})  # and every 5xx; any other 4xx is final
DISABLE_AFTER = timedelta(days=5)
LEASE = timedelta(seconds=60)
PER_ENDPOINT = 16  # connections one worker opens to one endpoint at most
IN_FLIGHT = 512  # deliveries one worker has on the wire at most


def _covers(spec: EventType, in_force: bool | None, permissions: list[str] | None) -> bool:
    """May this event reach the partner: mandatory, or the consent (read with `rule.consent_in_force`) is in force
    and grants the event's permission."""
    if spec.mandatory:
        return True
    return bool(in_force) and (spec.permission is None or spec.permission in (permissions or []))


def _still_covers(spec: EventType, delivery: Any) -> bool:
    """At sending: the consent still covers the event and every conditional field the body shows."""
    if delivery.consent_id is None or spec.mandatory:
        return True
    if not _covers(spec, delivery.in_force, delivery.permissions):
        return False
    granted = {*(delivery.permissions or []), spec.disclosed}
    return spec.relies_on(delivery.body) <= granted


def body_of(spec: EventType, occurred_at: datetime, data: dict[str, Any]) -> str:
    return json.dumps(
        {"type": spec.name, "timestamp": occurred_at.isoformat(), "data": data},
        separators=(",", ":"),
        ensure_ascii=False,
    )


async def fan_out(db: Database, key: WebhookKey, now: datetime, batch: int = 500) -> int:
    """Project a batch of events into deliveries; returns how many events it took."""
    async with db.write() as conn:
        rows = (
            await conn.execute(
                select(event)
                .where(event.c.fanned_out_at.is_(None))
                .order_by(event.c.id)
                .limit(batch)
                .with_for_update(skip_locked=True)
            )
        ).all()
        if not rows:
            return 0
        deliveries = await _project(conn, key, list(rows), now)
        if deliveries:
            for row, public_id in zip(deliveries, new_ids("whd", len(deliveries), 12), strict=True):
                row["public_id"] = public_id
            await conn.execute(insert(webhook_delivery), deliveries)
        await conn.execute(update(event).where(event.c.id.in_([r.id for r in rows])).values(fanned_out_at=now))
    return len(rows)


async def _project(conn: AsyncConnection, key: WebhookKey, rows: list[Any], now: datetime) -> list[dict[str, Any]]:
    endpoints: dict[int, list[Any]] = defaultdict(list)
    for endpoint in await conn.execute(
        select(webhook_endpoint.c.id, webhook_endpoint.c.partner_id, webhook_endpoint.c.event_types).where(
            webhook_endpoint.c.enabled.is_(True), webhook_endpoint.c.deleted_at.is_(None)
        )
    ):
        endpoints[endpoint.partner_id].append(endpoint)
    if not endpoints:
        return []
    members = {r.member_id for r in rows if r.member_id is not None}
    partners = list(endpoints)
    links: dict[int, dict[int, str]] = defaultdict(dict)  # member → partner → pairwise id
    consents: dict[tuple[int, int], Any] = {}
    if members:
        for link in await conn.execute(
            select(member_link.c.member_id, member_link.c.partner_id, member_link.c.pairwise_id).where(
                member_link.c.member_id.in_(members), member_link.c.partner_id.in_(partners)
            )
        ):
            links[link.member_id][link.partner_id] = link.pairwise_id
        for row in await conn.execute(
            select(consent.c.id, consent.c.member_id, consent.c.partner_id, consent.c.permissions,
                   rule.consent_in_force(now).label("in_force"))
            .where(consent.c.member_id.in_(members), consent.c.partner_id.in_(partners))
        ):  # fmt: skip
            consents[(row.member_id, row.partner_id)] = row
    deliveries: list[dict[str, Any]] = []
    for ev in rows:
        spec = CATALOGUE.get(ev.type)
        if spec is None:
            continue  # an internal event no partner hears of (partner.funded, ...)
        if spec.audience == "member":
            recipients = [p for p in links.get(ev.member_id, {}) if p in endpoints]
        else:
            recipients = [ev.partner_id] if ev.partner_id in endpoints else []
        for partner_id in recipients:
            pairwise_id = links.get(ev.member_id, {}).get(partner_id)
            if pairwise_id is None:
                continue  # not (or no longer) linked: nothing to say, and nothing said about anyone
            given = consents.get((ev.member_id, partner_id))
            if not _covers(spec, given and given.in_force, given and given.permissions):
                continue
            data = spec.data(pairwise_id, ev.payload, list(given.permissions) if given is not None else [])
            body = body_of(spec, ev.occurred_at, data)
            webhook_id = key.webhook_id(partner_id, ev.id)
            for endpoint in endpoints[partner_id]:
                if not spec.mandatory and spec.name not in endpoint.event_types:
                    continue
                deliveries.append(
                    {
                        "event_id": ev.id,
                        "endpoint_id": endpoint.id,
                        "member_id": ev.member_id,
                        "consent_id": given.id if given is not None else None,
                        "event_type": spec.name,
                        "webhook_id": webhook_id,
                        "body": body,
                        "status": "PENDING",
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                )
    return deliveries


@dataclass
class Dispatcher:
    """One per worker process: its HTTP client, the endpoints' decrypted secrets, per-endpoint concurrency."""

    db: Database
    key: WebhookKey
    client: aiohttp.ClientSession
    allow_private: bool
    _limits: dict[int, asyncio.Semaphore] = field(default_factory=dict)
    _signers: dict[str, Webhook] = field(default_factory=dict)

    async def dispatch(self, now: datetime, batch: int = 200) -> int:
        claimed = await self.claim(now, batch)
        if not claimed:
            return 0
        secrets = await self.secrets({d.endpoint_id for d in claimed}, now)
        results = await asyncio.gather(*(self.send(d, secrets.get(d.endpoint_id, []), now) for d in claimed))
        await self.record(list(zip(claimed, results, strict=True)), now)
        return len(claimed)

    async def claim(self, now: datetime, batch: int) -> list[Any]:
        async with self.db.write() as conn:
            rows = (
                await conn.execute(
                    select(
                        webhook_delivery.c.id, webhook_delivery.c.endpoint_id, webhook_delivery.c.webhook_id,
                        webhook_delivery.c.body, webhook_delivery.c.attempts, webhook_delivery.c.event_type,
                        webhook_delivery.c.member_id, webhook_delivery.c.consent_id, webhook_endpoint.c.url,
                        webhook_endpoint.c.partner_id, consent.c.permissions,
                        rule.consent_in_force(now).label("in_force"),
                        func.coalesce(event.c.occurred_at, webhook_delivery.c.created_at).label("happened_at"),
                    )
                    .join(webhook_endpoint, webhook_endpoint.c.id == webhook_delivery.c.endpoint_id)
                    .outerjoin(event, event.c.id == webhook_delivery.c.event_id)
                    .outerjoin(consent, consent.c.id == webhook_delivery.c.consent_id)
                    .where(
                        webhook_delivery.c.status.in_(("PENDING", "RETRYING")),
                        webhook_delivery.c.next_attempt_at <= now,
                        or_(webhook_delivery.c.locked_until.is_(None), webhook_delivery.c.locked_until < now),
                        webhook_endpoint.c.enabled.is_(True),
                    )
                    .order_by(webhook_delivery.c.next_attempt_at, webhook_delivery.c.id)
                    .limit(batch)
                    .with_for_update(of=webhook_delivery, skip_locked=True)
                )
            ).all()  # fmt: skip
            if rows:
                await conn.execute(
                    update(webhook_delivery)
                    .where(webhook_delivery.c.id.in_([r.id for r in rows]))
                    .values(locked_until=now + LEASE)
                )
        return list(rows)

    async def secrets(self, endpoint_ids: set[int], now: datetime) -> dict[int, list[str]]:
        found: dict[int, list[str]] = defaultdict(list)
        async with self.db.read() as conn:
            for row in await conn.execute(
                select(webhook_secret.c.endpoint_id, webhook_secret.c.secret)
                .where(
                    webhook_secret.c.endpoint_id.in_(endpoint_ids),
                    or_(webhook_secret.c.retires_at.is_(None), webhook_secret.c.retires_at > now),
                )
                .order_by(webhook_secret.c.id.desc())
            ):
                found[row.endpoint_id].append(self.key.open(row.secret))
        return found

    def _signer(self, secret: str) -> Webhook:
        signer = self._signers.get(secret)
        if signer is None:
            signer = self._signers[secret] = Webhook(secret)
        return signer

    async def send(self, delivery: Any, secrets: list[str], now: datetime) -> Answer | None:
        """The answer, or None when the delivery may no longer be sent (the consent behind it ended)."""
        spec = SUBSCRIBABLE[delivery.event_type]
        if not _still_covers(spec, delivery):
            return None
        if not secrets:
            return Answer(None, "the endpoint has no signing secret", None, 0)
        sent_at = datetime.now(now.tzinfo)  # the receiver checks this against its own clock
        signature = " ".join(self._signer(s).sign(delivery.webhook_id, sent_at, delivery.body) for s in secrets)
        headers = {
            "webhook-id": delivery.webhook_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": signature,
            "User-Agent": "hub-webhooks/1",
        }
        limit = self._limits.setdefault(delivery.endpoint_id, asyncio.Semaphore(PER_ENDPOINT))
        async with limit:  # one slow receiver holds at most PER_ENDPOINT of this worker's connections
            return await post(
                self.client, delivery.url, headers, delivery.body.encode(), allow_private=self.allow_private
            )

    async def record(self, done: list[tuple[Any, Answer | None]], now: datetime) -> None:
        """Write a batch of outcomes in one transaction, a few statements whatever its size."""
        cancelled: list[dict[str, Any]] = []
        settled: list[dict[str, Any]] = []
        attempts: list[dict[str, Any]] = []
        logged: list[dict[str, Any]] = []
        health: dict[int, list[Answer]] = defaultdict(list)
        for delivery, answer in done:
            if answer is None:
                cancelled.append({"b_id": delivery.id})
                metrics.WEBHOOK_DELIVERIES.labels("cancelled").inc()
                continue
            attempt = delivery.attempts + 1
            ok = answer.status is not None and 200 <= answer.status < 300
            metrics.WEBHOOK_DELIVERIES.labels("succeeded" if ok else "failed").inc()
            if ok:
                metrics.WEBHOOK_LAG.observe((datetime.now(UTC) - delivery.happened_at).total_seconds())
            status, next_at = _outcome(answer, attempt, now)
            settled.append({"b_id": delivery.id, "b_status": status, "b_attempts": attempt, "b_next": next_at})
            attempts.append(
                {
                    "delivery_id": delivery.id, "attempt": attempt, "status": "SUCCEEDED" if ok else "FAILED",
                    "response_status": answer.status, "duration_ms": answer.duration_ms,
                    "error": (answer.error or "")[:300] or None, "at": now,
                }
            )  # fmt: skip
            spec = SUBSCRIBABLE[delivery.event_type]
            if ok and delivery.member_id and delivery.consent_id:
                # The delivery told the partner about the member: the member sees it in their access log.
                logged.append(
                    {
                        "member_id": delivery.member_id, "partner_id": delivery.partner_id,
                        "consent_id": delivery.consent_id,
                        "categories": " ".join(sorted(spec.relies_on(delivery.body))),
                        "occurred_at": now, "via": f"webhook:{spec.name}",
                    }
                )  # fmt: skip
            health[delivery.endpoint_id].append(answer)
        async with self.db.write() as conn:
            if cancelled:
                await conn.execute(_CANCEL, cancelled)
            if settled:
                await conn.execute(_SETTLE, settled)
            if attempts:
                await conn.execute(insert(webhook_attempt), attempts)
            if logged:
                await conn.execute(insert(access_log), logged)
            for endpoint_id, answers in health.items():
                await _endpoint_health(conn, endpoint_id, answers, now)


_SETTLE = (
    update(webhook_delivery)
    .where(webhook_delivery.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        attempts=bindparam("b_attempts"),
        next_attempt_at=bindparam("b_next", type_=UtcDateTime()),
        locked_until=None,
    )
)
_CANCEL = (
    update(webhook_delivery)
    .where(webhook_delivery.c.id == bindparam("b_id"))
    .values(status="CANCELLED", next_attempt_at=None, locked_until=None)
)


def _outcome(answer: Answer, attempt: int, now: datetime) -> tuple[str, datetime | None]:
    status = answer.status
    if status is not None and 200 <= status < 300:
        return "SUCCEEDED", None
    if status is not None and 400 <= status < 500 and status not in RETRYABLE:
        return "FAILED", None  # the receiver refused it: sending it again would not change its mind
    if attempt > len(SCHEDULE):
        return "FAILED", None
    delay = SCHEDULE[attempt - 1].total_seconds() * random.uniform(0.9, 1.1)
    if answer.retry_after is not None:
        delay = min(max(answer.retry_after, 1.0), 24 * 3600.0)
    return "RETRYING", now + timedelta(seconds=delay)


async def _endpoint_health(conn: AsyncConnection, endpoint_id: int, answers: list[Answer], now: datetime) -> None:
    """After a batch: any success clears the failure clock; 410 disables; five days of nothing but failure too."""
    if any(a.status is not None and 200 <= a.status < 300 for a in answers):
        await conn.execute(
            update(webhook_endpoint)
            .where(webhook_endpoint.c.id == endpoint_id, webhook_endpoint.c.failing_since.is_not(None))
            .values(failing_since=None)
        )
        return
    if any(a.status == 410 for a in answers):
        await disable(conn, endpoint_id, "the receiver answered 410 Gone")
        return
    since = await conn.scalar(select(webhook_endpoint.c.failing_since).where(webhook_endpoint.c.id == endpoint_id))
    if since is None:
        await conn.execute(
            update(webhook_endpoint).where(webhook_endpoint.c.id == endpoint_id).values(failing_since=now)
        )
    elif since <= now - DISABLE_AFTER:
        await disable(conn, endpoint_id, "every delivery failed for 5 days")


async def disable(conn: AsyncConnection, endpoint_id: int, reason: str) -> None:
    """Stop sending to an endpoint; what waits for it stays, to go when the partner re-enables it."""
    await conn.execute(
        update(webhook_endpoint)
        .where(webhook_endpoint.c.id == endpoint_id, webhook_endpoint.c.enabled.is_(True))
        .values(enabled=False, disabled_reason=reason)
    )


async def prune(db: Database, now: datetime, keep: timedelta) -> int:
    """Forget deliveries (and their attempts) older than the retention period, settled ones only."""
    async with db.write() as conn:
        old = select(webhook_delivery.c.id).where(
            and_(webhook_delivery.c.created_at < now - keep,
                 webhook_delivery.c.status.in_(("SUCCEEDED", "FAILED", "CANCELLED")))
        ).limit(5000)  # fmt: skip
        ids = list((await conn.scalars(old)).all())
        if ids:
            await conn.execute(delete(webhook_attempt).where(webhook_attempt.c.delivery_id.in_(ids)))
            await conn.execute(delete(webhook_delivery).where(webhook_delivery.c.id.in_(ids)))
    return len(ids)


async def run(db: Database, dispatcher: Dispatcher, clock: Any, stop: asyncio.Event, idle: float = 0.25) -> None:
    """The worker's webhook loop. Sends run as tasks, so a slow receiver holds only its own deliveries (and at most
    PER_ENDPOINT connections) while the loop keeps fanning out, claiming and recording the others' outcomes in
    batches. Back to back while there is work; a `idle` wait when there is none."""
    inflight: set[asyncio.Task[None]] = set()
    done: list[tuple[Any, Answer | None]] = []

    async def send(delivery: Any, secrets: list[str], now: datetime) -> None:
        done.append((delivery, await dispatcher.send(delivery, secrets, now)))

    while not stop.is_set() or inflight:
        now = clock.now()
        fanned = 0 if stop.is_set() else await fan_out(db, dispatcher.key, now)
        room = IN_FLIGHT - len(inflight)
        claimed = await dispatcher.claim(now, min(room, 200)) if room > 0 and not stop.is_set() else []
        if claimed:
            secrets = await dispatcher.secrets({d.endpoint_id for d in claimed}, now)
            for d in claimed:
                task = asyncio.create_task(send(d, secrets.get(d.endpoint_id, []), now))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
        if done:
            batch, done[:] = done[:], []
            await dispatcher.record(batch, now)
        elif not fanned and not claimed:
            if inflight:
                await asyncio.wait(inflight, timeout=idle, return_when=asyncio.FIRST_COMPLETED)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), idle)
    if done:
        await dispatcher.record(done, clock.now())
