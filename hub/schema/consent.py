"""GraphQL for consent as the partner sees it: its own consent with a member, asking for more, ending it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from enum import Enum

import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection
from strawberry.types.nodes import SelectedField

from hub.consent import requests as consent_requests
from hub.consent import service
from hub.consent.models import CONSENT_STATUSES
from hub.errors import DomainError
from hub.members import service as members
from hub.members.service import MemberView
from hub.schema.batches import Batch, answer
from hub.schema.context import Context, Info
from hub.schema.errors import mutation
from hub.schema.permissions import scoped


@strawberry.enum(description="Where a consent stands")
class ConsentStatus(Enum):
    AWAITING_AUTHORISATION = "AWAITING_AUTHORISATION"
    AUTHORISED = "AUTHORISED"
    REJECTED = "REJECTED"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"


assert {c.value for c in ConsentStatus} == set(CONSENT_STATUSES)


@strawberry.type
class Consent:
    id: strawberry.ID
    status: ConsentStatus
    permissions: list[str]
    purposes: list[str]
    expires_at: dt.datetime | None
    data_window_from: dt.datetime | None = strawberry.field(description="No data older than this is shared")
    version: int
    updated_at: dt.datetime

    @classmethod
    def of(cls, view: service.ConsentView) -> Consent:
        return cls(
            id=strawberry.ID(view.public_id),
            status=ConsentStatus(view.status),
            permissions=view.permissions,
            purposes=view.purposes,
            expires_at=view.expires_at,
            data_window_from=view.data_window_from,
            version=view.version,
            updated_at=view.updated_at,
        )


async def _own(ctx: Context, views: Sequence[MemberView]) -> Sequence[list[service.ConsentView]]:
    async with ctx.hub.db.read() as conn:
        return await service.of_partner_members(conn, ctx.partner_id, views, ctx.now)


OWN_CONSENTS = Batch(("consent.own",), _own)


def consents_needs(selected: SelectedField) -> list[Batch]:
    return [OWN_CONSENTS]


def member_consents(info: Info, view: MemberView) -> list[Consent]:
    """`Member.consents`: the caller's own consent with the member."""
    return [Consent.of(c) for c in answer(info, OWN_CONSENTS, view)]


@strawberry.type
class ConsentRequest:
    id: strawberry.ID
    status: ConsentStatus
    permissions: list[str]
    purposes: list[str]
    expires_at: dt.datetime | None


@strawberry.enum
class ConsentErrorCode(Enum):
    INVALID_INPUT = "INVALID_INPUT"
    MEMBER_NOT_FOUND = "MEMBER_NOT_FOUND"
    EXPIRY_REQUIRED = "EXPIRY_REQUIRED"
    CONSENT_NOT_ACTIVE = "CONSENT_NOT_ACTIVE"


@strawberry.type
class ConsentError:
    field: str | None
    message: str
    code: ConsentErrorCode


@strawberry.input
class RequestConsentInput:
    member_id: strawberry.ID
    permissions: list[str]
    purposes: list[str] = strawberry.field(description="What the data is for, shown to the member")
    expires_at: dt.datetime | None = strawberry.field(
        default=None, description="When the consent ends; required for health-related permissions"
    )
    data_window_from: dt.datetime | None = strawberry.field(
        default=None, description="Ask only for data from this date on (e.g. purchases since the policy started)"
    )


@strawberry.type
class RequestConsentPayload:
    consent_request: ConsentRequest | None = None
    errors: list[ConsentError]


@strawberry.input
class RevokeConsentInput:
    member_id: strawberry.ID
    reason: str | None = None


@strawberry.type
class RevokeConsentPayload:
    consent: Consent | None = None
    errors: list[ConsentError]


async def _linked_member_id(conn: AsyncConnection, info: Info, pairwise_id: str) -> int:
    """The member behind the partner's id, consent or not: a partner may ask for, or end, a consent not in force."""
    member_id = await members.linked_member_id(conn, info.context.partner_id, pairwise_id)
    if member_id is None:
        raise DomainError("MEMBER_NOT_FOUND", "no such member", "memberId")
    return member_id


@strawberry.type
class ConsentMutations:
    @mutation(
        extensions=scoped("consent:request"),
        description="End your own consent with a member (they asked you to); you no longer see them.",
    )
    async def revoke_consent(self, info: Info, input: RevokeConsentInput) -> RevokeConsentPayload:
        ctx = info.context
        assert ctx.principal is not None
        if input.reason is not None and len(input.reason) > 200:
            raise DomainError("INVALID_INPUT", "at most 200 characters", "reason")
        async with ctx.hub.db.write() as conn:
            member_id = await _linked_member_id(conn, info, str(input.member_id))
            await service.revoke_by_partner(
                conn,
                ctx.partner_id,
                member_id,
                reason=input.reason,
                now=ctx.now,
                actor=f"partner:{ctx.principal.partner.public_id}",
            )
            [view] = await service.of_member(conn, member_id, ctx.now, partner_id=ctx.partner_id)
        return RevokeConsentPayload(consent=Consent.of(view), errors=[])

    @mutation(extensions=scoped("consent:request"), description="Ask a member for consent; they decide in the portal.")
    async def request_consent(self, info: Info, input: RequestConsentInput) -> RequestConsentPayload:
        ctx = info.context
        assert ctx.principal is not None
        permissions = service.validate_permissions(input.permissions, "permissions")
        async with ctx.hub.db.write() as conn:
            member_id = await _linked_member_id(conn, info, str(input.member_id))
            view = await consent_requests.request(
                conn,
                partner_id=ctx.partner_id,
                member_id=member_id,
                permissions=permissions,
                purposes=input.purposes,
                expires_at=input.expires_at,
                now=ctx.now,
                actor=f"partner:{ctx.principal.partner.public_id}",
                data_window_from=input.data_window_from,
            )
        request = ConsentRequest(
            id=strawberry.ID(view.public_id),
            status=ConsentStatus(view.status),
            permissions=view.permissions,
            purposes=view.purposes,
            expires_at=view.expires_at,
        )
        return RequestConsentPayload(consent_request=request, errors=[])
