"""GraphQL for webhooks (scope `webhooks:manage`): a partner's endpoints, their delivery log, the catalogue."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Annotated, TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection
from strawberry.scalars import JSON

from hub.schema.context import Info
from hub.schema.errors import mutation
from hub.schema.pagination import PageInfo
from hub.schema.permissions import scoped
from hub.webhooks import service
from hub.webhooks.catalogue import SUBSCRIBABLE

T = TypeVar("T")


@strawberry.enum
class WebhookErrorCode(Enum):
    INVALID_INPUT = "INVALID_INPUT"
    INVALID_URL = "INVALID_URL"
    FORBIDDEN_ADDRESS = "FORBIDDEN_ADDRESS"
    UNKNOWN_EVENT_TYPE = "UNKNOWN_EVENT_TYPE"
    WEBHOOK_ENDPOINT_NOT_FOUND = "WEBHOOK_ENDPOINT_NOT_FOUND"
    TOO_MANY_ENDPOINTS = "TOO_MANY_ENDPOINTS"
    INVALID_CURSOR = "INVALID_CURSOR"


@strawberry.type
class WebhookError:
    field: str | None
    message: str
    code: WebhookErrorCode


@strawberry.enum
class WebhookDeliveryStatus(Enum):
    PENDING = "PENDING"
    RETRYING = "RETRYING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@strawberry.type(description="One attempt to deliver an event (or a delivery not yet tried).")
class WebhookDelivery:
    id: strawberry.ID
    event_id: str = strawberry.field(description="The webhook-id header: the same on every retry and redelivery")
    event_type: str
    attempt: int
    status: WebhookDeliveryStatus
    response_status: int | None
    duration_ms: int | None
    error: str | None
    next_attempt_at: dt.datetime | None
    at: dt.datetime

    @classmethod
    def of(cls, d: service.Delivery) -> WebhookDelivery:
        return cls(
            id=strawberry.ID(d.public_id), event_id=d.event_id, event_type=d.event_type, attempt=d.attempt,
            status=WebhookDeliveryStatus(d.status), response_status=d.response_status, duration_ms=d.duration_ms,
            error=d.error, next_attempt_at=d.next_attempt_at, at=d.at,
        )  # fmt: skip


@strawberry.type
class WebhookDeliveryEdge:
    cursor: str
    node: WebhookDelivery


@strawberry.type
class WebhookDeliveryConnection:
    edges: list[WebhookDeliveryEdge]
    page_info: PageInfo


@strawberry.type
class WebhookEndpoint:
    id: strawberry.ID
    url: str
    event_types: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None = strawberry.field(description="Why the hub stopped sending (re-enable to resume)")
    created_at: dt.datetime
    pk: strawberry.Private[int]

    @strawberry.field(description="The delivery log, newest first; kept 30 days.")
    async def deliveries(
        self,
        info: Info,
        first: Annotated[int, strawberry.argument(description="At most 100")] = 20,
        after: str | None = None,
        status: WebhookDeliveryStatus | None = None,
    ) -> WebhookDeliveryConnection:
        async with info.context.hub.db.read() as conn:
            items, more = await service.deliveries(
                conn, self.pk, first=first, after=after, status=status.value if status else None
            )
        edges = [WebhookDeliveryEdge(cursor=service.delivery_cursor(d), node=WebhookDelivery.of(d)) for d in items]
        return WebhookDeliveryConnection(
            edges=edges, page_info=PageInfo.of([e.cursor for e in edges], has_next=more, after=after)
        )

    @classmethod
    def of(cls, e: service.Endpoint) -> WebhookEndpoint:
        return cls(
            id=strawberry.ID(e.public_id), url=e.url, event_types=e.event_types, description=e.description,
            enabled=e.enabled, disabled_reason=e.disabled_reason, created_at=e.created_at, pk=e.id,
        )  # fmt: skip


@strawberry.type
class WebhookEventType:
    name: str
    description: str
    mandatory: bool = strawberry.field(description="Sent to every endpoint of the partner concerned, subscribed or not")
    payload_schema: JSON = strawberry.field(description="JSON Schema of the delivery's body")


@strawberry.input
class CreateWebhookEndpointInput:
    url: str = strawberry.field(description="https (http only in development), at most 2,000 characters")
    event_types: list[str]
    description: str | None = None


@strawberry.input
class UpdateWebhookEndpointInput:
    id: strawberry.ID
    url: str | None = None
    event_types: list[str] | None = None
    enabled: bool | None = None
    description: str | None = None


@strawberry.input
class WebhookEndpointIdInput:
    id: strawberry.ID


@strawberry.input
class RedeliverWebhookEventsInput:
    endpoint_id: strawberry.ID
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    event_ids: list[str] | None = strawberry.field(default=None, description="webhook-id values")


@strawberry.input
class SendTestWebhookInput:
    endpoint_id: strawberry.ID


@strawberry.type
class WebhookEndpointPayload:
    endpoint: WebhookEndpoint | None = None
    errors: list[WebhookError]


@strawberry.type
class WebhookSecretPayload:
    endpoint: WebhookEndpoint | None = None
    secret: str | None = strawberry.field(
        default=None, description="whsec_…: shown this once; only the signer can use it later"
    )
    errors: list[WebhookError]


@strawberry.type
class DeleteWebhookEndpointPayload:
    deleted_id: strawberry.ID | None = None
    errors: list[WebhookError]


@strawberry.type
class RedeliverWebhookEventsPayload:
    count: int = strawberry.field(default=0, description="How many deliveries go again")
    errors: list[WebhookError]


@strawberry.type
class SendTestWebhookPayload:
    event_id: str | None = strawberry.field(default=None, description="The webhook-id of the webhook.test delivery")
    errors: list[WebhookError]


async def _write(info: Info, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    async with info.context.hub.db.write() as conn:
        return await work(conn)


def _policy(info: Info) -> dict[str, bool]:
    settings = info.context.hub.settings
    return {"allow_private": settings.webhook_allow_private, "production": not settings.development}


@strawberry.type
class WebhookQueries:
    @strawberry.field(extensions=scoped("webhooks:manage"), description="Your webhook endpoints.")
    async def webhook_endpoints(self, info: Info) -> list[WebhookEndpoint]:
        async with info.context.hub.db.read() as conn:
            return [WebhookEndpoint.of(e) for e in await service.of_partner(conn, info.context.partner_id)]

    @strawberry.field(extensions=scoped("webhooks:manage"), description="Every event type, with its payload schema.")
    def webhook_event_types(self) -> list[WebhookEventType]:
        return [
            WebhookEventType(name=e.name, description=e.description, mandatory=e.mandatory,
                             payload_schema=e.payload_schema())  # type: ignore[arg-type]
            for e in SUBSCRIBABLE.values()
        ]  # fmt: skip


@strawberry.type
class WebhookMutations:
    @mutation(extensions=scoped("webhooks:manage"), description="Register an endpoint; its secret once.")
    async def create_webhook_endpoint(self, info: Info, input: CreateWebhookEndpointInput) -> WebhookSecretPayload:
        ctx = info.context
        done = await _write(
            info,
            lambda conn: service.create(
                conn, ctx.hub.webhook_key, ctx.partner_id, url=input.url, event_types=input.event_types,
                description=input.description, now=ctx.now, **_policy(info),
            ),
        )  # fmt: skip
        endpoint, secret = done
        return WebhookSecretPayload(endpoint=WebhookEndpoint.of(endpoint), secret=secret, errors=[])

    @mutation(extensions=scoped("webhooks:manage"), description="Change, disable or re-enable one.")
    async def update_webhook_endpoint(self, info: Info, input: UpdateWebhookEndpointInput) -> WebhookEndpointPayload:
        ctx = info.context
        done = await _write(
            info,
            lambda conn: service.change(
                conn, ctx.partner_id, str(input.id), url=input.url, event_types=input.event_types,
                enabled=input.enabled, description=input.description, **_policy(info),
            ),
        )  # fmt: skip
        return WebhookEndpointPayload(endpoint=WebhookEndpoint.of(done), errors=[])

    @mutation(extensions=scoped("webhooks:manage"), description="Delete one; what waits is cancelled.")
    async def delete_webhook_endpoint(self, info: Info, input: WebhookEndpointIdInput) -> DeleteWebhookEndpointPayload:
        ctx = info.context
        await _write(info, lambda conn: service.delete(conn, ctx.partner_id, str(input.id), ctx.now))
        return DeleteWebhookEndpointPayload(deleted_id=input.id, errors=[])

    @mutation(
        extensions=scoped("webhooks:manage"),
        description="A new signing secret; the old one keeps signing (a second v1 signature) for 24 hours.",
    )
    async def rotate_webhook_secret(self, info: Info, input: WebhookEndpointIdInput) -> WebhookSecretPayload:
        ctx = info.context
        done = await _write(
            info, lambda conn: service.rotate(conn, ctx.hub.webhook_key, ctx.partner_id, str(input.id), ctx.now)
        )
        return WebhookSecretPayload(endpoint=WebhookEndpoint.of(done[0]), secret=done[1], errors=[])

    @mutation(
        extensions=scoped("webhooks:manage"),
        description="Send events again with their original webhook-id: a window (since, until) or eventIds.",
    )
    async def redeliver_webhook_events(
        self, info: Info, input: RedeliverWebhookEventsInput
    ) -> RedeliverWebhookEventsPayload:
        ctx = info.context
        done = await _write(
            info,
            lambda conn: service.redeliver(
                conn, ctx.partner_id, str(input.endpoint_id), since=input.since, until=input.until,
                webhook_ids=input.event_ids, now=ctx.now,
            ),
        )  # fmt: skip
        return RedeliverWebhookEventsPayload(count=done, errors=[])

    @mutation(extensions=scoped("webhooks:manage"), description="Queue a webhook.test delivery.")
    async def send_test_webhook(self, info: Info, input: SendTestWebhookInput) -> SendTestWebhookPayload:
        ctx = info.context
        done = await _write(
            info,
            lambda conn: service.send_test(conn, ctx.hub.webhook_key, ctx.partner_id, str(input.endpoint_id), ctx.now),
        )
        return SendTestWebhookPayload(event_id=done, errors=[])
