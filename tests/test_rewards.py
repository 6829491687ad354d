"""Rewards and coupons through HTTP, as a sponsor, a claiming app and a till would use them; concurrency on a fresh
database of its own; the settlement split and the quote's arithmetic as properties."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select

from hub import migrate
from hub.app import create_app
from hub.clock import FrozenClock
from hub.config import Settings
from hub.partners import service as partners
from hub.points.models import point_hold, point_lot
from hub.points.verify import verify
from hub.programme import earning
from hub.programme.config import Level, load
from hub.rewards import codes
from hub.rewards.jobs import expire_claims, prune_quotes
from hub.rewards.models import pos_quote, reward_claim
from hub.rewards.quote import Coupon, plan
from hub.rewards.settlement import split
from hub.state import Hub
from tests.conftest import ALL_PARTNER_SCOPES, ENROLL, ISSUER, PartnerClient, SmsGateway, enrolment, new_phone
from tests.points_helpers import CAPTURE as CAPTURE_HOLD
from tests.points_helpers import EARN, enrol_member, key
from tests.points_helpers import VOID as VOID_HOLD
from tests.portal_helpers import browser, csrf_of
from tests.test_concurrency import stampede

REWARDS = f"{ALL_PARTNER_SCOPES} rewards:manage rewards:redeem"
SHOPPER = ["member:read", "points:read", "points:earn", "points:redeem", "purchases:write"]
ERRORS = "errors { field message code }"
REWARD_FIELDS = (
    "id sponsorId kind name pointsCost faceValue stock stockLeft memberLimit windows { minTier opensAt } retired"
)
CLAIM_FIELDS = (
    "id rewardId status quantity points value code codeLast4 expiresAt redeemedQuantity redeemedValue orderReference"
)


def _mutation(name: str, input_type: str, result: str, fields: str) -> str:
    return f"mutation($input: {input_type}!) {{ {name}(input: $input) {{ {result} {{ {fields} }} {ERRORS} }} }}"


CREATE = _mutation("createReward", "CreateRewardInput", "reward", REWARD_FIELDS)
UPDATE = _mutation("updateReward", "UpdateRewardInput", "reward", REWARD_FIELDS)
RETIRE = _mutation("retireReward", "RetireRewardInput", "reward", REWARD_FIELDS)
CLAIM = _mutation("claimReward", "ClaimRewardInput", "claim", CLAIM_FIELDS)
REDEEM = _mutation("redeemRewardClaim", "RedeemRewardClaimInput", "claim", CLAIM_FIELDS)
VOID = _mutation("voidRewardClaim", "VoidRewardClaimInput", "claim", CLAIM_FIELDS)
LIST = """query($member: ID, $first: Int) { rewards(first: $first, memberId: $member) {
  edges { node { id name } claimable reason reasonMessage } pageInfo { hasNextPage endCursor } } }"""
QUOTE = """mutation($input: QuoteBasketInput!) { quoteBasket(input: $input) { quote {
  id expiresAt tier { level name reason }
  lines { sku amount tierDiscount couponDiscount pointsDiscount amountToPay pointsEarned earns }
  coupons { claimId codeLast4 name kind amount } refused { code reason message }
  maxPointsToRedeem maxPointsValue pointsToRedeem pointsValue amount amountToPay pointsEarned growthValue earningRule
} errors { field message code } } }"""
PURCHASE = """mutation($input: RecordPurchaseInput!) { recordPurchase(input: $input) {
  purchase { id pointsEarned amount growthValue } errors { field message code } } }"""
REFUND = """mutation($input: RefundPurchaseInput!) { refundPurchase(input: $input) {
  refund { id pointsReversed } errors { field message code } } }"""
REDEEM_POINTS = """mutation($input: RedeemPointsInput!) { redeemPoints(input: $input) {
  transaction { id points } errors { field message code } } }"""
MEMBER = """query($id: ID!) { member(id: $id) { points { available held }
  rewardClaims(first: 10) { id status code codeLast4 quantity } } }"""
STATEMENT = """query($period: String!) { settlementStatement(period: $period) {
  lines { issuer { id } redeemer { id } basis points value } receivable payable } }"""


def payload(result: dict[str, Any]) -> dict[str, Any]:
    assert result.get("data"), result
    found: dict[str, Any] = next(iter(result["data"].values()))
    return found


def error(result: dict[str, Any]) -> str | None:
    errors = payload(result)["errors"]
    return errors[0]["code"] if errors else None


async def create(partner: PartnerClient, **fields: Any) -> dict[str, Any]:
    reward = {"kind": "GIFT", "name": "保温杯", "pointsCost": 500, "faceValue": "30.00", **fields}
    result = payload(await partner.gql(CREATE, {"input": reward}))
    assert result["errors"] == [], result
    return result["reward"]  # type: ignore[no-any-return]


async def claim(partner: PartnerClient, member: str, reward: str, **fields: Any) -> dict[str, Any]:
    return await partner.gql(
        CLAIM, {"input": {"memberId": member, "rewardId": reward, "idempotencyKey": key(), **fields}}
    )


async def earn(partner: PartnerClient, member: str, points: int) -> None:
    result = await partner.gql(EARN, {"input": {"memberId": member, "points": points, "idempotencyKey": key()}})
    assert result["data"]["earnPoints"]["errors"] == [], result


async def grow(partner: PartnerClient, member: str, yuan: str, when: datetime) -> None:
    """A purchase that lifts the member's tier (10000 yuan: 金卡; 5000: 银卡)."""
    variables = {
        "input": {
            "memberId": member,
            "reference": "R-" + secrets.token_hex(6),
            "occurredAt": when.isoformat(),
            "lines": [{"sku": "BIG", "category": "equipment", "amount": yuan}],
            "idempotencyKey": key(),
        }
    }
    result = await partner.gql(PURCHASE, variables)
    assert result["data"]["recordPurchase"]["errors"] == [], result


@pytest.fixture
async def coalition(make_partner: Any) -> dict[str, Any]:
    pharmacy = await make_partner(scopes=REWARDS)
    insurer = await make_partner(kind="insurer", scopes=REWARDS)
    gym = await make_partner(kind="gym", scopes=REWARDS)
    return {"pharmacy": pharmacy, "insurer": insurer, "gym": gym}


async def test_priority_window_gold_first_silver_later(coalition: dict[str, Any], clock: FrozenClock) -> None:
    pharmacy: PartnerClient = coalition["pharmacy"]
    now = clock.now()
    gold, silver = await enrol_member(pharmacy, SHOPPER), await enrol_member(pharmacy, SHOPPER)
    await grow(pharmacy, gold, "10000.00", now - timedelta(hours=1))
    await grow(pharmacy, silver, "5000.00", now - timedelta(hours=1))
    for member in (gold, silver):
        await earn(pharmacy, member, 5000)
    reward = await create(
        pharmacy,
        stock=5,
        memberLimit=1,
        windows=[
            {"minTier": 3, "opensAt": (now - timedelta(minutes=1)).isoformat()},  # 金卡: open now ("Monday 10:00")
            {"minTier": 0, "opensAt": (now + timedelta(days=2)).isoformat()},  # everyone else: two days later
        ],
    )

    listed = (await pharmacy.gql(LIST, {"member": silver, "first": 100}))["data"]["rewards"]["edges"]
    mine = next(e for e in listed if e["node"]["id"] == reward["id"])
    assert (mine["claimable"], mine["reason"]) == (False, "NOT_YET_OPEN")
    assert error(await claim(pharmacy, silver, reward["id"])) == "NOT_YET_OPEN"

    got = payload(await claim(pharmacy, gold, reward["id"]))
    assert got["errors"] == [] and got["claim"]["status"] == "ISSUED"
    assert error(await claim(pharmacy, gold, reward["id"])) == "MEMBER_LIMIT_REACHED"
    listed = (await pharmacy.gql(LIST, {"member": gold, "first": 100}))["data"]["rewards"]["edges"]
    assert next(e for e in listed if e["node"]["id"] == reward["id"])["reason"] == "MEMBER_LIMIT_REACHED"

    clock.advance(days=2)
    try:
        assert payload(await claim(pharmacy, silver, reward["id"]))["errors"] == []
    finally:
        clock.advance(days=-2)

    only_gold = await create(pharmacy, windows=[{"minTier": 3, "opensAt": now.isoformat()}])
    newcomer = await enrol_member(pharmacy, SHOPPER)
    assert error(await claim(pharmacy, newcomer, only_gold["id"])) == "TIER_TOO_LOW"


async def test_catalogue_is_the_sponsors_own(coalition: dict[str, Any], clock: FrozenClock) -> None:
    pharmacy, gym = coalition["pharmacy"], coalition["gym"]
    reward = await create(pharmacy, stock=10)
    # Another sponsor's reward is as unknown as one that never existed.
    foreign = await gym.gql(UPDATE, {"input": {"id": reward["id"], "name": "mine now"}})
    assert error(foreign) == "REWARD_NOT_FOUND"
    assert error(await gym.gql(RETIRE, {"input": {"id": reward["id"]}})) == "REWARD_NOT_FOUND"
    updated = payload(await pharmacy.gql(UPDATE, {"input": {"id": reward["id"], "stock": 20, "name": "大保温杯"}}))
    assert updated["reward"]["stock"] == 20 and updated["reward"]["stockLeft"] == 20
    bad = [
        ({"kind": "GIFT", "name": "x", "pointsCost": -1, "faceValue": "1"}, "pointsCost"),
        ({"kind": "GIFT", "name": "x", "pointsCost": 1, "faceValue": "0"}, "faceValue"),
        ({"kind": "GIFT", "name": "x", "pointsCost": 1, "faceValue": "1", "percentOff": 10}, "percentOff"),
        (
            {
                "kind": "GIFT",
                "name": "x",
                "pointsCost": 1,
                "faceValue": "1",
                "windows": [{"minTier": 9, "opensAt": clock.now().isoformat()}],
            },
            "windows[0].minTier",
        ),
        (
            {"kind": "GIFT", "name": "x", "pointsCost": 1, "faceValue": "1", "redeemableAt": ["ptn_nobody"]},
            "redeemers[0]",
        ),
    ]
    for fields, field in bad:
        refused = payload(await pharmacy.gql(CREATE, {"input": fields}))
        assert refused["errors"] and refused["errors"][0]["field"] == field, (fields, refused)
    retired = payload(await pharmacy.gql(RETIRE, {"input": {"id": reward["id"]}}))
    assert retired["reward"]["retired"] is True
    member = await enrol_member(pharmacy, SHOPPER)
    assert error(await claim(pharmacy, member, reward["id"])) == "REWARD_NOT_FOUND"
    assert error(await claim(pharmacy, member, "rwd_nosuchreward")) == "REWARD_NOT_FOUND"
    assert error(await claim(pharmacy, member, reward["id"], quantity=0)) == "INVALID_INPUT"
    # Scopes: claiming needs rewards:redeem, the catalogue rewards:manage.
    assert "rewards:manage" not in ALL_PARTNER_SCOPES
    plain = await coalition["pharmacy"].gql(
        CREATE,
        {"input": {"kind": "GIFT", "name": "x", "pointsCost": 1, "faceValue": "1"}},
        token=await pharmacy.token("points:read"),
    )
    assert plain["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"


async def test_claim_redeem_by_code_and_settle(coalition: dict[str, Any], hub: Hub, clock: FrozenClock) -> None:
    pharmacy, insurer, gym = coalition["pharmacy"], coalition["insurer"], coalition["gym"]
    async with hub.db.write() as conn:  # the insurer's points are worth 2 fen each
        await partners.set_terms(
            conn, partner_public_id=insurer.partner_id, now=clock.now(), point_value=Decimal("0.02")
        )
    member_at_pharmacy = await enrol_member(pharmacy, SHOPPER)
    phone_member = await _same_member_at(insurer, pharmacy, member_at_pharmacy, hub)
    await earn(insurer, phone_member, 300)
    await earn(pharmacy, member_at_pharmacy, 300)
    # The gym sponsors a health check worth 30 yuan, redeemed at the pharmacy, for 500 points.
    reward = await create(
        gym, kind="SERVICE", name="体检", pointsCost=500, faceValue="30.00", stock=3, redeemableAt=[pharmacy.partner_id]
    )
    claimed = payload(await claim(pharmacy, member_at_pharmacy, reward["id"]))
    assert claimed["errors"] == [], claimed
    code = claimed["claim"]["code"]
    assert len(code) == 13 and code[5] == code[11] == "-"
    held = (await pharmacy.gql(MEMBER, {"id": member_at_pharmacy}))["data"]["member"]
    assert held["points"] == {"available": 100, "held": 500}
    assert held["rewardClaims"][0]["code"] == code

    # The gym cannot redeem it (not where it is redeemable); a typo never reaches the database.
    assert error(await gym.gql(REDEEM, {"input": {"code": code, "orderReference": "G1", "idempotencyKey": key()}})) in (
        "CLAIM_NOT_FOUND",
        "MEMBER_NOT_FOUND",
    )
    typo = code[:2] + ("0" if code[2] != "0" else "1") + code[3:]
    assert (
        error(await pharmacy.gql(REDEEM, {"input": {"code": typo, "orderReference": "P1", "idempotencyKey": key()}}))
        == "INVALID_CODE"
    )

    typed = code.replace("-", "").lower()  # as a cashier types it
    redeemed = payload(
        await pharmacy.gql(REDEEM, {"input": {"code": typed, "orderReference": "P1", "idempotencyKey": key()}})
    )
    assert redeemed["errors"] == [], redeemed
    assert redeemed["claim"]["status"] == "REDEEMED" and redeemed["claim"]["redeemedQuantity"] == 1
    again = await pharmacy.gql(REDEEM, {"input": {"code": code, "orderReference": "P2", "idempotencyKey": key()}})
    assert error(again) == "CLAIM_REDEEMED"

    period = clock.now().astimezone(hub.settings.points_policy.zone).strftime("%Y-%m")
    lines = (await pharmacy.gql(STATEMENT, {"period": period}))["data"]["settlementStatement"]["lines"]
    ours = {
        (x["issuer"]["id"], x["basis"]): x
        for x in lines
        if x["basis"].startswith("REWARD") and x["redeemer"]["id"] == pharmacy.partner_id
    }
    # 500 points: 300 of the insurer's (FIFO by expiry, then age) and 200 of the pharmacy's own, or the other way.
    insurer_line = ours[(insurer.partner_id, "REWARD_POINTS")]
    gym_line = ours[(gym.partner_id, "REWARD_SPONSOR")]
    own = 500 - insurer_line["points"]
    assert Decimal(insurer_line["value"]) == Decimal(insurer_line["points"]) * Decimal("0.02")
    assert Decimal(gym_line["value"]) == Decimal("30.00") - Decimal(insurer_line["value"]) - Decimal(own) / 100
    async with hub.db.read() as conn:
        assert await verify(conn) == []


async def _same_member_at(other: PartnerClient, first: PartnerClient, member: str, hub: Hub) -> str:
    """Link the member to a second partner (the member confirms the code sent to their phone)."""
    from hub.members.models import member as member_table
    from hub.members.service import linked_member_id

    async with hub.db.read() as conn:
        member_pk = await linked_member_id(conn, first.partner_pk, member)
        phone = await conn.scalar(select(member_table.c.phone).where(member_table.c.id == member_pk))
    return await enrol_member(other, SHOPPER, phone=str(phone))


async def test_mistyped_code_is_refused_before_any_database_read(coalition: dict[str, Any], hub: Hub) -> None:
    body = "7K3M9Q2XTB"
    good = codes.display(body)
    assert codes.parse(good) == body and codes.parse(good.lower().replace("-", " ")) == body
    assert codes.parse(good.replace("1", "I").replace("0", "O")) == body
    for i in range(10):  # every single-symbol error and every swap of neighbours fails the check
        for symbol in codes.SYMBOLS:
            if symbol != body[i]:
                with pytest.raises(codes.CodeError):
                    codes.parse(codes.display(body)[: i + i // 5] + symbol + good[i + i // 5 + 1 :])
        if i < 9 and body[i] != body[i + 1]:
            swapped = body[:i] + body[i + 1] + body[i] + body[i + 2 :]
            with pytest.raises(codes.CodeError):
                codes.parse(swapped + codes.check_symbol(body))

    pharmacy = coalition["pharmacy"]
    seen: list[str] = []

    def statement(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        seen.append(sql)

    engines = [engine.sync_engine for engine in hub.db.engines]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", statement)
    try:
        result = await pharmacy.gql(
            REDEEM,
            {
                "input": {
                    "code": good[:-1] + ("0" if good[-1] != "0" else "1"),
                    "orderReference": "X",
                    "idempotencyKey": key(),
                }
            },
        )
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", statement)
    assert error(result) == "INVALID_CODE"
    assert not [sql for sql in seen if "reward" in sql], seen


async def test_void_and_expiry_give_back_points_stock_and_limit(
    coalition: dict[str, Any], hub: Hub, clock: FrozenClock
) -> None:
    pharmacy, gym = coalition["pharmacy"], coalition["gym"]
    member = await enrol_member(pharmacy, SHOPPER)
    await earn(pharmacy, member, 1000)
    reward = await create(pharmacy, stock=2, memberLimit=1, claimValidDays=1)
    first = payload(await claim(pharmacy, member, reward["id"]))["claim"]
    async with hub.db.read() as conn:  # the claim's hold is the claim's: not voided or captured past it
        hold = await conn.scalar(
            select(point_hold.c.public_id)
            .join(reward_claim, reward_claim.c.hold_id == point_hold.c.id)
            .where(reward_claim.c.public_id == first["id"])
        )
    for bypass in (VOID_HOLD, CAPTURE_HOLD):
        variables = {"holdId": hold, "idempotencyKey": key(), **({"points": 500} if bypass is CAPTURE_HOLD else {})}
        assert error(await pharmacy.gql(bypass, {"input": variables})) == "HOLD_NOT_FOUND"
    assert error(await gym.gql(VOID, {"input": {"claimId": first["id"], "idempotencyKey": key()}})) == "CLAIM_NOT_FOUND"
    voided = payload(await pharmacy.gql(VOID, {"input": {"claimId": first["id"], "idempotencyKey": key()}}))
    assert voided["claim"]["status"] == "VOIDED"
    second = payload(await claim(pharmacy, member, reward["id"]))["claim"]  # the limit came back with the void
    assert (await pharmacy.gql(MEMBER, {"id": member}))["data"]["member"]["points"] == {"available": 500, "held": 500}

    clock.advance(days=1, seconds=1)
    try:
        assert await expire_claims(hub.db, clock.now()) >= 1
        state = (await pharmacy.gql(MEMBER, {"id": member}))["data"]["member"]
        assert state["points"] == {"available": 1000, "held": 0}
        assert {c["id"]: c["status"] for c in state["rewardClaims"]}[second["id"]] == "EXPIRED"
        stale = await pharmacy.gql(
            REDEEM, {"input": {"claimId": second["id"], "orderReference": "late", "idempotencyKey": key()}}
        )
        assert error(stale) == "CLAIM_EXPIRED"
    finally:
        clock.advance(days=-1, seconds=-1)
    listed = (await pharmacy.gql(LIST, {"member": member, "first": 100}))["data"]["rewards"]["edges"]
    assert next(e for e in listed if e["node"]["id"] == reward["id"])["claimable"] is True
    async with hub.db.read() as conn:
        assert await verify(conn) == []


async def test_partial_redemption_then_refund_restores_every_lot(
    coalition: dict[str, Any], hub: Hub, clock: FrozenClock
) -> None:
    pharmacy, insurer = coalition["pharmacy"], coalition["insurer"]
    member = await enrol_member(pharmacy, SHOPPER)
    other = await _same_member_at(insurer, pharmacy, member, hub)
    await earn(pharmacy, member, 700)
    await earn(insurer, other, 600)
    async with hub.db.read() as conn:
        before = dict(
            (
                await conn.execute(
                    select(point_lot.c.id, point_lot.c.remaining).where(
                        point_lot.c.member_id == await _pk(hub, pharmacy, member)
                    )
                )
            ).all()
        )
    reward = await create(pharmacy, pointsCost=400, faceValue="10.00", stock=10)
    claimed = payload(await claim(pharmacy, member, reward["id"], quantity=3))["claim"]
    assert claimed["points"] == 1200
    reference = "ORDER-" + secrets.token_hex(4)
    variables = {
        "input": {
            "memberId": member,
            "reference": reference,
            "occurredAt": clock.now().isoformat(),
            "lines": [{"sku": "A", "category": "otc", "amount": "50.00"}],
            "idempotencyKey": key(),
        }
    }
    assert (await pharmacy.gql(PURCHASE, variables))["data"]["recordPurchase"]["errors"] == []
    taken = payload(
        await pharmacy.gql(
            REDEEM,
            {"input": {"claimId": claimed["id"], "orderReference": reference, "quantity": 2, "idempotencyKey": key()}},
        )
    )
    assert taken["claim"]["redeemedQuantity"] == 2, taken
    points = (await pharmacy.gql(MEMBER, {"id": member}))["data"]["member"]["points"]
    assert points == {"available": 500, "held": 0}
    refund = {"input": {"purchaseReference": reference, "amount": "50.00", "idempotencyKey": key()}}
    assert (await pharmacy.gql(REFUND, refund))["data"]["refundPurchase"]["errors"] == []
    state = (await pharmacy.gql(MEMBER, {"id": member}))["data"]["member"]
    assert state["points"]["available"] == 1300
    assert {c["id"]: c["status"] for c in state["rewardClaims"]}[claimed["id"]] == "REVERSED"
    async with hub.db.read() as conn:
        after = dict(
            (
                await conn.execute(
                    select(point_lot.c.id, point_lot.c.remaining).where(point_lot.c.id.in_(list(before)))
                )
            ).all()
        )
        assert after == before
        assert await verify(conn) == []


async def _pk(hub: Hub, partner: PartnerClient, member: str) -> int:
    from hub.members.service import linked_member_id

    async with hub.db.read() as conn:
        found = await linked_member_id(conn, partner.partner_pk, member)
    assert found is not None
    return found


async def test_till_quote_coupon_points_and_recording_agree(
    coalition: dict[str, Any], hub: Hub, clock: FrozenClock
) -> None:
    pharmacy = coalition["pharmacy"]
    member = await enrol_member(pharmacy, SHOPPER)
    await grow(pharmacy, member, "10000.00", clock.now() - timedelta(days=1))  # 金卡: 7折
    await earn(pharmacy, member, 5000)
    coupon = await create(pharmacy, kind="COUPON", name="满减券", pointsCost=1000, faceValue="20.00")
    code = payload(await claim(pharmacy, member, coupon["id"]))["claim"]["code"]
    lines = [
        {"sku": "VITC", "category": "supplements", "amount": "100.00"},
        {"sku": "RX-1", "category": "rx", "amount": "80.00", "prescription": True},
        {"sku": "MILK", "category": "grocery", "amount": "20.00", "discountable": False},
    ]
    basket = {"memberId": member, "storeId": "S1", "lines": lines, "couponCodes": [code, "NOT-A-CODE"]}
    quoted = payload(await pharmacy.gql(QUOTE, {"input": basket}))
    assert quoted["errors"] == [], quoted
    q = quoted["quote"]
    assert q["tier"]["level"] == 3 and "7折" in q["tier"]["reason"]
    vitc, rx, milk = q["lines"]
    assert (Decimal(vitc["tierDiscount"]), Decimal(rx["tierDiscount"]), Decimal(milk["tierDiscount"])) == (
        Decimal("30.00"),
        Decimal("0.00"),
        Decimal("0.00"),
    )
    assert Decimal(vitc["couponDiscount"]) == Decimal("20.00")
    assert [r["reason"] for r in q["refused"]] == ["INVALID_CODE"]
    # 50 % of what the discountable line still costs (50 yuan) is 25 yuan: 2500 points at 100 points a yuan.
    assert q["maxPointsToRedeem"] == 2500 and Decimal(q["maxPointsValue"]) == Decimal("25.00")
    assert rx["pointsEarned"] == 0 and "prescription" in rx["earns"]

    over = await pharmacy.gql(QUOTE, {"input": {**basket, "pointsToRedeem": 2600}})
    assert error(over) == "OFFSET_CAP_EXCEEDED"
    q = payload(await pharmacy.gql(QUOTE, {"input": {**basket, "pointsToRedeem": 2000}}))["quote"]
    assert Decimal(q["pointsValue"]) == Decimal("20.00")
    assert Decimal(q["amountToPay"]) == Decimal("200.00") - 30 - 20 - 20
    reference = "Q-" + secrets.token_hex(4)

    paid = await pharmacy.gql(
        REDEEM_POINTS, {"input": {"memberId": member, "points": 2600, "quoteId": q["id"], "idempotencyKey": key()}}
    )
    assert error(paid) == "OFFSET_CAP_EXCEEDED"
    paid = await pharmacy.gql(
        REDEEM_POINTS,
        {
            "input": {
                "memberId": member,
                "points": 2000,
                "quoteId": q["id"],
                "reference": reference,
                "idempotencyKey": key(),
            }
        },
    )
    assert error(paid) is None, paid
    used = payload(
        await pharmacy.gql(
            REDEEM, {"input": {"code": code, "quoteId": q["id"], "orderReference": reference, "idempotencyKey": key()}}
        )
    )
    assert used["errors"] == [] and Decimal(used["claim"]["value"]) == Decimal("20.00")

    record = {
        "memberId": member,
        "reference": reference,
        "occurredAt": clock.now().isoformat(),
        "storeId": "S1",
        "lines": lines,
        "quoteId": q["id"],
        "idempotencyKey": key(),
    }
    changed = await pharmacy.gql(PURCHASE, {"input": {**record, "lines": lines[:2], "idempotencyKey": key()}})
    assert error(changed) == "BASKET_CHANGED"
    recorded = payload(await pharmacy.gql(PURCHASE, {"input": record}))
    assert recorded["errors"] == [], recorded
    assert recorded["purchase"]["pointsEarned"] == q["pointsEarned"]
    assert Decimal(recorded["purchase"]["amount"]) == Decimal(q["amountToPay"])
    assert Decimal(recorded["purchase"]["growthValue"]) == Decimal(q["growthValue"])

    clock.advance(minutes=6)
    try:
        late = await pharmacy.gql(
            PURCHASE, {"input": {**record, "reference": reference + "b", "idempotencyKey": key()}}
        )
        assert error(late) == "QUOTE_EXPIRED"
    finally:
        clock.advance(minutes=-6)
    async with hub.db.read() as conn:
        assert await verify(conn) == []


# -- concurrency, on a database of its own ----------------------------------------------------------------------
CONNECTIONS = 32  # a pool each for reads and writes: 64 of the server's 100 connections


@pytest.fixture
async def crowd(fresh_database_url: str, settings: Settings, sms_gateway: SmsGateway) -> AsyncIterator[dict[str, Any]]:
    migrate.upgrade(fresh_database_url)
    app = create_app(replace(settings, database_url=fresh_database_url, db_pool_size=CONNECTIONS))
    hub = app.state.hub
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
        async with hub.db.write() as conn:
            partner = await partners.create_partner(conn, name="Flash", kind="pharmacy_chain", now=hub.clock.now())
            client = await partners.create_client(
                conn, partner_public_id=partner.public_id, now=hub.clock.now(), scopes=frozenset(REWARDS.split())
            )
        assert client.client_secret is not None
        shop = PartnerClient(
            http, partner.public_id, partner.id, client.client_id, client.client_secret, client.scopes, sms_gateway
        )
        yield {"hub": hub, "shop": shop}
    await hub.close()


async def test_200_concurrent_claims_on_a_stock_of_50(crowd: dict[str, Any]) -> None:
    shop: PartnerClient = crowd["shop"]
    shoppers = [await enrol_member(shop, SHOPPER) for _ in range(20)]
    for member in shoppers:
        await earn(shop, member, 2000)
    reward = await create(shop, stock=50, pointsCost=100)
    token = await shop.token()

    async def attempt(i: int) -> dict[str, Any]:
        variables = {"input": {"memberId": shoppers[i % 20], "rewardId": reward["id"], "idempotencyKey": f"c-{i}"}}
        return payload(await shop.gql(CLAIM, variables, token=token))

    results = await stampede(attempt, 200)
    won = [r for r in results if not r["errors"]]
    assert len(won) == 50
    assert {r["errors"][0]["code"] for r in results if r["errors"]} == {"OUT_OF_STOCK"}
    listed = (await shop.gql(LIST, {"first": 10}))["data"]["rewards"]["edges"]
    assert next(e for e in listed if e["node"]["id"] == reward["id"])["reason"] == "OUT_OF_STOCK"
    from hub.rewards.models import reward as reward_table

    async with crowd["hub"].db.read() as conn:
        assert await conn.scalar(select(reward_table.c.stock_left)) == 0
        assert await verify(conn) == []


async def test_a_limit_of_one_holds_against_20_parallel_claims(crowd: dict[str, Any]) -> None:
    shop: PartnerClient = crowd["shop"]
    member = await enrol_member(shop, SHOPPER)
    await earn(shop, member, 10_000)
    reward = await create(shop, memberLimit=1, limitPeriod="MONTH", pointsCost=100)
    token = await shop.token()

    async def attempt(i: int) -> dict[str, Any]:
        variables = {"input": {"memberId": member, "rewardId": reward["id"], "idempotencyKey": f"l-{i}"}}
        return payload(await shop.gql(CLAIM, variables, token=token))

    results = await stampede(attempt, 20)
    assert len([r for r in results if not r["errors"]]) == 1
    assert {r["errors"][0]["code"] for r in results if r["errors"]} == {"MEMBER_LIMIT_REACHED"}
    points = (await shop.gql(MEMBER, {"id": member}))["data"]["member"]["points"]
    assert points == {"available": 9_900, "held": 100}


async def test_expiry_racing_a_redemption_has_one_winner(crowd: dict[str, Any]) -> None:
    shop: PartnerClient = crowd["shop"]
    hub: Hub = crowd["hub"]
    member = await enrol_member(shop, SHOPPER)
    await earn(shop, member, 10_000)
    reward = await create(shop, pointsCost=100, claimValidDays=1)
    ids = [payload(await claim(shop, member, reward["id"]))["claim"]["id"] for _ in range(10)]
    later = hub.clock.now() + timedelta(days=1)
    token = await shop.token()

    async def redeem(claim_id: str) -> dict[str, Any]:
        variables = {"input": {"claimId": claim_id, "orderReference": claim_id, "idempotencyKey": claim_id}}
        return payload(await shop.gql(REDEEM, variables, token=token))

    outcomes = await asyncio.gather(expire_claims(hub.db, later), *(redeem(i) for i in ids))
    expired, redeemed = outcomes[0], outcomes[1:]
    won = [r for r in redeemed if not r["errors"]]
    assert {r["errors"][0]["code"] for r in redeemed if r["errors"]} <= {"CLAIM_NOT_ACTIVE", "CLAIM_EXPIRED"}
    assert expired + len(won) == 10
    statuses = (await shop.gql(MEMBER, {"id": member}))["data"]["member"]["rewardClaims"]
    assert sorted(c["status"] for c in statuses) == sorted(["EXPIRED"] * expired + ["REDEEMED"] * len(won))
    async with hub.db.read() as conn:
        assert await verify(conn) == []


# -- properties --------------------------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(
    face=st.integers(0, 10**7),
    taken=st.lists(st.tuples(st.integers(1, 6), st.integers(1, 10**6)), min_size=0, max_size=12),
    rates=st.lists(st.decimals(Decimal("0.001"), Decimal("0.5"), places=3), min_size=6, max_size=6),
)
def test_settlement_lines_sum_to_the_face_value(face: int, taken: list[tuple[int, int]], rates: list[Decimal]) -> None:
    by_issuer = dict(zip(range(1, 7), rates, strict=True))
    shares, sponsor = split(face, taken, by_issuer)
    assert sum(s.amount for s in shares) + sponsor == face
    assert sum(s.points for s in shares) == sum(p for _, p in taken)
    for share in shares:  # each issuer's line is within a fen of its points' exact value
        assert abs(share.amount - share.points * by_issuer[share.issuer_id] * 100) < 1


VERSION = load(None, UTC).versions[0]
line_strategy = st.builds(
    earning.Line,
    sku=st.sampled_from(["A", "B", "C"]),
    category=st.sampled_from(["otc", "rx", "grocery"]),
    amount=st.integers(1, 10**6),
    quantity=st.just(1),
    prescription=st.booleans(),
    insurer_paid=st.booleans(),
    discountable=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(line_strategy, min_size=1, max_size=6),
    level=st.sampled_from(VERSION.tiers.levels),
    coupons=st.lists(st.tuples(st.integers(1, 10**5), st.none() | st.integers(1, 100)), max_size=3),
    balance=st.integers(0, 10**6),
    wanted=st.integers(0, 10**6),
)
def test_offset_never_exceeds_its_cap_and_nothing_is_paid_below_zero(
    lines: list[earning.Line], level: Level, coupons: list[tuple[int, int | None]], balance: int, wanted: int
) -> None:
    given_coupons = [
        Coupon(f"clm_{i}", "ABCD", "券", "COUPON", value, pct, ()) for i, (value, pct) in enumerate(coupons)
    ]
    base = plan(VERSION, level, False, lines, given_coupons, None, balance)
    rule = VERSION.offset
    offsettable = sum(p.to_pay for p, line in zip(base.lines, lines, strict=True) if line.offsettable)
    assert base.max_points <= balance
    assert rule.value(base.max_points) <= offsettable * rule.max_share
    assert all(p.to_pay >= 0 for p in base.lines)
    for p, line in zip(base.lines, lines, strict=True):
        if not line.offsettable:  # prescription, insurer-paid, not discountable: never discounted
            assert p.to_pay == line.amount
    if wanted > base.max_points:
        with pytest.raises(Exception, match="points may pay"):
            plan(VERSION, level, False, lines, given_coupons, wanted, balance)
    else:
        paid = plan(VERSION, level, False, lines, given_coupons, wanted, balance)
        assert paid.to_pay == base.to_pay - rule.value(wanted) >= 0
        assert all(p.to_pay >= 0 for p in paid.lines)


async def test_member_claims_in_the_portal_and_sees_code_and_reasons(
    coalition: dict[str, Any], app: Any, hub: Hub, clock: FrozenClock, sms_gateway: SmsGateway
) -> None:
    pharmacy = coalition["pharmacy"]
    phone = new_phone()
    member = await enrol_member(pharmacy, SHOPPER, phone=phone)
    await earn(pharmacy, member, 800)
    gift = await create(pharmacy, name="门户礼品-" + secrets.token_hex(3), stock=3, pointsCost=300)
    gold_only = await create(
        pharmacy, name="金卡专享-" + secrets.token_hex(3), windows=[{"minTier": 3, "opensAt": clock.now().isoformat()}]
    )
    costly = await create(pharmacy, name="高价-" + secrets.token_hex(3), pointsCost=5000)

    visitor = browser(app, phone)
    await visitor.sign_in(sms_gateway)
    page = await visitor.http.get("/portal/rewards?lang=en")
    assert page.status_code == 200
    text = page.text
    assert f'data-reward="{gold_only["id"]}"' in text and 'data-reason="TIER_TOO_LOW"' in text
    assert 'data-reason="INSUFFICIENT_POINTS"' in text.split(f'data-reward="{costly["id"]}"')[1].split("</div>")[0]
    form = text.split(f'data-reward="{gift["id"]}"')[1].split("</form>")[0]
    attempt = re.search(r'name="idempotency_key" value="([^"]+)"', form)
    assert attempt
    data = {"csrf_token": csrf_of(text), "idempotency_key": attempt.group(1)}
    claimed = await visitor.http.post(f"/portal/rewards/{gift['id']}/claim", data=data)
    assert claimed.status_code == 303
    again = await visitor.http.post(f"/portal/rewards/{gift['id']}/claim", data=data)  # a double submit
    assert again.status_code == 303
    after = (await visitor.http.get("/portal/rewards?lang=en&notice=claimed")).text
    rows = re.findall(r'<tr class="claim" data-claim="(clm_[^"]+)">.*?<code>([^<]+)</code>', after, re.S)
    assert len(rows) == 1
    claim_id, code = rows[0]
    assert codes.parse(code)
    state = (await pharmacy.gql(MEMBER, {"id": member}))["data"]["member"]
    assert state["points"] == {"available": 500, "held": 300}
    # Claimed by the member, not by the pharmacy: the pharmacy sees the claim once redeemed, never its code.
    redeemed = payload(
        await pharmacy.gql(
            REDEEM, {"input": {"code": code, "orderReference": "W-" + claim_id, "idempotencyKey": key()}}
        )
    )
    assert redeemed["errors"] == [] and redeemed["claim"]["code"] is None
    assert '<span class="status">Used</span>' in (await visitor.http.get("/portal/rewards?lang=en")).text
    exported = (await visitor.post("/portal/export")).json()
    assert [(c["id"], c["status"], c["codeEndsWith"]) for c in exported["rewardClaims"]] == [
        (claim_id, "REDEEMED", codes.parse(code)[-4:])
    ]


async def test_window_closing_and_a_till_claim_against_a_quote(coalition: dict[str, Any], clock: FrozenClock) -> None:
    pharmacy = coalition["pharmacy"]
    member = await enrol_member(pharmacy, SHOPPER)
    await earn(pharmacy, member, 2000)
    flash = await create(pharmacy, availableUntil=(clock.now() + timedelta(hours=1)).isoformat(), pointsCost=100)
    basket = {"memberId": member, "lines": [{"sku": "A", "category": "otc", "amount": "10.00"}]}
    quote_id = payload(await pharmacy.gql(QUOTE, {"input": basket}))["quote"]["id"]
    reserved = payload(await claim(pharmacy, member, flash["id"], quoteId=quote_id))["claim"]
    assert reserved["status"] == "RESERVED"  # held for this checkout: 15 minutes, not claimValidDays
    assert datetime.fromisoformat(reserved["expiresAt"]) == clock.now() + timedelta(minutes=15)
    clock.advance(hours=1)
    try:
        assert error(await claim(pharmacy, member, flash["id"])) == "WINDOW_CLOSED"
        late = await pharmacy.gql(VOID, {"input": {"claimId": reserved["id"], "idempotencyKey": key()}})
        assert error(late) == "CLAIM_EXPIRED"  # past its time: the worker gives it back, not a void
    finally:
        clock.advance(hours=-1)


async def test_a_claim_keeps_its_price_when_the_sponsor_changes_the_reward(coalition: dict[str, Any], hub: Hub) -> None:
    pharmacy = coalition["pharmacy"]
    member = await enrol_member(pharmacy, SHOPPER)
    await earn(pharmacy, member, 1000)
    reward = await create(pharmacy, pointsCost=300, faceValue="12.00")
    claimed = payload(await claim(pharmacy, member, reward["id"], quantity=2))["claim"]
    changed = await pharmacy.gql(UPDATE, {"input": {"id": reward["id"], "pointsCost": 100, "faceValue": "99.00"}})
    assert error(changed) is None
    redeemed = payload(
        await pharmacy.gql(REDEEM, {"input": {"claimId": claimed["id"], "orderReference": "P-" + claimed["id"],
                                              "quantity": 1, "idempotencyKey": key()}})
    )["claim"]  # fmt: skip
    assert Decimal(redeemed["value"]) == Decimal("24.00")  # what was claimed: 2 × 12
    assert Decimal(redeemed["redeemedValue"]) == Decimal("12.00")  # one unit, at the claim's price
    points = (await pharmacy.gql(MEMBER, {"id": member}))["data"]["member"]["points"]
    assert points == {"available": 700, "held": 0}  # 300 taken for the unit redeemed, 300 given back
    async with hub.db.read() as conn:
        assert await verify(conn) == []


async def test_claims_follow_a_provisional_record_into_the_membership(coalition: dict[str, Any], hub: Hub) -> None:
    pharmacy, gym = coalition["pharmacy"], coalition["gym"]
    phone = new_phone()
    await enrol_member(pharmacy, SHOPPER, phone=phone)  # the phone's owner
    consent = {"permissions": SHOPPER, "policyVersion": "2026-01", "channel": "POS"}
    enrolled = await gym.gql(ENROLL, enrolment("G-" + secrets.token_hex(4), phone, consent=consent))
    provisional = enrolled["data"]["enrollMember"]["member"]["id"]  # a known phone: provisional until confirmed
    await earn(gym, provisional, 400)
    reward = await create(gym, pointsCost=300, faceValue="9.00", memberLimit=1)
    code = payload(await claim(gym, provisional, reward["id"]))["claim"]["code"]
    merged = (await gym.confirm(provisional, phone))["member"]["id"]
    assert error(await claim(gym, merged, reward["id"])) == "MEMBER_LIMIT_REACHED"  # the usage came along
    redeemed = payload(
        await gym.gql(REDEEM, {"input": {"code": code, "orderReference": "M-1", "idempotencyKey": key()}})
    )
    assert redeemed["errors"] == [] and redeemed["claim"]["status"] == "REDEEMED"
    async with hub.db.read() as conn:
        assert await verify(conn) == []


async def test_old_quotes_are_pruned_unless_a_claim_names_them(
    coalition: dict[str, Any], hub: Hub, clock: FrozenClock
) -> None:
    pharmacy = coalition["pharmacy"]
    member = await enrol_member(pharmacy, SHOPPER)
    await earn(pharmacy, member, 500)
    reward = await create(pharmacy, pointsCost=100)
    basket = {"memberId": member, "lines": [{"sku": "A", "category": "otc", "amount": "10.00"}]}
    kept = payload(await pharmacy.gql(QUOTE, {"input": basket}))["quote"]["id"]
    dropped = payload(await pharmacy.gql(QUOTE, {"input": basket}))["quote"]["id"]
    assert error(await claim(pharmacy, member, reward["id"], quoteId=kept)) is None
    await prune_quotes(hub.db, clock.now())  # older tests' quotes may go; these two are minutes old
    async with hub.db.read() as conn:
        assert set(
            await conn.scalars(select(pos_quote.c.public_id).where(pos_quote.c.public_id.in_([kept, dropped])))
        ) == {kept, dropped}
    await prune_quotes(hub.db, clock.now() + timedelta(days=1, minutes=6))
    async with hub.db.read() as conn:
        left = set(await conn.scalars(select(pos_quote.c.public_id).where(pos_quote.c.public_id.in_([kept, dropped]))))
    assert left == {kept}
