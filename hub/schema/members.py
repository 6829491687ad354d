"""GraphQL for members: the Member type (each nested field batched per request), lookups, the partner's member
list, enrolment and its confirmation."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any

import strawberry
from sqlalchemy.exc import IntegrityError

from hub import cursors
from hub.consent.service import CHANNELS, Evidence
from hub.errors import DomainError
from hub.members import claims, service
from hub.members.service import MemberView
from hub.schema.batches import Needs, below, prefetch
from hub.schema.consent import Consent, consents_needs, member_consents
from hub.schema.context import Info
from hub.schema.errors import mutation
from hub.schema.pagination import PageInfo
from hub.schema.permissions import consented, disclose, member_token, scope_refused, scoped
from hub.schema.points import (
    MemberPoints,
    PointsTransactionConnection,
    history_needs,
    member_points,
    member_points_history,
    points_needs,
)
from hub.schema.programme import MemberTier, PurchaseSummary, member_tier, purchase_summary, summary_needs, tier_needs
from hub.schema.retention import MemberRetention, member_retention, retention_needs
from hub.schema.rewards import RewardClaim, claims_needs, member_reward_claims

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
    """Handed out by `handing_out`, which reads what the request asks of its members for all of them at once (one
    statement per field kind) and sets the fields without arguments as plain values: each member's answer, or
    its refusal (a field error). Fields with arguments answer from the same reads through their resolvers."""

    id: strawberry.ID = strawberry.field(description="Your pairwise id for this member (no other partner has it)")
    external_id: str | None = strawberry.field(description="Your own id for this member, if you enrolled them")
    member_since: dt.datetime = strawberry.field(description="When this member was linked to you")
    name: str | None = None
    birthday: dt.date | None = None
    points: MemberPoints | None = strawberry.field(default=None, description="Coalition-wide balances.")
    tier: MemberTier | None = strawberry.field(
        default=None, description="The member's tier: level, benefits at the till, and why (progress and history)."
    )
    consents: list[Consent] = strawberry.field(default_factory=list, description="Your consent with this member.")
    retention: MemberRetention | None = strawberry.field(
        default=None, description="The churn model's view of the member's relationship with you (null until scored)."
    )
    view: strawberry.Private[MemberView]

    @strawberry.field(description="Your own transactions with this member.")
    @consented("points:read")
    def points_history(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> PointsTransactionConnection | None:
        return member_points_history(info, self.view, first, after)

    @strawberry.field(
        description="The member's reward claims you made or redeemed, newest first (codes only of those you made)."
    )
    @consented("points:read")
    def reward_claims(self, info: Info, first: int | None = 20) -> list[RewardClaim] | None:
        return member_reward_claims(info, self.view, first)

    @strawberry.field(description="Spend, visits and categories at every partner over the last months (1-36).")
    @consented("purchases:read")
    def purchase_summary(self, info: Info, months: int = 12) -> PurchaseSummary | None:
        return purchase_summary(info, self.view, months)

    @classmethod
    def of(cls, view: MemberView) -> Member:
        return cls(
            id=strawberry.ID(view.pairwise_id),
            external_id=view.external_id,
            member_since=view.member_since,
            view=view,
        )


@dataclass(frozen=True)
class Nested:
    """A nested field of Member: what it reads for every member at once and, for a field without arguments, the
    permission it needs and the value it is set to (a member's data is `disclose`d: consent-checked and logged)."""

    needs: Needs | None = None
    permission: str | None = None  # a member's data: the scope and consent permission it needs, logged
    scope: str | None = None  # the partner's own relationship with the member: a scope only, not logged
    value: Callable[[Info, MemberView], Any] | None = None


NESTED: dict[str, Nested] = {
    "name": Nested(permission="member:read", value=lambda info, view: service.profile(view).name),
    "birthday": Nested(permission="member:read", value=lambda info, view: service.profile(view).birthday),
    "points": Nested(points_needs, permission="points:read", value=member_points),
    "tier": Nested(tier_needs, permission="member:read", value=member_tier),
    "consents": Nested(consents_needs, scope="consent:read", value=member_consents),
    "retention": Nested(retention_needs, permission="analytics:read", value=member_retention),
    "pointsHistory": Nested(history_needs),  # with arguments: resolvers
    "purchaseSummary": Nested(summary_needs),
    "rewardClaims": Nested(claims_needs),
}
# The fields set as values are Member's attributes of the same name (one word: the GraphQL and Python names agree).
assert {n for n, nested in NESTED.items() if nested.value} <= {f.name for f in dataclasses.fields(Member)}
NEEDS = {name: nested.needs for name, nested in NESTED.items() if nested.needs is not None}


async def handing_out(info: Info, views: Sequence[MemberView], *path: str) -> list[Member]:
    """Members as a resolver hands them out, with what the request asks of them (at `path` below the resolver's
    field) read for all of them at once and set on each."""
    asked = below(info, *path)
    await prefetch(info, views, asked, NEEDS)
    values = [(f.name, NESTED[f.name]) for f in asked if f.name in NESTED and NESTED[f.name].value]
    found = []
    for view in views:
        member = Member.of(view)
        for attribute, nested in values:
            # A refusal is the field's value: graphql-core raises an exception it finds as a field's result.
            setattr(member, attribute, _value(info, view, nested))
        found.append(member)
    return found


def _value(info: Info, view: MemberView, nested: Nested) -> Any:
    assert nested.value is not None
    value = nested.value
    if nested.permission is not None:
        return disclose(info, view, nested.permission, lambda: value(info, view))
    assert nested.scope is not None
    principal = info.context.principal
    if principal is None or not principal.has(nested.scope):
        return scope_refused(nested.scope)
    return value(info, view)


async def members_by_pairwise_ids(info: Info, pairwise_ids: set[str]) -> dict[str, Member]:
    """Federation's entities: the same scope and consent rule as `member(id:)`, for a batch in one read."""
    principal = info.context.principal
    if not pairwise_ids or principal is None or principal.member_id is not None or not principal.has("member:read"):
        return {}
    ctx = info.context
    async with ctx.hub.db.read() as conn:
        views = await service.by_pairwise_ids(conn, ctx.partner_id, pairwise_ids, ctx.now)
    found = await handing_out(info, list(views.values()))  # the fields sit in fragments on Member: opened alike
    return {member.view.pairwise_id: member for member in found}


async def member_of(info: Info, member_id: int) -> Member | None:
    """The member a command just acted on (its payload's `member`), as the caller may see them now: null once
    their consent is gone."""
    ctx = info.context
    async with ctx.hub.db.read() as conn:
        view = await service.by_member_id(conn, ctx.partner_id, member_id, ctx.now)
    return await _one(info, view, "member")


async def _one(info: Info, view: MemberView | None, *path: str) -> Member | None:
    if view is None:
        return None
    [member] = await handing_out(info, [view], *path)
    return member


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
        return await _one(info, view)

    @strawberry.field(extensions=scoped("member:read"), description="A member by your pairwise id.")
    async def member(self, info: Info, id: strawberry.ID) -> Member | None:
        ctx = info.context
        async with ctx.hub.db.read() as conn:
            view = await service.by_pairwise_id(conn, ctx.partner_id, str(id), ctx.now)
        return await _one(info, view)

    @strawberry.field(extensions=scoped("member:read"), description="A member by your own external id.")
    async def member_by_external_id(self, info: Info, external_id: str) -> Member | None:
        ctx = info.context
        async with ctx.hub.db.read() as conn:
            view = await service.by_external_id(conn, ctx.partner_id, external_id, ctx.now)
        return await _one(info, view)

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
        nodes = await handing_out(info, result.members, "edges", "node")
        edges = [MemberEdge(cursor=cursors.encode(m.view.pairwise_id), node=m) for m in nodes]
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
        return EnrollMemberPayload(member=await _one(info, enrolled.member, "member"), errors=[])

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
            member=await _one(info, result.member, "member"), linked_existing=result.linked_existing, errors=[]
        )
