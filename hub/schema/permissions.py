"""Every GraphQL path to data declares what it needs; tests walk the schema to make sure none is missing.

`scoped("member:read")` guards a root field by token scope (after authentication). `consented("member:read")`
guards a field of a member by the caller's scopes; the domain read behind it checks the member's consent to the
calling partner (`MemberView.require`), and what it answers goes to the access log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import FieldExtension
from strawberry.permission import BasePermission, PermissionExtension

from hub.consent.rule import ConsentRequired
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


class RequireScope(BasePermission):
    error_extensions = {"code": "INSUFFICIENT_SCOPE"}  # noqa: RUF012

    def __init__(self, scope: str) -> None:
        self.scope = scope
        self.message = f"this field requires the scope {scope!r}"
        self.error_extensions = {"code": "INSUFFICIENT_SCOPE", "requiredScope": scope}

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        principal = info.context.principal
        return principal is not None and principal.has(self.scope)


class Consented(FieldExtension):
    """A field of a member's data. The token must carry the permission (a scope: declared here); the member's
    consent must grant it, which the domain read checks itself (`MemberView.require`), raising `ConsentRequired`.
    What a field answers is recorded for the access log, which is written before the response leaves."""

    def __init__(self, permission: str) -> None:
        super().__init__()
        self.permission = permission

    def _refused(self) -> GraphQLError:
        message = f"the member has not consented to {self.permission!r} for you"
        return GraphQLError(message, extensions={"code": "CONSENT_REQUIRED", "permission": self.permission})

    def _check_scope(self, info: Info) -> None:
        principal = info.context.principal
        if principal is None or not principal.has(self.permission):
            raise self._refused()

    def _record(self, source: Any, info: Info) -> None:
        view = source.view
        info.context.record_access(view.member_id, view.consent_pk, self.permission)

    def resolve(self, next_: Callable[..., Any], source: Any, info: Info, **kwargs: Any) -> Any:
        self._check_scope(info)
        try:
            answer = next_(source, info, **kwargs)
        except ConsentRequired:
            raise self._refused() from None
        self._record(source, info)
        return answer

    async def resolve_async(self, next_: Callable[..., Awaitable[Any]], source: Any, info: Info, **kwargs: Any) -> Any:
        self._check_scope(info)
        try:
            answer = await next_(source, info, **kwargs)
        except ConsentRequired:
            raise self._refused() from None
        self._record(source, info)
        return answer


def authenticated() -> list[FieldExtension]:
    return [PermissionExtension(permissions=[Authenticated()], use_directives=False)]


def scoped(scope: str) -> list[FieldExtension]:
    return [
        PermissionExtension(permissions=[Authenticated(), PartnerToken(), RequireScope(scope)], use_directives=False)
    ]


def member_token() -> list[FieldExtension]:
    return [PermissionExtension(permissions=[Authenticated(), MemberToken()], use_directives=False)]


def consented(permission: str) -> list[FieldExtension]:
    return [Consented(permission)]


def needs_scope(scope: str) -> list[FieldExtension]:
    """A nested field about the caller's own relationship with the member (not member data): scope only."""
    return [PermissionExtension(permissions=[RequireScope(scope)], use_directives=False)]
