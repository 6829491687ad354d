"""Every GraphQL path to data declares what it needs; tests walk the schema to make sure none is missing.

`scoped("member:read")` guards a root field by token scope (after authentication). `consented("member:read")`
guards a field of a member by the member's consent to the calling partner *and* the caller's scopes.
"""

from __future__ import annotations

from typing import Any

from strawberry.extensions import FieldExtension
from strawberry.permission import BasePermission, PermissionExtension

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


class ConsentPermits(BasePermission):
    """The member consented to this permission for the calling partner, and the token carries it too."""

    def __init__(self, permission: str) -> None:
        self.permission = permission
        self.message = f"the member has not consented to {permission!r} for you"
        self.error_extensions = {"code": "CONSENT_REQUIRED", "permission": permission}

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        principal = info.context.principal
        allowed = (
            principal is not None and principal.has(self.permission) and self.permission in source.consented_permissions
        )
        if allowed:  # every read of member data is logged for the member to see
            info.context.record_access(source.member_id, source.consent_pk, self.permission)
        return allowed


def authenticated() -> list[FieldExtension]:
    return [PermissionExtension(permissions=[Authenticated()], use_directives=False)]


def scoped(scope: str) -> list[FieldExtension]:
    return [
        PermissionExtension(permissions=[Authenticated(), PartnerToken(), RequireScope(scope)], use_directives=False)
    ]


def member_token() -> list[FieldExtension]:
    return [PermissionExtension(permissions=[Authenticated(), MemberToken()], use_directives=False)]


def consented(permission: str) -> list[FieldExtension]:
    return [PermissionExtension(permissions=[ConsentPermits(permission)], use_directives=False)]


def needs_scope(scope: str) -> list[FieldExtension]:
    """A nested field about the caller's own relationship with the member (not member data): scope only."""
    return [PermissionExtension(permissions=[RequireScope(scope)], use_directives=False)]
