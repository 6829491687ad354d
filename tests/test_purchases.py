"""Purchases, refunds, activities and tiers through HTTP, as a pharmacy, an insurer and a gym would use them."""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from hub.app import create_app
from hub.clock import FrozenClock
from hub.config import Settings
from hub.partners import service as partners
from hub.points.verify import verify
from hub.programme.config import DEFAULT_FILE
from hub.state import Hub
from hub.tiers.jobs import review_tiers
from tests.conftest import ENROLL, ISSUER, PartnerClient, SmsGateway, enrolment, new_phone
from tests.points_helpers import REDEEM, key
from tests.portal_helpers import browser

SHOPPER = ["member:read", "points:read", "points:earn", "points:redeem", "purchases:write"]
PURCHASE = """
mutation($input: RecordPurchaseInput!) {
  recordPurchase(input: $input) {
    purchase { id reference pointsEarned growthValue amount refunded }
    member { points { available pending } tier { level name } }
    errors { field message code }
  }
}
"""
REFUND = """
mutation($input: RefundPurchaseInput!) {
  refundPurchase(input: $input) {
    refund { id amount pointsReversed growthValueReversed }
    purchase { pointsEarned growthValue refunded }
    member { points { available pending } }
    errors { field message code }
  }
}
"""
ACTIVITY = """
mutation($input: RecordActivityInput!) {
  recordActivity(input: $input) {
    activity { id kind pointsGranted pointsCapped }
    member { points { available } }
    errors { field message code }
  }
}
"""
TIER = """
query($id: ID!) { member(id: $id) { tier {
  level name since
  benefits { discountRate pointsMultiplier birthdayGift freeHealthCheck priorityPurchase }
  progress { growthValue windowStart nextLevel { level name threshold } growthToNextLevel growthToKeepLevel reviewAt }
  history(first: 5) { fromLevel toLevel reason at }
} } }
"""


async def shopper(
    partner: PartnerClient, *, birthday: str = "1980-05-17", permissions: list[str] = SHOPPER, phone: str | None = None
) -> str:
    consent = {"permissions": permissions, "policyVersion": "2026-01", "channel": "POS"}
    phone = phone or new_phone()
    variables = enrolment("S-" + secrets.token_hex(6), phone, consent=consent, birthday=birthday)
    result = await partner.gql(ENROLL, variables)
    assert result["data"]["enrollMember"]["errors"] == [], result
    # The shopper hands back the code sent to their phone, which links a membership they already have.
    return str((await partner.confirm(result["data"]["enrollMember"]["member"]["id"], phone))["member"]["id"])


def line(amount: str, **extra: Any) -> dict[str, Any]:
    return {"sku": extra.pop("sku", "SKU-" + secrets.token_hex(3)), "category": "otc", "amount": amount, **extra}


async def approved_request(
    app: Any, partner: PartnerClient, member_id: str, phone: str, sms_gateway: SmsGateway, **request: Any
) -> None:
    """The partner asks for consent (`requestConsent`); the member signs in to the portal and approves."""
    asked = await partner.gql(
        "mutation($input: RequestConsentInput!) { requestConsent(input: $input) { consentRequest { id } } }",
        {"input": {"memberId": member_id, "purposes": ["premium discount"], **request}},
    )
    member = browser(app, phone)
    await member.sign_in(sms_gateway)
    request_id = asked["data"]["requestConsent"]["consentRequest"]["id"]
    assert (await member.post(f"/portal/requests/{request_id}", {"decision": "approve"})).status_code == 303


async def buy(
    partner: PartnerClient, member_id: str, lines: list[dict[str, Any]], at: Any, **extra: Any
) -> dict[str, Any]:
    data = {
        "memberId": member_id,
        "reference": extra.pop("reference", "R-" + secrets.token_hex(5)),
        "occurredAt": at.isoformat(),
        "lines": lines,
        "idempotencyKey": extra.pop("idempotencyKey", key()),
        **extra,
    }
    result = await partner.gql(PURCHASE, {"input": data})
    return dict(result["data"]["recordPurchase"])


async def test_purchase_earns_pending_points_and_growth(make_partner: Any, clock: FrozenClock) -> None:
    pharmacy = await make_partner()
    member_id = await shopper(pharmacy)
    bought = await buy(pharmacy, member_id, [line("39.90"), line("60.15", quantity=3)], clock.now())
    assert bought["errors"] == []
    assert bought["purchase"]["pointsEarned"] == 99  # 39 + 60, each line rounded down
    assert bought["purchase"]["growthValue"] == "100.05"
    assert bought["member"]["points"] == {"available": 0, "pending": 99}  # the 7-day return window
    assert bought["member"]["tier"] == {"level": 0, "name": "注册会员"}


async def test_birthday_month_doubles_and_exclusions_earn_nothing(make_partner: Any, clock: FrozenClock) -> None:
    pharmacy = await make_partner()
    local = clock.now().astimezone(Settings().points_policy.zone)
    born = f"1980-{local.month:02d}-01"
    celebrating = await shopper(pharmacy, birthday=born)
    bought = await buy(
        pharmacy,
        celebrating,
        [line("100.00"), line("80.00", prescription=True), line("20.00", insurerPaid=True)],
        clock.now(),
    )
    assert bought["purchase"]["pointsEarned"] == 200  # only the 100 yuan line, twice over
    assert bought["purchase"]["growthValue"] == "100.00"


async def test_bad_input_is_typed_and_writes_nothing(make_partner: Any, hub: Hub, clock: FrozenClock) -> None:
    pharmacy = await make_partner()
    member_id = await shopper(pharmacy)
    now = clock.now()
    cases = [
        (dict(memberId="mbr_nobody"), [line("1.00")], "MEMBER_NOT_FOUND"),
        ({}, [line("-5.00")], "INVALID_AMOUNT"),
        ({}, [line("abc")], "INVALID_AMOUNT"),
        ({}, [line("1.001")], "INVALID_AMOUNT"),
        ({}, [], "INVALID_INPUT"),
        (dict(occurredAt=(now + timedelta(days=1)).isoformat()), [line("1.00")], "INVALID_INPUT"),
    ]
    for overrides, lines, code in cases:
        data = {
            "memberId": member_id,
            "reference": "BAD-" + secrets.token_hex(3),
            "occurredAt": now.isoformat(),
            "lines": lines,
            "idempotencyKey": key(),
            **overrides,
        }
        result = (await pharmacy.gql(PURCHASE, {"input": data}))["data"]["recordPurchase"]
        assert result["purchase"] is None and result["errors"][0]["code"] == code, (overrides, result)

    first = await buy(pharmacy, member_id, [line("10.00", sku="A")], now, reference="DUP-1", idempotencyKey="dup-key")
    same = await buy(pharmacy, member_id, [line("10.00", sku="A")], now, reference="DUP-1", idempotencyKey="dup-key")
    assert same["purchase"] == first["purchase"]
    other_body = await buy(pharmacy, member_id, [line("11.00", sku="A")], now, reference="DUP-1")
    assert other_body["errors"][0]["code"] == "DUPLICATE_REFERENCE"
    other_key_use = await buy(pharmacy, member_id, [line("12.00", sku="A")], now, idempotencyKey="dup-key")
    assert other_key_use["errors"][0]["code"] == "IDEMPOTENCY_CONFLICT"
    async with hub.db.read() as conn:
        assert await verify(conn) == []


async def test_refund_after_the_points_were_spent_blocks_redemption(make_partner: Any, clock: FrozenClock) -> None:
    pharmacy = await make_partner()
    member_id = await shopper(pharmacy)
    past = clock.now() - timedelta(days=30)  # outside the return window: the points are available at once
    await buy(pharmacy, member_id, [line("200.00", sku="A"), line("100.00", sku="B")], past, reference="SPENT-1")
    spent = await pharmacy.gql(REDEEM, {"input": {"memberId": member_id, "points": 250, "idempotencyKey": key()}})
    assert spent["data"]["redeemPoints"]["errors"] == []

    too_much = await pharmacy.gql(
        REFUND, {"input": {"purchaseReference": "SPENT-1", "amount": "300.01", "idempotencyKey": key()}}
    )
    assert too_much["data"]["refundPurchase"]["errors"][0]["code"] == "REFUND_EXCEEDS_PURCHASE"
    wrong_line = await pharmacy.gql(
        REFUND,
        {
            "input": {
                "purchaseReference": "SPENT-1",
                "lines": [{"sku": "B", "amount": "100.01"}],
                "idempotencyKey": key(),
            }
        },
    )
    assert wrong_line["data"]["refundPurchase"]["errors"][0]["code"] == "REFUND_EXCEEDS_PURCHASE"

    refunded = await pharmacy.gql(
        REFUND,
        {
            "input": {
                "purchaseReference": "SPENT-1",
                "lines": [{"sku": "A", "amount": "200.00"}],
                "idempotencyKey": key(),
            }
        },
    )
    result = refunded["data"]["refundPurchase"]
    assert result["errors"] == []
    refund = {k: v for k, v in result["refund"].items() if k != "id"}
    assert refund == {"amount": "200.00", "pointsReversed": 200, "growthValueReversed": "200.00"}
    assert result["purchase"]["pointsEarned"] == 100 and result["purchase"]["growthValue"] == "100.00"
    assert result["member"]["points"]["available"] == -150  # 300 earned, 250 spent, 200 taken back
    blocked = await pharmacy.gql(REDEEM, {"input": {"memberId": member_id, "points": 1, "idempotencyKey": key()}})
    assert blocked["data"]["redeemPoints"]["errors"][0]["code"] == "NEGATIVE_BALANCE"


async def test_tier_upgrade_at_once_and_downgrade_only_after_grace(
    make_partner: Any, hub: Hub, clock: FrozenClock
) -> None:
    pharmacy = await make_partner()
    member_id = await shopper(pharmacy)
    bought = await buy(pharmacy, member_id, [line("5230.00")], clock.now(), reference="BIG-1")
    assert bought["member"]["tier"] == {"level": 2, "name": "银卡"}
    tier = (await pharmacy.gql(TIER, {"id": member_id}))["data"]["member"]["tier"]
    assert tier["benefits"]["discountRate"] == "0.80" and tier["benefits"]["birthdayGift"] is True
    assert tier["progress"]["growthValue"] == "5230.00"
    assert tier["progress"]["nextLevel"] == {"level": 3, "name": "金卡", "threshold": "10000.00"}
    assert tier["progress"]["growthToNextLevel"] == "4770.00"
    assert tier["history"][0]["toLevel"] == 2
    assert "5230.00" in tier["history"][0]["reason"] and "银卡" in tier["history"][0]["reason"]

    # A refund takes the growth below 银卡; nothing changes until a review, and then only after the grace period.
    await pharmacy.gql(REFUND, {"input": {"purchaseReference": "BIG-1", "amount": "1000.00", "idempotencyKey": key()}})
    assert (await pharmacy.gql(TIER, {"id": member_id}))["data"]["member"]["tier"]["level"] == 2
    clock.advance(days=32)  # past the next monthly review
    await review_tiers(hub.db, hub.settings, clock.now())
    held = (await pharmacy.gql(TIER, {"id": member_id}))["data"]["member"]["tier"]
    assert held["level"] == 2 and held["progress"]["growthToKeepLevel"] == "770.00"
    clock.advance(days=31)  # the 30-day grace ran out
    await review_tiers(hub.db, hub.settings, clock.now())
    after = (await pharmacy.gql(TIER, {"id": member_id}))["data"]["member"]["tier"]
    assert after["level"] == 1 and after["name"] == "普通"
    assert "grace period" in after["history"][0]["reason"]


async def test_activity_caps_per_day_and_week(make_partner: Any, hub: Hub, clock: FrozenClock) -> None:
    gym = await make_partner(kind="gym")
    expires = (clock.now() + timedelta(days=365)).isoformat()
    consent = {
        "permissions": ["member:read", "points:read", "activity:write"],
        "policyVersion": "2026-01",
        "channel": "APP",
        "expiresAt": expires,
    }
    enrolled = await gym.gql(ENROLL, enrolment("G-" + secrets.token_hex(4), new_phone(), consent=consent))
    member_id = enrolled["data"]["enrollMember"]["member"]["id"]

    async def visit(kind: str, at: Any) -> dict[str, Any]:
        data = {
            "memberId": member_id,
            "kind": kind,
            "occurredAt": at.isoformat(),
            "reference": key(),
            "idempotencyKey": key(),
        }
        return dict((await gym.gql(ACTIVITY, {"input": data}))["data"]["recordActivity"])

    refused = await visit("WORKOUT", clock.now())
    assert refused["errors"][0]["code"] == "ACTIVITY_NOT_ALLOWED"
    async with hub.db.write() as conn:
        await partners.set_terms(
            conn, partner_public_id=gym.partner_id, activity_kinds=["WORKOUT", "GYM_VISIT"], now=clock.now()
        )
    zone = hub.settings.points_policy.zone
    monday = (clock.now().astimezone(zone) - timedelta(days=clock.now().astimezone(zone).weekday() + 7)).replace(
        hour=8, minute=0
    )
    first = await visit("WORKOUT", monday)
    second = await visit("WORKOUT", monday + timedelta(hours=2))  # same day: the daily cap of 8
    assert (first["activity"]["pointsGranted"], first["activity"]["pointsCapped"]) == (8, 0)
    assert (second["activity"]["pointsGranted"], second["activity"]["pointsCapped"]) == (0, 8)
    week = [await visit("WORKOUT", monday + timedelta(days=d)) for d in range(1, 6)]
    assert [w["activity"]["pointsGranted"] for w in week] == [8, 8, 8, 8, 0]  # 40 a week
    other_kind = await visit("GYM_VISIT", monday + timedelta(days=5))
    assert other_kind["activity"]["pointsGranted"] == 5
    assert other_kind["member"]["points"]["available"] == 45


async def test_mid_month_rule_change_applies_by_occurred_at(
    settings: Settings, clock: FrozenClock, tmp_path: Path, make_partner: Any
) -> None:
    change = (clock.now().astimezone(settings.points_policy.zone) - timedelta(days=10)).date()
    default = DEFAULT_FILE.read_text(encoding="utf-8")
    first_version = "[[version]]\n" + default.split("\n[[version]]\n", 1)[1]
    triple = first_version.replace('effective_from = "2020-01-01"', f'effective_from = "{change}"').replace(
        'points_per_yuan = "1"', 'points_per_yuan = "3"'
    )
    programme = tmp_path / "programme.toml"
    programme.write_text(default + "\n" + triple, encoding="utf-8")
    app = create_app(replace(settings, programme_file=programme), clock=clock)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
            base = await make_partner()
            pharmacy = PartnerClient(http, base.partner_id, base.partner_pk, base.client_id, base.client_secret,
                                     base.scopes, base.sms)  # fmt: skip
            member_id = await shopper(pharmacy)
            before = await buy(pharmacy, member_id, [line("10.00")], clock.now() - timedelta(days=11))
            after = await buy(pharmacy, member_id, [line("10.00")], clock.now() - timedelta(days=9))
    finally:
        await app.state.hub.close()
    assert before["purchase"]["pointsEarned"] == 10
    assert after["purchase"]["pointsEarned"] == 30


async def test_purchase_summary_across_partners_needs_consent(
    app: Any, make_partner: Any, clock: FrozenClock, sms_gateway: SmsGateway
) -> None:
    pharmacy, insurer = await make_partner(), await make_partner(kind="insurer")
    phone = new_phone()
    at_pharmacy = await shopper(pharmacy, phone=phone)
    await buy(pharmacy, at_pharmacy, [line("120.00"), line("30.00", prescription=True)], clock.now())
    query = (
        "query($id: ID!) { member(id: $id) { purchaseSummary(months: 12) "
        "{ spend visits categories { category spend } } } }"
    )

    at_insurer = await shopper(insurer, phone=phone, permissions=["member:read"])
    refused = await insurer.gql(query, {"id": at_insurer})
    assert refused["data"]["member"]["purchaseSummary"] is None
    assert refused["errors"][0]["extensions"]["code"] == "CONSENT_REQUIRED"

    # The insurer asks; the member approves in the portal; the insurer now reads the pharmacy's purchases.
    expires = (clock.now() + timedelta(days=90)).isoformat()
    await approved_request(
        app, insurer, at_insurer, phone, sms_gateway, permissions=["purchases:read"], expiresAt=expires
    )
    summary = (await insurer.gql(query, {"id": at_insurer}))["data"]["member"]["purchaseSummary"]
    assert summary == {"spend": "150.00", "visits": 1, "categories": [{"category": "otc", "spend": "150.00"}]}


async def test_birthday_gift_once_a_year_at_levels_that_give_one(
    make_partner: Any, hub: Hub, clock: FrozenClock
) -> None:
    from sqlalchemy import select

    from hub.events.models import event
    from hub.members.models import member_link

    pharmacy = await make_partner()
    local = clock.now().astimezone(hub.settings.points_policy.zone)
    silver = await shopper(pharmacy, birthday=f"1980-{local.month:02d}-01")
    plain = await shopper(pharmacy, birthday=f"1980-{local.month:02d}-02")
    await buy(pharmacy, silver, [line("5100.00")], clock.now())
    await buy(pharmacy, plain, [line("1100.00")], clock.now())  # 普通: no birthday gift at that level
    for _ in range(2):
        await review_tiers(hub.db, hub.settings, clock.now())
    async with hub.db.read() as conn:
        links = select(member_link.c.pairwise_id, member_link.c.member_id)
        ids = dict((await conn.execute(links.where(member_link.c.pairwise_id.in_([silver, plain])))).all())
        gifts = (
            await conn.execute(
                select(event.c.member_id, event.c.payload).where(
                    event.c.type == "member.birthday_gift", event.c.member_id.in_(list(ids.values()))
                )
            )
        ).all()
    assert [(g.member_id, g.payload) for g in gifts] == [
        (ids[silver], {"level": 2, "name": "银卡", "year": local.year})
    ]


async def test_data_window_limits_the_summary(
    app: Any, make_partner: Any, clock: FrozenClock, sms_gateway: SmsGateway
) -> None:
    pharmacy, insurer = await make_partner(), await make_partner(kind="insurer")
    phone = new_phone()
    at_pharmacy = await shopper(pharmacy, phone=phone)
    await buy(pharmacy, at_pharmacy, [line("70.00")], clock.now() - timedelta(days=40))
    await buy(pharmacy, at_pharmacy, [line("30.00")], clock.now() - timedelta(days=5))
    at_insurer = await shopper(insurer, phone=phone, permissions=["member:read"])
    await approved_request(
        app,
        insurer,
        at_insurer,
        phone,
        sms_gateway,
        permissions=["purchases:read", "consent:read"],
        expiresAt=(clock.now() + timedelta(days=90)).isoformat(),
        dataWindowFrom=(clock.now() - timedelta(days=10)).isoformat(),
    )
    seen = await insurer.gql(
        "query($id: ID!) { member(id: $id) "
        "{ purchaseSummary(months: 12) { spend visits } consents { dataWindowFrom } } }",
        {"id": at_insurer},
    )
    assert seen["data"]["member"]["purchaseSummary"] == {"spend": "30.00", "visits": 1}
    assert seen["data"]["member"]["consents"][0]["dataWindowFrom"] is not None
