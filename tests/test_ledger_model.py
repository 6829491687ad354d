"""A Hypothesis state machine drives the ledger through GraphQL and checks it against a plain Python model.

The model is the rules written as simply as possible: lots consumed earliest-expiring first, pending points that
mature, holds that capture less or expire, reversals that go negative and are repaid by new points, lots that
expire. After every step the hub must agree with the model on the outcome (error code or success), on balances
and on what expires when, and `verify()` must find every ledger invariant intact.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hub.app import create_app
from hub.clock import FrozenClock
from hub.config import Settings
from hub.partners import service as partners
from hub.points import jobs
from hub.points.verify import verify
from tests.conftest import ENROLL, ISSUER, PartnerClient, SmsGateway, enrolment, new_phone
from tests.points_helpers import CAPTURE, EARN, HOLD, POINTS, REDEEM, REVERSE, VOID

T = TypeVar("T")
EXPIRY_DAYS = 30


# -- the model -------------------------------------------------------------------------------------------------------
@dataclass
class Lot:
    id: int
    issuer: str
    amount: int
    remaining: int
    pending: bool
    available_at: datetime
    expires_at: datetime
    expired: int = 0


@dataclass
class Hold:
    points: int
    expires_at: datetime
    taken: list[tuple[Lot, int]]
    active: bool = True


@dataclass
class Spend:
    """A redemption or capture: which lots it took from, net of refunds so far."""

    taken: list[tuple[Lot, int]]
    points: int
    reversed: int = 0


@dataclass
class Earned:
    lot: Lot
    issuer: str
    reversed: int = 0


@dataclass
class Model:
    now: datetime
    lots: list[Lot] = field(default_factory=list)
    debts: dict[str, int] = field(default_factory=dict)  # issuer -> points owed (positive), in creation order
    held: int = 0
    ids: itertools.count = field(default_factory=lambda: itertools.count(1))  # type: ignore[type-arg]

    @property
    def available(self) -> int:
        return sum(lot.remaining for lot in self.lots if not lot.pending) - sum(self.debts.values())

    @property
    def pending(self) -> int:
        return sum(lot.remaining for lot in self.lots if lot.pending)

    def expiring(self) -> list[tuple[datetime, int]]:
        grouped: dict[datetime, int] = {}
        for lot in self.lots:
            if not lot.pending and lot.remaining > 0:
                grouped[lot.expires_at] = grouped.get(lot.expires_at, 0) + lot.remaining
        return sorted(grouped.items())[:5]

    def _repay(self, fresh: list[Lot]) -> None:
        for issuer in list(self.debts):
            for lot in fresh:
                take = min(self.debts[issuer], lot.remaining)
                lot.remaining -= take
                self.debts[issuer] -= take

    def earn(self, issuer: str, points: int, pending_days: int | None) -> Earned:
        pending = pending_days is not None
        available_at = self.now + timedelta(days=pending_days) if pending_days else self.now
        lot = Lot(
            next(self.ids), issuer, points, points, pending, available_at, available_at + timedelta(days=EXPIRY_DAYS)
        )
        self.lots.append(lot)
        if not pending:
            self._repay([lot])
        return Earned(lot, issuer)

    def _spend_check(self, points: int) -> str | None:
        if self.available < 0:
            return "NEGATIVE_BALANCE"
        return "INSUFFICIENT_POINTS" if self.available < points else None

    def _take(self, points: int) -> list[tuple[Lot, int]]:
        taken, left = [], points
        for lot in sorted(
            (x for x in self.lots if not x.pending and x.remaining > 0), key=lambda x: (x.expires_at, x.id)
        ):
            if not left:
                break
            amount = min(left, lot.remaining)
            lot.remaining -= amount
            taken.append((lot, amount))
            left -= amount
        return taken

    def redeem(self, points: int) -> Spend | str:
        error = self._spend_check(points)
        return error if error else Spend(self._take(points), points)

    def hold(self, points: int, ttl: int) -> Hold | str:
        error = self._spend_check(points)
        if error:
            return error
        self.held += points
        return Hold(points, self.now + timedelta(seconds=ttl), self._take(points))

    def resolve(self, hold: Hold, captured: int) -> Spend:
        for lot, amount in hold.taken:
            lot.remaining += amount
        kept, left = [], captured
        for lot, amount in hold.taken:
            if not left:
                break
            take = min(left, amount)
            lot.remaining -= take
            kept.append((lot, take))
            left -= take
        hold.active = False
        self.held -= hold.points
        return Spend(kept, captured)

    def reverse_earn(self, earned: Earned, points: int) -> None:
        lot = earned.lot
        earned.reversed += points
        if lot.pending:
            lot.remaining -= points
            return
        from_remaining = min(points, lot.remaining)
        from_expired = min(points - from_remaining, lot.expired)
        lot.remaining -= from_remaining
        lot.expired -= from_expired
        shortfall = points - from_remaining - from_expired
        if shortfall:
            self.debts[earned.issuer] = self.debts.get(earned.issuer, 0) + shortfall

    def refund(self, spend: Spend, points: int) -> None:
        spend.reversed += points
        left = points
        for i in range(len(spend.taken) - 1, -1, -1):
            lot, amount = spend.taken[i]
            back = min(left, amount)
            if back:
                lot.remaining += back
                spend.taken[i] = (lot, amount - back)
                left -= back

    def run_jobs(self, holds: list[Hold]) -> None:
        matured = [lot for lot in self.lots if lot.pending and lot.available_at <= self.now]
        for lot in matured:
            lot.pending = False
        if matured:
            self._repay(matured)
        for lot in self.lots:
            if not lot.pending and lot.remaining > 0 and lot.expires_at <= self.now:
                lot.expired += lot.remaining
                lot.remaining = 0
        for hold in holds:
            if hold.active and hold.expires_at <= self.now:
                self.resolve(hold, 0)


# -- the machine -----------------------------------------------------------------------------------------------------
class Loop:
    """The app runs on a private event loop: Hypothesis rules are synchronous."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)


class LedgerMachine(RuleBasedStateMachine):
    env: dict[str, Any]  # set by the test: loop, app, http client, clock

    def __init__(self) -> None:
        super().__init__()
        env = self.env
        self.loop: Loop = env["loop"]
        self.clock: FrozenClock = env["clock"]
        self.hub = env["app"].state.hub
        self.clock.set(self.clock.now() + timedelta(days=400))  # a fresh stretch of time for each example
        self.model = Model(now=self.clock.now())
        self.a: PartnerClient = self.loop.run(env["make_partner"]())
        self.b: PartnerClient = self.loop.run(env["make_partner"]())
        phone = new_phone()
        self.member = {"A": self._enrol(self.a, phone), "B": self._enrol(self.b, phone)}
        self.partner = {"A": self.a, "B": self.b}
        self.holds: list[tuple[str, Hold]] = []
        self.earns: list[tuple[str, Earned]] = []  # (txn id, model)
        self.spends: list[tuple[str, Spend]] = []
        self.done: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = []  # (partner, mutation, input, result)

    def _enrol(self, partner: PartnerClient, phone: str) -> str:
        consent = {
            "permissions": ["member:read", "points:read", "points:earn", "points:redeem"],
            "policyVersion": "1",
            "channel": "POS",
        }
        result = self.loop.run(partner.gql(ENROLL, enrolment("M-" + secrets.token_hex(5), phone, consent=consent)))
        member_id = str(result["data"]["enrollMember"]["member"]["id"])
        return str(self.loop.run(partner.confirm(member_id, phone))["member"]["id"])

    def _call(self, who: str, mutation: str, **fields: Any) -> dict[str, Any]:
        fields.setdefault("idempotencyKey", "k-" + secrets.token_hex(8))
        result = self.loop.run(self.partner[who].gql(mutation, {"input": fields}))
        payload: dict[str, Any] = next(iter(result["data"].values()))
        if not payload["errors"]:
            self.done.append((who, mutation, fields, payload))
        return payload

    @staticmethod
    def _code(payload: dict[str, Any]) -> str | None:
        return payload["errors"][0]["code"] if payload["errors"] else None

    @rule(issuer=st.sampled_from("AB"), points=st.integers(1, 400), pending_days=st.none() | st.integers(1, 20))
    def earn(self, issuer: str, points: int, pending_days: int | None) -> None:
        until = (self.clock.now() + timedelta(days=pending_days)).isoformat() if pending_days else None
        payload = self._call(issuer, EARN, memberId=self.member[issuer], points=points, pendingUntil=until)
        assert self._code(payload) is None, payload
        self.earns.append((payload["transaction"]["id"], self.model.earn(issuer, points, pending_days)))

    @rule(points=st.integers(1, 600))
    def redeem(self, points: int) -> None:
        expected = self.model.redeem(points)
        payload = self._call("B", REDEEM, memberId=self.member["B"], points=points)
        if isinstance(expected, str):
            assert self._code(payload) == expected, payload
        else:
            assert self._code(payload) is None, payload
            self.spends.append((payload["transaction"]["id"], expected))

    @rule(points=st.integers(1, 300), ttl=st.sampled_from([60, 3600, 3 * 86400]))
    def hold(self, points: int, ttl: int) -> None:
        expected = self.model.hold(points, ttl)
        payload = self._call("B", HOLD, memberId=self.member["B"], points=points, expiresInSeconds=ttl)
        if isinstance(expected, str):
            assert self._code(payload) == expected, payload
        else:
            assert self._code(payload) is None, payload
            self.holds.append((payload["hold"]["id"], expected))

    @precondition(lambda self: self.holds)
    @rule(data=st.data())
    def capture(self, data: st.DataObject) -> None:
        hold_id, hold = data.draw(st.sampled_from(self.holds))
        points = data.draw(st.integers(1, hold.points + 20))
        payload = self._call("B", CAPTURE, holdId=hold_id, points=points)
        if points > hold.points:
            assert self._code(payload) == "CAPTURE_EXCEEDS_HOLD", payload
        elif not hold.active or hold.expires_at <= self.model.now:
            assert self._code(payload) == "HOLD_NOT_ACTIVE", payload
        else:
            assert self._code(payload) is None, payload
            self.spends.append((payload["transaction"]["id"], self.model.resolve(hold, points)))

    @precondition(lambda self: self.holds)
    @rule(data=st.data())
    def void(self, data: st.DataObject) -> None:
        hold_id, hold = data.draw(st.sampled_from(self.holds))
        payload = self._call("B", VOID, holdId=hold_id)
        if not hold.active or hold.expires_at <= self.model.now:
            assert self._code(payload) == "HOLD_NOT_ACTIVE", payload
        else:
            assert self._code(payload) is None and payload["hold"]["status"] == "VOIDED", payload
            self.model.resolve(hold, 0)

    @precondition(lambda self: self.earns)
    @rule(data=st.data())
    def reverse_earn(self, data: st.DataObject) -> None:
        txn_id, earned = data.draw(st.sampled_from(self.earns))
        points = data.draw(st.integers(1, earned.lot.amount + 5))
        payload = self._call(earned.issuer, REVERSE, transactionId=txn_id, points=points)
        if points > earned.lot.amount - earned.reversed:
            assert self._code(payload) == "REVERSAL_EXCEEDS_ORIGINAL", payload
        else:
            assert self._code(payload) is None, payload
            self.model.reverse_earn(earned, points)

    @precondition(lambda self: self.spends)
    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        txn_id, spend = data.draw(st.sampled_from(self.spends))
        points = data.draw(st.integers(1, spend.points + 5))
        payload = self._call("B", REVERSE, transactionId=txn_id, points=points)
        if points > spend.points - spend.reversed:
            assert self._code(payload) == "REVERSAL_EXCEEDS_ORIGINAL", payload
        else:
            assert self._code(payload) is None, payload
            self.model.refund(spend, points)

    @rule(days=st.integers(0, 45), hours=st.integers(0, 23))
    def advance_and_run_jobs(self, days: int, hours: int) -> None:
        self.clock.advance(days=days, hours=hours)
        self.model.now = self.clock.now()
        self.loop.run(jobs.run_once(self.hub.db, self.clock.now()))
        self.model.run_jobs([hold for _, hold in self.holds])

    @precondition(lambda self: self.done)
    @rule(data=st.data())
    def replay_same_key(self, data: st.DataObject) -> None:
        who, mutation, fields, first = data.draw(st.sampled_from(self.done))
        before = (self.model.available, self.model.pending, self.model.held)
        result = self.loop.run(self.partner[who].gql(mutation, {"input": fields}))
        replayed = next(iter(result["data"].values()))
        # The same transaction or hold comes back, as it stands now (it may have been reversed or captured since).
        changing = {"reversedPoints", "status", "capturedPoints"}
        assert replayed["errors"] == []
        for name in ("transaction", "hold"):
            if first.get(name):
                assert {k: v for k, v in replayed[name].items() if k not in changing} == {
                    k: v for k, v in first[name].items() if k not in changing
                }
        assert before == (self.model.available, self.model.pending, self.model.held)

    @precondition(lambda self: self.done)
    @rule(data=st.data())
    def replay_with_a_different_body(self, data: st.DataObject) -> None:
        who, mutation, fields, _ = data.draw(st.sampled_from(self.done))
        changed = (
            {**fields, "points": fields.get("points", 0) + 1} if "points" in fields else {**fields, "holdId": "hold_x"}
        )
        result = self.loop.run(self.partner[who].gql(mutation, {"input": changed}))
        assert self._code(next(iter(result["data"].values()))) == "IDEMPOTENCY_CONFLICT"

    @invariant()
    def agrees_with_the_model(self) -> None:
        result = self.loop.run(self.b.gql(POINTS, {"id": self.member["B"]}))
        points = result["data"]["member"]["points"]
        model = self.model
        assert (points["available"], points["pending"], points["held"]) == (model.available, model.pending, model.held)
        expiring = [(datetime.fromisoformat(e["expiresAt"]), e["points"]) for e in points["expiring"]]
        assert expiring == model.expiring()

    @invariant()
    def ledger_invariants_hold(self) -> None:
        async def check() -> list[str]:
            async with self.hub.db.read() as conn:
                return await verify(conn)

        assert self.loop.run(check()) == []


@pytest.fixture
def machine_env(settings: Settings, tmp_path: Any, sms_gateway: SmsGateway) -> Any:
    loop = Loop()
    clock = FrozenClock(datetime(2030, 1, 1, tzinfo=UTC))
    app = create_app(replace(settings, points_expiry=f"days:{EXPIRY_DAYS}"), clock=clock)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER)

    async def make_partner() -> PartnerClient:
        hub = app.state.hub
        async with hub.db.write() as conn:
            partner = await partners.create_partner(
                conn, name=f"M {secrets.token_hex(5)}", kind="pharmacy_chain", now=clock.now()
            )
            client = await partners.create_client(
                conn,
                partner_public_id=partner.public_id,
                now=clock.now(),
                scopes=frozenset(
                    {"member:read", "member:enroll", "points:read", "points:earn", "points:redeem", "points:reverse"}
                ),
            )
        assert client.client_secret is not None
        return PartnerClient(
            http, partner.public_id, partner.id, client.client_id, client.client_secret, client.scopes, sms_gateway
        )

    yield {"loop": loop, "clock": clock, "app": app, "make_partner": make_partner}
    loop.run(http.aclose())
    loop.run(app.state.hub.close())
    loop.loop.close()


def test_ledger_state_machine(machine_env: Any) -> None:
    LedgerMachine.env = machine_env
    runner = LedgerMachine.TestCase
    runner.settings = settings(
        max_examples=int(os.environ.get("HUB_MODEL_EXAMPLES", "25")),
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    runner().runTest()
