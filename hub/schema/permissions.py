"""Every GraphQL path to data declares what it needs; tests walk the schema to make sure none is missing.

`scoped("member:read")` guards a root field by token scope (after authentication). `consented("member:read")`
guards a field of a member by the caller's scopes; the domain read behind it checks the member's consent to the
calling partner (`MemberView.require`), and what it answers goes to the access log.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from graphql import GraphQLError
from strawberry.extensions import FieldExtension
from strawberry.permission import BasePermission, PermissionExtension

from hub.consent.rule import ConsentRequired, MemberView
from hub.schema.context import Info


class Authenticated(BasePermission):
    message = "authentication required: send an OAuth 2 access token as 'Authorization: Bearer <token>'"
    error_extensions = {"code": "UNAUTHENTICATED"}  # noqa: RUF012

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return info.context.principal is not None


class PartnerToken(BasePermission):
    """Partner-wide fields need the partner's own (client credentials) token; a token an app holds for one
    member reaches that member only, through `me`."""

    message = "a member-delegated token reaches only `me`; this field needs a client credentials token"
    error_extensions = {"code": "PARTNER_TOKEN_REQUIRED"}  # noqa: RUF012

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        principal = info.context.principal
        return principal is not None and principal.member_id is None


class MemberToken(BasePermission):
    message = "`me` needs a token a member granted through the authorization code flow"
    error_extensions = {"code": "MEMBER_TOKEN_REQUIRED"}  # noqa: RUF012

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        principal = info.context.principal
        return principal is not None and principal.member_id is not None


T = TypeVar("T")


class RequireScope(BasePermission):
    error_extensions = {"code": "INSUFFICIENT_SCOPE"}  # noqa: RUF012

    def __init__(self, scope: str) -> None:
        self.scope = scope
        self.message = f"this field requires the scope {scope!r}"
        self.error_extensions = {"code": "INSUFFICIENT_SCOPE", "requiredScope": scope}

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        principal = info.context.principal
        return principal is not None and principal.has(self.scope)


def consent_refused(permission: str) -> GraphQLError:
    message = f"the member has not consented to {permission!r} for you"
    return GraphQLError(message, extensions={"code": "CONSENT_REQUIRED", "permission": permission})


def scope_refused(scope: str) -> GraphQLError:
    message = f"this field requires the scope {scope!r}"
    return GraphQLError(message, extensions={"code": "INSUFFICIENT_SCOPE", "requiredScope": scope})


def disclose(info: Info, view: MemberView, permission: str, read: Callable[[], T]) -> T | GraphQLError:
    """A member's data for the calling partner: the token must carry `permission`, the member's consent must grant
    it (the domain read `read` checks that itself, raising `ConsentRequired`), and what is disclosed goes to the
    access log, written before the response leaves. A refusal is returned as the field's error."""
    context = info.context
    if context.principal is None or not context.principal.has(permission):
        return consent_refused(permission)
    try:
        answer = read()
    except ConsentRequired:
        return consent_refused(permission)
    context.record_access(view.member_id, view.consent_pk, permission)
    return answer


F = TypeVar("F", bound=Callable[..., Any])


def consented(permission: str) -> Callable[[F], F]:
    """`disclose` for a resolver of a member's data (a field with arguments; its type holds the member's `view`).

    A plain wrapper rather than a strawberry field extension: such fields are resolved once per member of a
    page, and an extension's chain costs more than the field (~20 µs a call, measured)."""

    def decorate(resolver: F) -> F:
        @functools.wraps(resolver)
        def field(self: Any, *args: Any, **kwargs: Any) -> Any:
            answer = disclose(kwargs["info"], self.view, permission, lambda: resolver(self, *args, **kwargs))
            if isinstance(answer, GraphQLError):
                raise answer
            return answer

        field.permission = permission  # type: ignore[attr-defined]  # what tests/test_schema.py looks for
        return field  # type: ignore[return-value]

    return decorate


def authenticated() -> list[FieldExtension]:
    return [PermissionExtension(permissions=[Authenticated()], use_directives=False)]


def scoped(scope: str) -> list[FieldExtension]:
    return [
        PermissionExtension(permissions=[Authenticated(), PartnerToken(), RequireScope(scope)], use_directives=False)
    ]


def member_token() -> list[FieldExtension]:
    return [PermissionExtension(permissions=[Authenticated(), MemberToken()], use_directives=False)]
