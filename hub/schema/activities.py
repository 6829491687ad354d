"""GraphQL for health activities (insurers' checks, gyms' visits): points granted within the programme's caps."""

from __future__ import annotations

import datetime as dt
from enum import Enum

import strawberry

from hub.activities import service as activities
from hub.idempotency import retrying
from hub.schema.context import Info
from hub.schema.errors import mutation
from hub.schema.members import Member, member_of
from hub.schema.permissions import scoped
from hub.schema.purchases import PurchaseError


@strawberry.enum
class ActivityKind(Enum):
    GYM_VISIT = "GYM_VISIT"
    WORKOUT = "WORKOUT"
    HEALTH_CHECK = "HEALTH_CHECK"
    VACCINATION = "VACCINATION"


@strawberry.input
class RecordActivityInput:
    member_id: strawberry.ID
    kind: ActivityKind
    occurred_at: dt.datetime
    reference: str
    idempotency_key: str


@strawberry.type
class ActivityType:
    id: strawberry.ID
    kind: ActivityKind
    reference: str
    points_granted: int
    points_capped: int = strawberry.field(description="Points the per-day or per-week cap withheld")


@strawberry.type
class RecordActivityPayload:
    activity: ActivityType | None = None
    member: Member | None = None
    errors: list[PurchaseError]


@strawberry.type
class ActivityMutations:
    @mutation(extensions=scoped("activity:write"), description="Record a verified health activity: points within caps.")
    async def record_activity(self, info: Info, input: RecordActivityInput) -> RecordActivityPayload:
        ctx, settings = info.context, info.context.hub.settings
        cmd = activities.RecordActivity(
            member_id=str(input.member_id),
            kind=input.kind.value,
            occurred_at=input.occurred_at,
            reference=input.reference,
            idempotency_key=input.idempotency_key,
        )
        found = await retrying(
            ctx.hub.db,
            lambda conn: activities.record(
                conn, ctx.partner_id, cmd, now=ctx.now, programme=settings.programme, policy=settings.points_policy
            ),
        )
        return RecordActivityPayload(
            activity=ActivityType(
                id=strawberry.ID(found.public_id),
                kind=ActivityKind(found.kind),
                reference=found.reference,
                points_granted=found.points_granted,
                points_capped=found.points_capped,
            ),
            member=await member_of(info, found.member_id),
            errors=[],
        )
