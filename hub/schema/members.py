"""GraphQL for members: the Member type (each nested field batched per request), lookups, the partner's member
list, enrolment and its confirmation."""

from __future__ import annotations

import datetime as dt
import logging
from enum import Enum
from typing import Annotated

import strawberry
from sqlalchemy.exc import IntegrityError

from hub import cursors
from hub.consent.service import CHANNELS, Evidence
from hub.errors import DomainError
from hub.members import claims, service
from hub.members.service import MemberView
from hub.schema.consent import Consent, member_consents
from hub.schema.context import Info
from hub.schema.errors import mutation
from hub.schema.pagination import PageInfo
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
    """Every nested field reads through a per-request loader, so a page of members costs one statement per field
    kind; each loader hands the domain the `MemberView`s (what the consented lookup found), and the domain checks
    the consent's permission itself."""

    id: strawberry.ID = strawberry.field(description="Your pairwise id for this member (no other partner has it)")
    external_id: str | None = strawberry.field(description="Your own id for this member, if you enrolled them")
    member_since: dt.datetime = strawberry.field(description="When this member was linked to you")
    view: strawberry.Private[MemberView]

    @strawberry.field(extensions=consented("member:read"))
    def name(self) -> str | None:
        return service.profile(self.view).name

    @strawberry.field(extensions=consented("member:read"))
    def birthday(self) -> dt.date | None:
        return service.profile(self.view).birthday

    @strawberry.field(extensions=consented("points:read"), description="Coalition-wide balances.")
    async def points(self, info: Info) -> MemberPoints | None:
        return await member_points(info, self.view)

    @strawberry.field(extensions=consented("points:read"), description="Your own transactions with this member.")
    async def points_history(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> PointsTransactionConnection | None:
        return await member_points_history(info, self.view, 20 if first is None else first, after)

    @strawberry.field(
        extensions=consented("member:read"),
        description="The member's tier: level, benefits at the till, and why (progress and history).",
    )
    async def tier(self, info: Info) -> MemberTier | None:
        return await member_tier(info, self.view)

    @strawberry.field(
        extensions=consented("purchases:read"),
        description="Spend, visits and categories at every partner over the last months (1-36).",
    )
    async def purchase_summary(self, info: Info, months: int = 12) -> PurchaseSummary | None:
        return await purchase_summary(info, self.view, months)

    @strawberry.field(extensions=needs_scope("consent:read"), description="Your consent with this member.")
    async def consents(self, info: Info) -> list[Consent]:
        return await member_consents(info, self.view)

    @classmethod
    def of(cls, view: MemberView) -> Member:
        return cls(
            id=strawberry.ID(view.pairwise_id),
            external_id=view.external_id,
            member_since=view.member_since,
            view=view,
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


async def member_of(info: Info, member_id: int) -> Member | None:
    """The member a command just acted on, as the caller may see them now (null once their consent is gone)."""
    ctx = info.context
    async with ctx.hub.db.read() as conn:
        view = await service.by_member_id(conn, ctx.partner_id, member_id, ctx.now)
    return None if view is None else Member.of(view)


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
    member: Member | None = None
    linked_existing: bool = strawberry.field(
        default=False,
        description="False at enrolment, whatever the phone: a phone proves nothing. Confirming the enrolment "
        "with the code sent to the phone says whether it linked the member's existing coalition membership.",
    )
    errors: list[MemberError]


@strawberry.input
class ConfirmEnrollmentInput:
    member_id: strawberry.ID = strawberry.field(description="The id enrollMember answered with")
    code: str = strawberry.field(description="The six-digit code the hub sent to the member's phone")


@strawberry.type
class ConfirmEnrollmentPayload:
    member: Member | None = strawberry.field(
        default=None,
        description="The member now; when linked to a membership you already knew, under the id you had for it",
    )
    linked_existing: bool = strawberry.field(
        default=False, description="The phone's owner was already a coalition member"
    )
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
        ctx = info.context
        async with ctx.hub.db.read() as conn:
            view = await service.by_pairwise_id(conn, ctx.partner_id, str(id), ctx.now)
        return None if view is None else Member.of(view)

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
            edges=edges, page_info=PageInfo.of([e.cursor for e in edges], has_next=result.has_next, after=after)
        )


@strawberry.type
class MemberMutations:
    @mutation(extensions=scoped("member:enroll"), description="Enrol a member with their consent.")
    async def enroll_member(self, info: Info, input: EnrollMemberInput) -> EnrollMemberPayload:
        ctx = info.context
        assert ctx.principal is not None
        enrolment = service.Enrolment(
            external_id=input.external_id,
            phone=input.phone,
            name=input.name,
            birthday=input.birthday,
            permissions=input.consent.permissions,
            evidence=Evidence(
                policy_version=input.consent.policy_version,
                channel=input.consent.channel.value,
                actor=f"partner:{ctx.principal.partner.public_id}",
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
            except IntegrityError:
                if attempt:
                    raise
        if code is not None:  # after the commit: no network call inside a transaction
            assert claim is not None
            try:
                await ctx.hub.sms.send(claim.phone, claims.code_message(code, ctx.principal.partner.name))
            except Exception:
                # The enrolment stands; the member can still link it from the portal.
                log.exception("could not send an enrolment code")
        return EnrollMemberPayload(member=Member.of(enrolled.member), errors=[])

    @mutation(
        extensions=scoped("member:enroll"),
        description="Confirm an enrolment with the code sent to the member's phone. If the phone's owner was "
        "already a coalition member, your member is merged into their membership (points, purchases, tier).",
    )
    async def confirm_enrollment(self, info: Info, input: ConfirmEnrollmentInput) -> ConfirmEnrollmentPayload:
        ctx = info.context
        if not 1 <= len(input.code) <= 10:
            raise DomainError("INVALID_CODE", "the code is wrong or no longer valid", "code")
        programme = claims.Programme.of(ctx.hub.settings, ctx.now)
        async with ctx.hub.db.write() as conn:
            result = await claims.confirm(
                conn, ctx.partner_id, str(input.member_id), input.code, now=ctx.now, programme=programme
            )
        if isinstance(result, DomainError):
            raise result  # after the commit, which keeps the wrong guess counted
        return ConfirmEnrollmentPayload(
            member=Member.of(result.member), linked_existing=result.linked_existing, errors=[]
        )
