"""GraphQL for members: enrolment, lookups and the partner's member list."""

from __future__ import annotations

import datetime as dt
import logging
from enum import Enum
from typing import Annotated

import strawberry
from sqlalchemy.exc import IntegrityError

from hub import cursors
from hub.consent import service as consent_service
from hub.consent.models import CONSENT_STATUSES
from hub.consent.service import CHANNELS, Evidence
from hub.errors import DomainError
from hub.members import claims, service
from hub.members.service import MemberView
from hub.schema.context import Info
from hub.schema.permissions import consented, member_token, needs_scope, scoped
from hub.schema.points import MemberPoints, PointsTransactionConnection, member_points, member_points_history
from hub.schema.programme import MemberTier, PurchaseSummary, member_tier, purchase_summary

log = logging.getLogger("hub.members")


@strawberry.enum
class MemberErrorCode(Enum):
    INVALID_INPUT = "INVALID_INPUT"
    INVALID_PHONE = "INVALID_PHONE"
    INVALID_CURSOR = "INVALID_CURSOR"
    EXTERNAL_ID_TAKEN = "EXTERNAL_ID_TAKEN"
    MEMBER_ALREADY_ENROLLED = "MEMBER_ALREADY_ENROLLED"
    EXPIRY_REQUIRED = "EXPIRY_REQUIRED"
    MEMBER_NOT_FOUND = "MEMBER_NOT_FOUND"
    INVALID_CODE = "INVALID_CODE"


@strawberry.type
class MemberError:
    field: str | None
    message: str
    code: MemberErrorCode

    @classmethod
    def of(cls, error: DomainError) -> MemberError:
        return cls(field=error.field, message=error.message, code=MemberErrorCode[error.code])


@strawberry.enum(description="Where the member gave consent")
class ConsentChannel(Enum):
    POS = "POS"
    APP = "APP"
    WEB = "WEB"
    PAPER = "PAPER"
    IMPORT = "IMPORT"


assert {c.value for c in ConsentChannel} == set(CHANNELS)


@strawberry.federation.type(keys=["id"], description="A member, as the calling partner sees it.")
class Member:
    id: strawberry.ID = strawberry.field(description="Your pairwise id for this member (no other partner has it)")
    external_id: str | None = strawberry.field(description="Your own id for this member, if you enrolled them")
    member_since: dt.datetime = strawberry.field(description="When this member was linked to you")
    member_id: strawberry.Private[int]
    consented_permissions: strawberry.Private[frozenset[str]]
    consent_pk: strawberry.Private[int]
    profile_name: strawberry.Private[str | None]
    profile_birthday: strawberry.Private[dt.date | None]

    @strawberry.field(extensions=consented("member:read"))
    def name(self) -> str | None:
        return self.profile_name

    @strawberry.field(extensions=consented("member:read"))
    def birthday(self) -> dt.date | None:
        return self.profile_birthday

    @strawberry.field(extensions=consented("points:read"), description="Coalition-wide balances.")
    async def points(self, info: Info) -> MemberPoints | None:
        return await member_points(info, self.member_id)

    @strawberry.field(extensions=consented("points:read"), description="Your own transactions with this member.")
    async def points_history(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> PointsTransactionConnection | None:
        return await member_points_history(info, self.member_id, first, after)

    @strawberry.field(
        extensions=consented("member:read"),
        description="The member's tier: level, benefits at the till, and why (progress and history).",
    )
    async def tier(self, info: Info) -> MemberTier | None:
        return await member_tier(info, self.member_id)

    @strawberry.field(
        extensions=consented("purchases:read"),
        description="Spend, visits and categories at every partner over the last months (1-36).",
    )
    async def purchase_summary(self, info: Info, months: int = 12) -> PurchaseSummary | None:
        return await purchase_summary(info, self.member_id, self.consent_pk, months)

    @strawberry.field(
        extensions=needs_scope("consent:read"),
        description="Your consent with this member.",
    )
    async def consents(self, info: Info) -> list[Consent]:
        ctx = info.context
        async with ctx.hub.db.read() as conn:
            views = await consent_service.of_member(conn, self.member_id, ctx.now, partner_id=ctx.partner_id)
        return [Consent.of(v) for v in views]

    @classmethod
    def of(cls, view: MemberView) -> Member:
        return cls(
            id=strawberry.ID(view.pairwise_id),
            external_id=view.external_id,
            member_since=view.member_since,
            member_id=view.member_id,
            consented_permissions=view.permissions,
            consent_pk=view.consent_pk,
            profile_name=view.name,
            profile_birthday=view.birthday,
        )


async def members_by_pairwise_ids(info: Info, pairwise_ids: set[str]) -> dict[str, Member]:
    """Federation's entities: the same scope and consent rule as `member(id:)`, for a batch in one read."""
    principal = info.context.principal
    if not pairwise_ids or principal is None or principal.member_id is not None or not principal.has("member:read"):
        return {}
    ctx = info.context
    async with ctx.hub.db.read() as conn:
        views = await service.by_pairwise_ids(conn, ctx.partner_id, pairwise_ids, ctx.now)
    return {pairwise_id: Member.of(view) for pairwise_id, view in views.items()}


async def _by_pairwise_id(info: Info, pairwise_id: str) -> Member | None:
    ctx = info.context
    async with ctx.hub.db.read() as conn:
        view = await service.by_pairwise_id(conn, ctx.partner_id, pairwise_id, ctx.now)
    return None if view is None else Member.of(view)


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
    def of(cls, view: consent_service.ConsentView) -> Consent:
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
    consent_request: ConsentRequest | None
    errors: list[ConsentError]


@strawberry.input
class RevokeConsentInput:
    member_id: strawberry.ID
    reason: str | None = None


@strawberry.type
class RevokeConsentPayload:
    consent: Consent | None
    errors: list[ConsentError]


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class MemberEdge:
    cursor: str
    node: Member


@strawberry.type
class MemberConnection:
    edges: list[MemberEdge]
    page_info: PageInfo


@strawberry.input
class ConsentInput:
    permissions: list[str] = strawberry.field(description="Scopes the member agreed to share with you")
    policy_version: str = strawberry.field(description="The version of the privacy policy the member was shown")
    channel: ConsentChannel
    expires_at: dt.datetime | None = strawberry.field(
        default=None, description="When the consent ends; required for health-related permissions"
    )


@strawberry.input
class EnrollMemberInput:
    external_id: str
    phone: str
    name: str | None = None
    birthday: dt.date | None = None
    consent: ConsentInput


@strawberry.type
class EnrollMemberPayload:
    member: Member | None
    linked_existing: bool = strawberry.field(
        description="False at enrolment, whatever the phone: a phone proves nothing. Confirming the enrolment "
        "with the code sent to the phone says whether it linked the member's existing coalition membership."
    )
    errors: list[MemberError]


@strawberry.input
class ConfirmEnrollmentInput:
    member_id: strawberry.ID = strawberry.field(description="The id enrollMember answered with")
    code: str = strawberry.field(description="The six-digit code the hub sent to the member's phone")


@strawberry.type
class ConfirmEnrollmentPayload:
    member: Member | None = strawberry.field(
        description="The member now; when linked to a membership you already knew, under the id you had for it"
    )
    linked_existing: bool = strawberry.field(description="The phone's owner was already a coalition member")
    errors: list[MemberError]


@strawberry.type
class MemberQueries:
    @strawberry.field(
        extensions=member_token(), description="The member who granted this token (member-delegated tokens only)."
    )
    async def me(self, info: Info) -> Member | None:
        ctx = info.context
        assert ctx.principal is not None and ctx.principal.member_id is not None
        async with ctx.hub.db.read() as conn:
            view = await service.by_member_id(conn, ctx.partner_id, ctx.principal.member_id, ctx.now)
        return None if view is None else Member.of(view)

    @strawberry.field(extensions=scoped("member:read"), description="A member by your pairwise id.")
    async def member(self, info: Info, id: strawberry.ID) -> Member | None:
        return await _by_pairwise_id(info, str(id))

    @strawberry.field(extensions=scoped("member:read"), description="A member by your own external id.")
    async def member_by_external_id(self, info: Info, external_id: str) -> Member | None:
        ctx = info.context
        async with ctx.hub.db.read() as conn:
            view = await service.by_external_id(conn, ctx.partner_id, external_id, ctx.now)
        return None if view is None else Member.of(view)

    @strawberry.field(extensions=scoped("member:read"), description="Members who consented to you, 100 at most a page.")
    async def members(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description="At most 100; 50 if omitted")] = None,
        after: str | None = None,
    ) -> MemberConnection:
        ctx = info.context
        async with ctx.hub.db.read() as conn:
            result = await service.page(
                conn, ctx.partner_id, ctx.now, first=50 if first is None else first, after=after
            )
        edges = [MemberEdge(cursor=cursors.encode(m.pairwise_id), node=Member.of(m)) for m in result.members]
        return MemberConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=result.has_next,
                has_previous_page=after is not None,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )


@strawberry.type
class MemberMutations:
    @strawberry.mutation(
        extensions=scoped("consent:request"),
        description="End your own consent with a member (they asked you to); you no longer see them.",
    )
    async def revoke_consent(self, info: Info, input: RevokeConsentInput) -> RevokeConsentPayload:
        ctx = info.context
        assert ctx.principal is not None
        if input.reason is not None and len(input.reason) > 200:
            error = ConsentError(field="reason", message="at most 200 characters", code=ConsentErrorCode.INVALID_INPUT)
            return RevokeConsentPayload(consent=None, errors=[error])
        try:
            async with ctx.hub.db.write() as conn:
                member_id = await service.linked_member_id(conn, ctx.partner_id, str(input.member_id))
                if member_id is None:
                    raise DomainError("MEMBER_NOT_FOUND", "no such member", "memberId")
                await consent_service.revoke_by_partner(
                    conn,
                    ctx.partner_id,
                    member_id,
                    reason=input.reason,
                    now=ctx.now,
                    actor=f"partner:{ctx.principal.partner.public_id}",
                )
                [view] = await consent_service.of_member(conn, member_id, ctx.now, partner_id=ctx.partner_id)
        except DomainError as error:
            return RevokeConsentPayload(
                consent=None,
                errors=[ConsentError(field=error.field, message=error.message, code=ConsentErrorCode[error.code])],
            )
        return RevokeConsentPayload(consent=Consent.of(view), errors=[])

    @strawberry.mutation(
        extensions=scoped("consent:request"), description="Ask a member for consent; they decide in the portal."
    )
    async def request_consent(self, info: Info, input: RequestConsentInput) -> RequestConsentPayload:
        ctx = info.context
        assert ctx.principal is not None
        try:
            permissions = consent_service.validate_permissions(input.permissions, "permissions")
            async with ctx.hub.db.write() as conn:
                member_id = await service.linked_member_id(conn, ctx.partner_id, str(input.member_id))
                if member_id is None:
                    raise DomainError("MEMBER_NOT_FOUND", "no such member", "memberId")
                view = await consent_service.request(
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
        except DomainError as error:
            return RequestConsentPayload(
                consent_request=None,
                errors=[ConsentError(field=error.field, message=error.message, code=ConsentErrorCode[error.code])],
            )
        request = ConsentRequest(
            id=strawberry.ID(view.public_id),
            status=ConsentStatus(view.status),
            permissions=view.permissions,
            purposes=view.purposes,
            expires_at=view.expires_at,
        )
        return RequestConsentPayload(consent_request=request, errors=[])

    @strawberry.mutation(extensions=scoped("member:enroll"), description="Enrol a member with their consent.")
    async def enroll_member(self, info: Info, input: EnrollMemberInput) -> EnrollMemberPayload:
        ctx = info.context
        enrolment = service.Enrolment(
            external_id=input.external_id,
            phone=input.phone,
            name=input.name,
            birthday=input.birthday,
            permissions=input.consent.permissions,
            evidence=Evidence(
                policy_version=input.consent.policy_version,
                channel=input.consent.channel.value,
                actor=f"partner:{ctx.principal.partner.public_id}" if ctx.principal else "unknown",
            ),
            consent_expires_at=input.consent.expires_at,
        )
        # A concurrent enrolment of the same phone or external id can win the race on PostgreSQL; the loser
        # retries once and then sees the winner's rows (a claim on the phone, or EXTERNAL_ID_TAKEN).
        for attempt in range(2):
            try:
                async with ctx.hub.db.write() as conn:
                    enrolled = await service.enrol(
                        conn,
                        ctx.partner_id,
                        enrolment,
                        now=ctx.now,
                        default_region=ctx.hub.settings.default_phone_region,
                    )
                    claim = enrolled.claim
                    assert claim is not None
                    code = await claims.issue_code(conn, claim, ctx.now)
                break
            except DomainError as error:
                return EnrollMemberPayload(member=None, linked_existing=False, errors=[MemberError.of(error)])
            except IntegrityError:
                if attempt:
                    raise
        if code is not None:  # after the commit: no network call inside a transaction
            assert ctx.principal is not None and claim is not None
            try:
                await ctx.hub.sms.send(claim.phone, claims.code_message(code, ctx.principal.partner.name))
            except Exception:
                # The enrolment stands; the member can still link it from the portal.
                log.exception("could not send an enrolment code")
        return EnrollMemberPayload(member=Member.of(enrolled.member), linked_existing=False, errors=[])

    @strawberry.mutation(
        extensions=scoped("member:enroll"),
        description="Confirm an enrolment with the code sent to the member's phone. If the phone's owner was "
        "already a coalition member, your member is merged into their membership (points, purchases, tier).",
    )
    async def confirm_enrollment(self, info: Info, input: ConfirmEnrollmentInput) -> ConfirmEnrollmentPayload:
        ctx = info.context
        if not 1 <= len(input.code) <= 10:
            error = DomainError("INVALID_CODE", "the code is wrong or no longer valid", "code")
            return ConfirmEnrollmentPayload(member=None, linked_existing=False, errors=[MemberError.of(error)])
        programme = claims.Programme.of(ctx.hub.settings, ctx.now)
        try:
            async with ctx.hub.db.write() as conn:
                result = await claims.confirm(
                    conn, ctx.partner_id, str(input.member_id), input.code, now=ctx.now, programme=programme
                )
        except DomainError as error:
            result = error
        if isinstance(result, DomainError):
            return ConfirmEnrollmentPayload(member=None, linked_existing=False, errors=[MemberError.of(result)])
        return ConfirmEnrollmentPayload(
            member=Member.of(result.member), linked_existing=result.linked_existing, errors=[]
        )
