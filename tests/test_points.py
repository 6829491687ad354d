"""The points ledger through GraphQL: every rule, every error code, and the invariants after each story."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hub.clock import FrozenClock
from hub.partners import service as partners
from hub.points import jobs, ledger
from hub.state import Hub
from tests.conftest import PartnerClient
from tests.points_helpers import (
    CAPTURE,
    EARN,
    HOLD,
    REDEEM,
    REVERSE,
    VOID,
    assert_ledger_clean,
    balances,
    call,
    code,
    enrol_member,
    key,
)


@pytest.fixture
async def shop(make_partner: Any) -> tuple[PartnerClient, str]:
    pharmacy: PartnerClient = await make_partner()
    return pharmacy, await enrol_member(pharmacy)


async def test_earn_makes_points_available_with_a_lot_that_expires(shop: Any, hub: Hub, clock: FrozenClock) -> None:
    pharmacy, member = shop
    payload = await call(pharmacy, EARN, memberId=member, points=120, reason="purchase", reference="R-1")
    txn = payload["transaction"]
    assert payload["errors"] == [] and txn["kind"] == "EARN" and txn["status"] == "POSTED" and txn["points"] == 120
    points = await balances(pharmacy, member)
    assert points["available"] == 120 and points["pending"] == 0 and points["lifetimeEarned"] == 120
    # Default rule year_end:1 — usable through the end of next calendar year, Shanghai time.
    local = clock.now().astimezone(ZoneInfo("Asia/Shanghai"))
    expected = datetime(local.year + 2, 1, 1, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert points["expiring"] == [{"points": 120, "expiresAt": expected.astimezone(UTC).isoformat()}]
    await assert_ledger_clean(hub)


async def test_pending_points_mature_after_the_return_window(shop: Any, hub: Hub, clock: FrozenClock) -> None:
    pharmacy, member = shop
    until = (clock.now() + timedelta(days=7)).isoformat()
    txn = (await call(pharmacy, EARN, memberId=member, points=50, pendingUntil=until))["transaction"]
    assert txn["status"] == "PENDING"
    assert (await balances(pharmacy, member))["pending"] == 50
    assert code(await call(pharmacy, REDEEM, memberId=member, points=10)) == "INSUFFICIENT_POINTS"
    await jobs.run_once(hub.db, clock.now())
    assert (await balances(pharmacy, member))["available"] == 0  # not yet
    clock.advance(days=8)
    report = await jobs.run_once(hub.db, clock.now())
    assert report.matured_points >= 50
    points = await balances(pharmacy, member)
    assert points["available"] == 50 and points["pending"] == 0
    found = await pharmacy.gql("query($id: ID!) { pointsTransaction(id: $id) { status } }", {"id": txn["id"]})
    assert found["data"]["pointsTransaction"]["status"] == "POSTED"
    await assert_ledger_clean(hub)


async def test_idempotency_replays_and_conflicts(shop: Any, hub: Hub) -> None:
    pharmacy, member = shop
    same = key()
    first = await call(pharmacy, EARN, memberId=member, points=30, idempotencyKey=same)
    again = await call(pharmacy, EARN, memberId=member, points=30, idempotencyKey=same)
    assert again["transaction"] == first["transaction"]
    assert (await balances(pharmacy, member))["available"] == 30
    changed = await call(pharmacy, EARN, memberId=member, points=31, idempotencyKey=same)
    assert code(changed) == "IDEMPOTENCY_CONFLICT" and changed["transaction"] is None
    # Keys are scoped per partner: another partner may use the same key for its own request.
    await assert_ledger_clean(hub)


async def test_redeem_spends_earliest_expiring_lots_first(shop: Any, hub: Hub, clock: FrozenClock) -> None:
    pharmacy, member = shop
    await call(pharmacy, EARN, memberId=member, points=40)
    clock.advance(days=366)
    await call(pharmacy, EARN, memberId=member, points=40)
    before = (await balances(pharmacy, member))["expiring"]
    assert [e["points"] for e in before] == [40, 40]
    redeemed = await call(pharmacy, REDEEM, memberId=member, points=50, reference="TILL-9")
    assert redeemed["transaction"]["kind"] == "REDEEM" and redeemed["transaction"]["reference"] == "TILL-9"
    after = (await balances(pharmacy, member))["expiring"]
    assert [e["points"] for e in after] == [30]  # the older lot is gone, 10 taken from the newer
    assert after[0]["expiresAt"] == before[1]["expiresAt"]
    assert code(await call(pharmacy, REDEEM, memberId=member, points=31)) == "INSUFFICIENT_POINTS"
    await assert_ledger_clean(hub)


@pytest.mark.parametrize("points", [0, -5, 2_000_000_000])
async def test_invalid_amounts(shop: Any, points: int) -> None:
    pharmacy, member = shop
    assert code(await call(pharmacy, EARN, memberId=member, points=points)) == "INVALID_AMOUNT"
    assert code(await call(pharmacy, REDEEM, memberId=member, points=points)) == "INVALID_AMOUNT"


async def test_hold_capture_less_releases_the_rest(shop: Any, hub: Hub) -> None:
    pharmacy, member = shop
    await call(pharmacy, EARN, memberId=member, points=100)
    hold = (await call(pharmacy, HOLD, memberId=member, points=60, reference="TILL-1", expiresInSeconds=300))["hold"]
    assert hold["status"] == "ACTIVE" and hold["points"] == 60 and hold["capturedPoints"] == 0
    points = await balances(pharmacy, member)
    assert points["available"] == 40 and points["held"] == 60
    captured = await call(pharmacy, CAPTURE, holdId=hold["id"], points=45)
    assert captured["transaction"]["kind"] == "CAPTURE" and captured["transaction"]["points"] == 45
    points = await balances(pharmacy, member)
    assert points["available"] == 55 and points["held"] == 0
    assert code(await call(pharmacy, CAPTURE, holdId=hold["id"], points=5)) == "HOLD_NOT_ACTIVE"
    assert code(await call(pharmacy, VOID, holdId=hold["id"])) == "HOLD_NOT_ACTIVE"
    await assert_ledger_clean(hub)


async def test_hold_errors_and_void(shop: Any, make_partner: Any, hub: Hub) -> None:
    pharmacy, member = shop
    await call(pharmacy, EARN, memberId=member, points=20)
    assert code(await call(pharmacy, HOLD, memberId=member, points=21)) == "INSUFFICIENT_POINTS"
    assert code(await call(pharmacy, HOLD, memberId=member, points=5, expiresInSeconds=0)) == "INVALID_INPUT"
    hold = (await call(pharmacy, HOLD, memberId=member, points=20))["hold"]
    assert code(await call(pharmacy, CAPTURE, holdId=hold["id"], points=21)) == "CAPTURE_EXCEEDS_HOLD"
    other: PartnerClient = await make_partner()
    assert code(await call(other, CAPTURE, holdId=hold["id"], points=1)) == "HOLD_NOT_FOUND"
    assert code(await call(pharmacy, CAPTURE, holdId="hold_nope", points=1)) == "HOLD_NOT_FOUND"
    voided = await call(pharmacy, VOID, holdId=hold["id"])
    assert voided["hold"]["status"] == "VOIDED"
    assert (await balances(pharmacy, member))["available"] == 20
    await assert_ledger_clean(hub)


async def test_holds_expire(shop: Any, hub: Hub, clock: FrozenClock) -> None:
    pharmacy, member = shop
    await call(pharmacy, EARN, memberId=member, points=10)
    hold = (await call(pharmacy, HOLD, memberId=member, points=10, expiresInSeconds=60))["hold"]
    clock.advance(seconds=61)
    assert code(await call(pharmacy, CAPTURE, holdId=hold["id"], points=10)) == "HOLD_NOT_ACTIVE"
    report = await jobs.run_once(hub.db, clock.now())
    assert report.expired_holds >= 1
    result = await pharmacy.gql("query($id: ID!) { member(id: $id) { points { available held } } }", {"id": member})
    assert result["data"]["member"]["points"] == {"available": 10, "held": 0}
    await assert_ledger_clean(hub)


async def test_reversal_after_spending_goes_negative_and_blocks_redemption(shop: Any, hub: Hub) -> None:
    pharmacy, member = shop
    earned = (await call(pharmacy, EARN, memberId=member, points=100))["transaction"]
    await call(pharmacy, REDEEM, memberId=member, points=80)
    partial = await call(pharmacy, REVERSE, transactionId=earned["id"], points=30, reason="refund")
    assert partial["transaction"]["kind"] == "REVERSE"
    assert (await balances(pharmacy, member))["available"] == -10
    too_much = await call(pharmacy, REVERSE, transactionId=earned["id"], points=71)
    assert code(too_much) == "REVERSAL_EXCEEDS_ORIGINAL"
    assert code(await call(pharmacy, REDEEM, memberId=member, points=1)) == "NEGATIVE_BALANCE"
    assert code(await call(pharmacy, HOLD, memberId=member, points=1)) == "NEGATIVE_BALANCE"
    await assert_ledger_clean(hub)
    # New points repay the debt first.
    await call(pharmacy, EARN, memberId=member, points=25)
    assert (await balances(pharmacy, member))["available"] == 15
    assert code(await call(pharmacy, REDEEM, memberId=member, points=15)) is None
    await assert_ledger_clean(hub)


async def test_refunding_a_redemption_gives_points_back(shop: Any, hub: Hub) -> None:
    pharmacy, member = shop
    await call(pharmacy, EARN, memberId=member, points=50)
    spent = (await call(pharmacy, REDEEM, memberId=member, points=40))["transaction"]
    await call(pharmacy, REVERSE, transactionId=spent["id"], points=15)
    assert (await balances(pharmacy, member))["available"] == 25
    await assert_ledger_clean(hub)


async def test_only_own_transactions_can_be_reversed_or_read(shop: Any, make_partner: Any) -> None:
    pharmacy, member = shop
    earned = (await call(pharmacy, EARN, memberId=member, points=10))["transaction"]
    other: PartnerClient = await make_partner()
    assert code(await call(other, REVERSE, transactionId=earned["id"], points=1)) == "TRANSACTION_NOT_FOUND"
    peek = await other.gql("query($id: ID!) { pointsTransaction(id: $id) { id } }", {"id": earned["id"]})
    assert peek["data"]["pointsTransaction"] is None


async def test_points_history_is_the_callers_own(shop: Any, make_partner: Any) -> None:
    pharmacy, member = shop
    gym: PartnerClient = await make_partner(kind="gym")
    phone_query = await pharmacy.gql("query($id: ID!) { member(id: $id) { id } }", {"id": member})
    assert phone_query["data"]["member"]["id"] == member
    for points in (5, 6, 7):
        await call(pharmacy, EARN, memberId=member, points=points)
    history = """query($id: ID!, $after: String) { member(id: $id) { pointsHistory(first: 2, after: $after) {
        edges { cursor node { points kind } } pageInfo { hasNextPage endCursor } } } }"""
    page = (await pharmacy.gql(history, {"id": member}))["data"]["member"]["pointsHistory"]
    assert [e["node"]["points"] for e in page["edges"]] == [7, 6] and page["pageInfo"]["hasNextPage"]
    rest = (await pharmacy.gql(history, {"id": member, "after": page["pageInfo"]["endCursor"]}))["data"]
    assert [e["node"]["points"] for e in rest["member"]["pointsHistory"]["edges"]] == [5]
    assert gym  # the gym has no link to this member at all: nothing to read


async def test_scope_and_consent_guard_every_ledger_mutation(make_partner: Any) -> None:
    pharmacy: PartnerClient = await make_partner()
    reader_only = await enrol_member(pharmacy, ["member:read", "points:read"])
    assert code(await call(pharmacy, EARN, memberId=reader_only, points=5)) == "CONSENT_REQUIRED"
    assert code(await call(pharmacy, REDEEM, memberId=reader_only, points=5)) == "CONSENT_REQUIRED"
    assert code(await call(pharmacy, EARN, memberId="mbr_unknown", points=5)) == "MEMBER_NOT_FOUND"
    no_scope: PartnerClient = await make_partner(scopes="member:read member:enroll")
    member = await enrol_member(no_scope)
    for mutation in (EARN, REDEEM):
        result = await no_scope.gql(mutation, {"input": {"memberId": member, "points": 1, "idempotencyKey": key()}})
        assert result["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"


async def test_points_field_needs_the_members_consent(make_partner: Any) -> None:
    pharmacy: PartnerClient = await make_partner()
    member = await enrol_member(pharmacy, ["member:read", "points:earn"])
    result = await pharmacy.gql("query($id: ID!) { member(id: $id) { id points { available } } }", {"id": member})
    assert result["data"]["member"] == {"id": member, "points": None}
    assert result["errors"][0]["extensions"]["code"] == "CONSENT_REQUIRED"


async def test_prepaid_partner_cannot_issue_beyond_its_funds(make_partner: Any, hub: Hub) -> None:
    pharmacy: PartnerClient = await make_partner()
    member = await enrol_member(pharmacy)
    async with hub.db.write() as conn:
        await partners.set_terms(conn, partner_public_id=pharmacy.partner_id, billing="prepaid", now=hub.clock.now())
    assert code(await call(pharmacy, EARN, memberId=member, points=1)) == "PREPAID_BALANCE_EXHAUSTED"
    async with hub.db.write() as conn:
        await ledger.fund(conn, pharmacy.partner_pk, 100, hub.clock.now())
    assert code(await call(pharmacy, EARN, memberId=member, points=60)) is None
    assert code(await call(pharmacy, EARN, memberId=member, points=41)) == "PREPAID_BALANCE_EXHAUSTED"
    assert code(await call(pharmacy, EARN, memberId=member, points=40)) is None
    await assert_ledger_clean(hub)


async def test_expired_lots_leave_the_balance(shop: Any, hub: Hub, clock: FrozenClock) -> None:
    pharmacy, member = shop
    await call(pharmacy, EARN, memberId=member, points=33)
    clock.advance(days=800)
    report = await jobs.run_once(hub.db, clock.now())
    assert report.expired_points >= 33
    assert (await balances(pharmacy, member))["available"] == 0
    await assert_ledger_clean(hub)


async def test_settlement_statement_is_exact_and_scoped(make_partner: Any, hub: Hub, clock: FrozenClock) -> None:
    pharmacy: PartnerClient = await make_partner()
    gym: PartnerClient = await make_partner(kind="gym")
    stranger: PartnerClient = await make_partner(kind="insurer")
    phone = "+8613" + str(clock.now().timestamp()).replace(".", "")[-9:]
    at_pharmacy = await enrol_member(pharmacy, phone=phone)
    at_gym = await enrol_member(gym, phone=phone)
    async with hub.db.write() as conn:
        await partners.set_terms(
            conn, partner_public_id=pharmacy.partner_id, point_value=Decimal("0.02"), now=clock.now()
        )
    await call(pharmacy, EARN, memberId=at_pharmacy, points=500)
    await call(gym, REDEEM, memberId=at_gym, points=200)
    await call(pharmacy, REDEEM, memberId=at_pharmacy, points=100)
    period = clock.now().astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    query = """query($p: String!) { settlementStatement(period: $p) { period currency receivable payable net
      lines { issuer { id } redeemer { id } points value } } }"""
    for_gym = (await gym.gql(query, {"p": period}))["data"]["settlementStatement"]
    assert for_gym["lines"] == [
        {"issuer": {"id": pharmacy.partner_id}, "redeemer": {"id": gym.partner_id}, "points": 200, "value": "4.00"}
    ]
    assert for_gym["receivable"] == "4.00" and for_gym["net"] == "4.00"
    for_pharmacy = (await pharmacy.gql(query, {"p": period}))["data"]["settlementStatement"]
    assert {(line["redeemer"]["id"], line["points"]) for line in for_pharmacy["lines"]} == {
        (gym.partner_id, 200),
        (pharmacy.partner_id, 100),
    }
    assert for_pharmacy["payable"] == "6.00" and for_pharmacy["net"] == "-4.00"
    assert (await stranger.gql(query, {"p": period}))["data"]["settlementStatement"]["lines"] == []
    bad = await gym.gql(query, {"p": "2026-13"})
    assert bad["errors"][0]["extensions"]["code"] == "INVALID_PERIOD"
    await assert_ledger_clean(hub)


async def test_entries_cannot_be_changed(hub: Hub, shop: Any) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    pharmacy, member = shop
    await call(pharmacy, EARN, memberId=member, points=1)
    for statement in ("UPDATE ledger_entry SET amount = amount + 1", "DELETE FROM ledger_entry"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with hub.db.write() as conn:
                await conn.execute(text(statement))


async def test_the_policy_clock_is_the_business_clock(clock: FrozenClock) -> None:
    assert clock.now().tzinfo is not None and clock.now() <= datetime.now(UTC) + timedelta(days=3650)


async def test_every_movement_writes_its_outbox_event(shop: Any, hub: Hub, clock: FrozenClock) -> None:
    from sqlalchemy import select

    from hub.events.models import event
    from hub.members.models import member_link

    pharmacy, member = shop
    earned = (await call(pharmacy, EARN, memberId=member, points=40))["transaction"]
    await call(pharmacy, REDEEM, memberId=member, points=5)
    hold = (await call(pharmacy, HOLD, memberId=member, points=5))["hold"]
    await call(pharmacy, CAPTURE, holdId=hold["id"], points=2)
    voided = (await call(pharmacy, HOLD, memberId=member, points=3))["hold"]
    await call(pharmacy, VOID, holdId=voided["id"])
    await call(pharmacy, REVERSE, transactionId=earned["id"], points=1)
    async with hub.db.read() as conn:
        member_id = await conn.scalar(select(member_link.c.member_id).where(member_link.c.pairwise_id == member))
        types = (
            await conn.scalars(select(event.c.type).where(event.c.member_id == member_id).order_by(event.c.id))
        ).all()
    assert types[-7:] == [
        "points.earned",
        "points.redeemed",
        "points.held",
        "points.captured",
        "points.held",
        "hold.voided",
        "points.reversed",
    ]


async def test_redemption_is_one_round_trip_on_postgresql(shop: Any, hub: Hub) -> None:
    """On PostgreSQL the write is the `hub_redeem` function (migration 0003); elsewhere the Python path."""
    from sqlalchemy import event as sa_event

    if hub.db.backend != "postgresql":
        pytest.skip("SQLite runs the Python path")
    pharmacy, member = shop
    await call(pharmacy, EARN, memberId=member, points=10)
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    for engine in hub.db.engines:
        sa_event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        assert code(await call(pharmacy, REDEEM, memberId=member, points=4)) is None
    finally:
        for engine in hub.db.engines:
            sa_event.remove(engine.sync_engine, "before_cursor_execute", record)
    writes = [s for s in statements if not s.lstrip().upper().startswith("SELECT")]
    assert any("hub_redeem" in s for s in statements) and writes == [], statements
    await assert_ledger_clean(hub)
