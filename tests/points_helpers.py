"""Helpers for calling the ledger through GraphQL as a partner would."""

from __future__ import annotations

import secrets
from typing import Any

from hub.points.verify import verify
from hub.state import Hub
from tests.conftest import ENROLL, PartnerClient, enrolment, new_phone

TXN_FIELDS = "id kind status points reversedPoints reference reason pendingUntil createdAt"
HOLD_FIELDS = "id status points capturedPoints expiresAt reference"
ERRORS = "errors { field message code }"


def _mutation(name: str, input_type: str, result: str, fields: str) -> str:
    return f"mutation($input: {input_type}!) {{ {name}(input: $input) {{ {result} {{ {fields} }} {ERRORS} }} }}"


EARN = _mutation("earnPoints", "EarnPointsInput", "transaction", TXN_FIELDS)
REDEEM = _mutation("redeemPoints", "RedeemPointsInput", "transaction", TXN_FIELDS)
HOLD = _mutation("holdPoints", "HoldPointsInput", "hold", HOLD_FIELDS)
CAPTURE = _mutation("captureHold", "CaptureHoldInput", "transaction", TXN_FIELDS)
VOID = _mutation("voidHold", "VoidHoldInput", "hold", HOLD_FIELDS)
REVERSE = _mutation("reverseTransaction", "ReverseTransactionInput", "transaction", TXN_FIELDS)
POINTS = """query($id: ID!) { member(id: $id) { points { available pending held lifetimeEarned
  expiring(first: 5) { points expiresAt } } } }"""

ALL_POINTS = ["member:read", "points:read", "points:earn", "points:redeem"]


def key() -> str:
    return "k-" + secrets.token_hex(8)


async def enrol_member(partner: PartnerClient, permissions: list[str] | None = None, phone: str | None = None) -> str:
    """Enrol (a new phone, or a known one confirmed with the member's code, which links the membership)."""
    consent = {"permissions": permissions or ALL_POINTS, "policyVersion": "2026-01", "channel": "POS"}
    phone = phone or new_phone()
    result = await partner.gql(ENROLL, enrolment("X-" + secrets.token_hex(6), phone, consent=consent))
    member_id = str(result["data"]["enrollMember"]["member"]["id"])
    return str((await partner.confirm(member_id, phone))["member"]["id"])


async def call(partner: PartnerClient, mutation: str, **fields: Any) -> dict[str, Any]:
    """Run a ledger mutation; returns its payload (the single root field's value)."""
    fields.setdefault("idempotencyKey", key())
    result = await partner.gql(mutation, {"input": fields})
    assert "errors" not in result or result.get("data"), result
    payload: dict[str, Any] = next(iter(result["data"].values()))
    return payload


def code(payload: dict[str, Any]) -> str | None:
    return payload["errors"][0]["code"] if payload["errors"] else None


async def balances(partner: PartnerClient, member_id: str) -> dict[str, Any]:
    result = await partner.gql(POINTS, {"id": member_id})
    return result["data"]["member"]["points"]  # type: ignore[no-any-return]


async def assert_ledger_clean(hub: Hub) -> None:
    async with hub.db.read() as conn:
        problems = await verify(conn)
    assert problems == [], problems
