"""The consent rule, written once.

A partner reaches a member's data when four things hold: the partner is linked to the member (`member_link`),
the member is reachable (active, or provisional under that partner), the member's consent to the partner is in
force (authorised and not past its expiry), and that consent grants the permission the read or command needs.
The first is the join every consented lookup starts from (`members.service`); the next two are the expressions
below, which every statement that decides access builds on (member lookups, member-delegated tokens, webhook
fan-out, the consent screen); the last is `MemberView.require`, which every domain read calls.

SQL has one copy that Python cannot build: `hub_redeem` (migration 0010), the redemption in one round trip on
PostgreSQL. `tests/test_consent_rule.py` runs it and the Python path from the same states and compares every
row they write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TypeVar

from sqlalchemy import BindParameter, ColumnElement, and_, case, exists, func, or_

from hub.consent.models import consent
from hub.errors import DomainError
from hub.members.models import REACHABLE, member

Now = datetime | BindParameter[datetime]


def consent_in_force(now: Now) -> ColumnElement[bool]:
    """This consent authorises access right now (an authorised consent past its expiry no longer does, whether
    or not the worker has marked it expired yet)."""
    return and_(consent.c.status == "AUTHORISED", or_(consent.c.expires_at.is_(None), consent.c.expires_at > now))


def reachable(now: Now) -> ColumnElement[bool]:
    """The member may be reached through this consent: the member is active or provisional, the consent in force."""
    # Equalities, not `IN`: SQLAlchemy re-renders an IN list on every execution (~50 µs on the hot lookup).
    return and_(or_(*(member.c.status == status for status in REACHABLE)), consent_in_force(now))


def consent_grants(dialect: str, permission: str) -> ColumnElement[bool]:
    """The consent's permissions include `permission`: the rule's last part, for statements over many members
    (a batch job's selection), where `MemberView.require` is the single member's."""
    if dialect == "postgresql":
        return consent.c.permissions.op("?")(permission)  # jsonb: has this string among its elements
    held = func.json_each(consent.c.permissions).table_valued("value")
    return exists().where(held.c.value == permission)


def consent_status(now: Now) -> ColumnElement[str]:
    """The status a consent shows: an authorised consent no longer in force shows as expired."""
    return case(
        (and_(consent.c.status == "AUTHORISED", ~consent_in_force(now)), "EXPIRED"),
        else_=consent.c.status,
    )


class ConsentRequired(DomainError):
    """The member's consent to the caller does not grant `permission` (the rule's last part)."""

    def __init__(self, permission: str, field: str | None = "memberId") -> None:
        super().__init__("CONSENT_REQUIRED", f"the member has not consented to {permission!r} for you", field)
        self.permission = permission


@dataclass(frozen=True)
class MemberView:
    """A member as one partner may see it. `member_id` is internal and must never be serialised."""

    member_id: int
    pairwise_id: str
    external_id: str | None
    name: str | None
    birthday: date | None
    member_since: datetime
    permissions: frozenset[str]
    consent_pk: int
    data_window_from: datetime | None = None  # the consent shares no purchase older than this

    def require(self, permission: str) -> None:
        """The rule's last part, which every domain read of member data calls: the consent grants `permission`."""
        if permission not in self.permissions:
            raise ConsentRequired(permission)

    def permits(self, permission: str) -> bool:
        return permission in self.permissions


T = TypeVar("T")


def readable(views: Sequence[MemberView], permission: str) -> list[int]:
    """The members among `views` whose consent grants `permission`: the ones a batched read may read."""
    return list(dict.fromkeys(v.member_id for v in views if v.permits(permission)))


def answers(
    views: Sequence[MemberView], permission: str, found: Callable[[MemberView], T]
) -> list[T | ConsentRequired]:
    """One answer per view, in order: what was read for it, or the refusal where the consent lacks `permission`."""
    return [found(v) if v.permits(permission) else ConsentRequired(permission) for v in views]
