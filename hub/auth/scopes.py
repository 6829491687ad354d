"""The scope catalogue. Scope names are public API: partners request them and members consent to them."""

from __future__ import annotations

PARTNER_SCOPES: dict[str, str] = {
    "member:read": "Read member profiles (name, birthday) of members who consented",
    "member:enroll": "Enrol members and link them to the partner's own ids",
    "points:read": "Read points balances and history",
    "points:earn": "Award points for purchases (the caller is the issuer)",
    "points:grant": "Grant health-benefit points for verified activities",
    "points:redeem": "Hold, capture and redeem members' points",
    "points:reverse": "Reverse the caller's own points transactions",
    "purchases:write": "Record purchases and refunds",
    "purchases:read": "Read purchase summaries",
    "activity:write": "Record verified health activities",
    "consent:read": "Read the caller's own consents",
    "consent:request": "Ask members for consent",
    "analytics:read": "Read retention and churn analytics",
    "settlement:read": "Read settlement statements the caller is party to",
    "webhooks:manage": "Manage webhook subscriptions",
    "rewards:manage": "Create, change and retire your own rewards (you are their sponsor)",
    "rewards:redeem": "Claim rewards for members and redeem their codes at your tills",
}

# Scopes for a partner's own business rather than a member's data: no member is ever asked to consent to them.
# (Claiming a reward for a member still needs the member's `points:redeem` consent.)
NOT_CONSENTED = frozenset({"rewards:manage", "rewards:redeem"})
CONSENT_PERMISSIONS = {name: text for name, text in PARTNER_SCOPES.items() if name not in NOT_CONSENTED}

# Operator administration: exists so that it can be named and refused, never granted to a partner client.
OPERATOR_SCOPES: dict[str, str] = {
    "operator:admin": "Operate the hub (CLI only)",
}

ALL_SCOPES = {**PARTNER_SCOPES, **OPERATOR_SCOPES}


class ScopeError(ValueError):
    pass


def parse(scope: str | None) -> frozenset[str]:
    return frozenset(scope.split()) if scope else frozenset()


def format_scopes(scopes: frozenset[str] | set[str]) -> str:
    return " ".join(sorted(scopes))


def validate_partner_scopes(scopes: frozenset[str]) -> None:
    """Raise if any scope is unknown or reserved for the operator."""
    unknown = sorted(scopes - ALL_SCOPES.keys())
    if unknown:
        raise ScopeError(f"unknown scope(s): {', '.join(unknown)}")
    reserved = sorted(scopes & OPERATOR_SCOPES.keys())
    if reserved:
        raise ScopeError(f"scope(s) never grantable to a partner: {', '.join(reserved)}")
