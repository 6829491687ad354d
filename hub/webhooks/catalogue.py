"""The webhook event catalogue: every type a partner can receive, who receives it, and what its data holds.

Who receives an event:
- `own`: the partner whose action it records (its earn, its purchase, its consent), if the member's consent in
  force with it covers `permission`;
- `member`: every partner linked to the member whose consent in force covers `permission` (tier changes,
  points maturing or expiring, birthday gifts: what `Member` would show it);
- `privacy`: the partner the event names, whatever its consent now and whether or not it subscribed
  (consent ended or narrowed, member erased), because recipients must be told (PIPL Art. 47, GDPR Art. 17/19).

`data` always names the member by the receiving partner's pairwise id (`memberId`) and carries only the fields
listed here, copied from the outbox payload: never the hub's internal ids, nor another partner's ids or names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

_MEMBER_ID = {"type": "string", "description": "Your pairwise id for the member"}
_POINTS = {"type": "integer", "minimum": 0}
_TEXT = {"type": "string"}


@dataclass(frozen=True)
class EventType:
    name: str
    description: str
    audience: str  # own | member | privacy
    permission: str | None  # the consent a partner needs to receive it (None: its own relationship)
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    about_member: bool = True
    # Fields that tell more than `permission` covers: each is null unless the consent also grants its permission.
    requires: dict[str, str] = field(default_factory=dict)

    @property
    def mandatory(self) -> bool:
        return self.audience == "privacy"

    @property
    def disclosed(self) -> str:
        """What a delivery tells the partner about the member, as the access log names it."""
        if self.permission is not None:
            return self.permission
        return "consent:read" if self.name.startswith("consent.") else "member:read"

    def data(self, pairwise_id: str, payload: dict[str, Any], permissions: list[str]) -> dict[str, Any]:
        """What the partner receives: its id for the member and the catalogue's fields, each conditional field
        null unless the consent grants its permission."""
        shown = {
            name: payload[name] if name not in self.requires or self.requires[name] in permissions else None
            for name in self.fields
            if name in payload
        }
        return {"memberId": pairwise_id, **shown} if self.about_member else shown

    def relies_on(self, body: str) -> frozenset[str]:
        """The permissions a delivery's body relies on: the event's, and those of each conditional field it shows."""
        if not self.requires:
            return frozenset({self.disclosed})
        data = json.loads(body)["data"]
        return frozenset({self.disclosed, *(p for f, p in self.requires.items() if data.get(f) is not None)})

    def payload_schema(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": "object", "additionalProperties": False}
        fields = {
            name: {**spec, "type": [spec["type"], "null"], "description": f"null without {self.requires[name]}"}
            if name in self.requires
            else spec
            for name, spec in self.fields.items()
        }
        properties = {"memberId": _MEMBER_ID, **fields} if self.about_member else fields
        data["properties"] = properties
        data["required"] = sorted(properties)
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": self.name,
            "type": "object",
            "required": ["type", "timestamp", "data"],
            "additionalProperties": False,
            "properties": {
                "type": {"const": self.name},
                "timestamp": {"type": "string", "format": "date-time", "description": "When it happened"},
                "data": data,
            },
        }


def _t(
    type_name: str, description: str, audience: str, permission: str | None, /, **fields: dict[str, Any]
) -> EventType:
    return EventType(type_name, description, audience, permission, fields)


_TYPES = (
    _t("member.enrolled", "You enrolled a member.", "own", "member:read", externalId=_TEXT),
    _t(
        "member.merged",
        "A member you enrolled confirmed it was them: your record joined their membership.",
        "own",
        "member:read",
        method=_TEXT,
    ),
    _t(
        "member.erased",
        "The member erased their account: erase your copy of their data (mandatory).",
        "privacy",
        None,
    ),
    _t(
        "member.birthday_gift",
        "The member's birthday gift of their tier this year.",
        "member",
        "member:read",
        level={"type": "integer"},
        name=_TEXT,
        year={"type": "integer"},
    ),
    _t(
        "tier.changed",
        "The member's tier changed, with the reason.",
        "member",
        "member:read",
        fromLevel={"type": "integer"},
        toLevel={"type": "integer"},
        name=_TEXT,
        reason=_TEXT,
    ),
    _t(
        "tier.grace_started",
        "The member fell below their tier's threshold: a grace period runs until graceUntil.",
        "member",
        "member:read",
        level={"type": "integer"},
        graceUntil=_TEXT,
        growthValue=_TEXT,
    ),
    _t(
        "consent.requested",
        "You asked the member for consent (requestConsent); they decide in the portal.",
        "own",
        None,
        requestId=_TEXT,
        permissions={"type": "array", "items": _TEXT},
    ),
    _t(
        "consent.request_decided",
        "The member approved or rejected your consent request (decision: approved | rejected).",
        "own",
        None,
        requestId=_TEXT,
        decision={"type": "string", "enum": ["approved", "rejected"]},
    ),
    _t(
        "consent.granted",
        "The member consented to you (again).",
        "own",
        None,
        consentId=_TEXT,
        permissions={"type": "array", "items": _TEXT},
    ),
    _t(
        "consent.widened",
        "The member gave you more permissions.",
        "own",
        None,
        consentId=_TEXT,
        permissions={"type": "array", "items": _TEXT},
    ),
    _t(
        "consent.renewed",
        "The member renewed their consent unchanged.",
        "own",
        None,
        consentId=_TEXT,
        permissions={"type": "array", "items": _TEXT},
    ),
    _t(
        "consent.narrowed",
        "The member took permissions back: stop using the data they cover (mandatory).",
        "privacy",
        None,
        consentId=_TEXT,
        permissions={"type": "array", "items": _TEXT},
    ),
    _t(
        "consent.revoked",
        "The consent ended (by the member or by you): stop using the member's data (mandatory).",
        "privacy",
        None,
        consentId=_TEXT,
        by=_TEXT,
    ),
    _t("consent.expired", "The consent reached its expiry (mandatory).", "privacy", None, consentId=_TEXT),
    _t(
        "points.earned",
        "You awarded points; they are available.",
        "own",
        "points:read",
        transactionId=_TEXT,
        points=_POINTS,
    ),
    _t(
        "points.pending",
        "You awarded points; they become available after the return window.",
        "own",
        "points:read",
        transactionId=_TEXT,
        points=_POINTS,
    ),
    _t(
        "points.redeemed",
        "You redeemed the member's points.",
        "own",
        "points:read",
        transactionId=_TEXT,
        points=_POINTS,
    ),
    _t("points.held", "You placed a hold on the member's points.", "own", "points:read", points=_POINTS),
    _t("points.captured", "You captured a hold.", "own", "points:read", holdId=_TEXT, points=_POINTS),
    _t("hold.voided", "You voided a hold.", "own", "points:read", holdId=_TEXT),
    _t("hold.expired", "One of your holds expired unused.", "own", "points:read", holdId=_TEXT, points=_POINTS),
    _t(
        "points.reversed",
        "You reversed one of your transactions.",
        "own",
        "points:read",
        transactionId=_TEXT,
        points=_POINTS,
    ),
    _t("points.matured", "The member's pending points became available.", "member", "points:read", points=_POINTS),
    _t("points.expired", "Some of the member's points expired.", "member", "points:read", points=_POINTS),
    _t(
        "points.expiring",
        "Some of the member's points expire soon (once per batch of points expiring together).",
        "member",
        "points:read",
        points=_POINTS,
        expiresAt=_TEXT,
    ),
    _t(
        "purchase.recorded",
        "You recorded a purchase.",
        "own",
        "purchases:read",
        purchaseId=_TEXT,
        reference=_TEXT,
        points=_POINTS,
    ),
    _t(
        "purchase.refunded",
        "You refunded (part of) a purchase.",
        "own",
        "purchases:read",
        purchaseId=_TEXT,
        refundId=_TEXT,
        pointsReversed=_POINTS,
    ),
    *(
        _t(name, text, "own", "points:read", claimId=_TEXT, quantity=_POINTS, points=_POINTS)
        for name, text in (
            ("reward.claimed", "You (or the member, for your reward) claimed a reward: its points are held."),
            ("reward.voided", "A claim you made was voided: its points went back to the member."),
            ("reward.expired", "A claim you made expired unredeemed: its points went back to the member."),
            ("reward.reversed", "The order a claim was redeemed in at you was refunded: the claim is reversed."),
        )
    ),
    _t(
        "reward.redeemed",
        "You redeemed a member's reward claim at your till.",
        "own",
        "points:read",
        claimId=_TEXT,
        rewardId=_TEXT,
        quantity=_POINTS,
    ),
    _t(
        "activity.recorded",
        "You recorded a health activity.",
        "own",
        "activity:write",
        activityId=_TEXT,
        kind=_TEXT,
        pointsGranted=_POINTS,
    ),
)
_AT_RISK = EventType(
    "member.at_risk",
    "A member of yours is slipping away: their chance of still being your customer (pAlive) fell below your "
    "threshold (at most once per member per 90 days). With what a win-back offer needs.",
    "own",
    "analytics:read",
    {
        "pAlive": {"type": "number", "minimum": 0, "maximum": 1},
        "segment": _TEXT,
        "lastPurchaseDate": {"type": "string", "format": "date"},
        "availablePoints": _POINTS,
        "expiringSoonest": {
            "type": "object",
            "properties": {"points": _POINTS, "expiresAt": _TEXT},
            "required": ["points", "expiresAt"],
            "additionalProperties": False,
        },
    },
    requires={"availablePoints": "points:read", "expiringSoonest": "points:read"},
)
CATALOGUE: dict[str, EventType] = {e.name: e for e in (*_TYPES, _AT_RISK)}
WEBHOOK_TEST = EventType(
    "webhook.test",
    "Sent by sendTestWebhook: checks that you receive and verify deliveries.",
    "own",
    None,
    {"endpointId": _TEXT, "message": _TEXT},
    about_member=False,
)
SUBSCRIBABLE = {**CATALOGUE, WEBHOOK_TEST.name: WEBHOOK_TEST}


def document() -> str:
    """docs/webhooks.md, generated: a test keeps the committed file equal to this."""
    lines = [
        "# Webhook events",
        "",
        "Generated from `hub/webhooks/catalogue.py` (`hub webhooks catalogue > docs/webhooks.md`); a test keeps it",
        "current. Each delivery is signed as Standard Webhooks says (`webhook-id`, `webhook-timestamp`,",
        "`webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`), the body is `{type, timestamp, data}`,",
        "and `data.memberId` is your pairwise id for the member. Deduplicate on `webhook-id`: delivery is at least",
        "once. Mandatory events reach every endpoint of the partner concerned, subscribed or not.",
        "",
        "| type | who receives it | needs the member's consent to | description |",
        "|---|---|---|---|",
    ]
    audience = {
        "own": "the partner that acted",
        "member": "every partner the member consented to",
        "privacy": "the partner concerned (mandatory)",
    }
    for e in SUBSCRIBABLE.values():
        lines.append(f"| `{e.name}` | {audience[e.audience]} | {e.permission or '—'} | {e.description} |")
    lines.append("")
    for e in SUBSCRIBABLE.values():
        lines += [f"## `{e.name}`", "", "```json", json.dumps(e.payload_schema(), indent=2), "```", ""]
    return "\n".join(lines)
