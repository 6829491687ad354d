"""Double-spend under concurrency (fuint #71): 64 redemptions start together against one member.

Each runs through GraphQL on its own database connection. Some resend an earlier request's idempotency key.
Exactly ⌊B/a⌋ distinct redemptions may succeed, no balance may go negative, and `verify()` must be clean.
The negative control runs the same harness against a naive read-then-write and shows that it overspends, so a
passing run means the guard works, not that the race never happened.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from hub import migrate
from hub.app import create_app
from hub.config import Settings
from hub.partners import service as partners
from hub.points.verify import verify
from tests.conftest import ISSUER, PartnerClient, SmsGateway
from tests.points_helpers import EARN, REDEEM, enrol_member

CONNECTIONS = 64
BALANCE, AMOUNT = 1000, 70  # ⌊1000/70⌋ = 14 may succeed


@pytest.fixture
async def crowd(fresh_database_url: str, settings: Settings, sms_gateway: SmsGateway) -> AsyncIterator[dict[str, Any]]:
    migrate.upgrade(fresh_database_url)
    app = create_app(replace(settings, database_url=fresh_database_url, db_pool_size=CONNECTIONS))
    hub = app.state.hub
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
        async with hub.db.write() as conn:
            partner = await partners.create_partner(conn, name="Crowd", kind="pharmacy_chain", now=hub.clock.now())
            client = await partners.create_client(
                conn,
                partner_public_id=partner.public_id,
                now=hub.clock.now(),
                scopes=frozenset({"member:read", "member:enroll", "points:read", "points:earn", "points:redeem"}),
            )
        assert client.client_secret is not None
        pharmacy = PartnerClient(
            http, partner.public_id, partner.id, client.client_id, client.client_secret, client.scopes, sms_gateway
        )
        yield {"hub": hub, "pharmacy": pharmacy, "url": fresh_database_url}
    await hub.close()


async def stampede(attempt: Callable[[int], Awaitable[Any]], count: int = CONNECTIONS) -> list[Any]:
    """Start `count` attempts at the same moment."""
    gate = asyncio.Event()

    async def one(i: int) -> Any:
        await gate.wait()
        return await attempt(i)

    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    await asyncio.sleep(0.05)
    gate.set()
    return await asyncio.gather(*tasks)


async def test_concurrent_redemptions_never_overspend(crowd: dict[str, Any]) -> None:
    pharmacy: PartnerClient = crowd["pharmacy"]
    member = await enrol_member(pharmacy)
    earned = await pharmacy.gql(EARN, {"input": {"memberId": member, "points": BALANCE, "idempotencyKey": "seed"}})
    assert earned["data"]["earnPoints"]["errors"] == []
    token = await pharmacy.token()
    # Every fourth request resends the key of the one before it, with the same body.
    keys = [f"redeem-{i - 1 if i % 4 == 3 else i}" for i in range(CONNECTIONS)]

    async def redeem(i: int) -> dict[str, Any]:
        variables = {"input": {"memberId": member, "points": AMOUNT, "idempotencyKey": keys[i]}}
        result = await pharmacy.gql(REDEEM, variables, token=token)
        return result["data"]["redeemPoints"]  # type: ignore[no-any-return]

    results = await stampede(redeem)
    succeeded = {r["transaction"]["id"] for r in results if not r["errors"]}
    failures = {r["errors"][0]["code"] for r in results if r["errors"]}
    assert len(succeeded) == BALANCE // AMOUNT
    assert failures <= {"INSUFFICIENT_POINTS"}
    final = await pharmacy.gql("query($id: ID!) { member(id: $id) { points { available } } }", {"id": member})
    assert final["data"]["member"]["points"]["available"] == BALANCE - AMOUNT * (BALANCE // AMOUNT)
    async with crowd["hub"].db.read() as conn:
        assert await verify(conn) == []


async def test_negative_control_naive_read_then_write_overspends(crowd: dict[str, Any]) -> None:
    """The same stampede against a balance guarded by a read followed by a separate write."""
    hub = crowd["hub"]
    async with hub.db.write() as conn:
        await conn.execute(text("CREATE TABLE naive_balance (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)"))
        await conn.execute(text("INSERT INTO naive_balance VALUES (1, :b)"), {"b": BALANCE})

    async def naive(i: int) -> bool:
        async with hub.db.write() as conn:  # its own transaction, committed before the write's (one pool in use)
            balance = await conn.scalar(text("SELECT balance FROM naive_balance WHERE id = 1"))
        if balance < AMOUNT:
            return False
        await asyncio.sleep(0.01)  # the till does something else between reading and writing
        async with hub.db.write() as conn:
            await conn.execute(text("UPDATE naive_balance SET balance = :b WHERE id = 1"), {"b": balance - AMOUNT})
        return True

    results = await stampede(naive)
    assert sum(results) > BALANCE // AMOUNT, "the harness failed to provoke the race it exists to catch"


async def test_several_workers_share_the_jobs_without_double_work(crowd: dict[str, Any]) -> None:
    from datetime import timedelta

    from hub.points import jobs

    hub, pharmacy = crowd["hub"], crowd["pharmacy"]
    now = hub.clock.now()
    members = [await enrol_member(pharmacy) for _ in range(12)]
    for i, member in enumerate(members):
        until = (now + timedelta(days=1)).isoformat()
        variables = {"input": {"memberId": member, "points": 10 + i, "pendingUntil": until, "idempotencyKey": f"p{i}"}}
        assert (await pharmacy.gql(EARN, variables))["data"]["earnPoints"]["errors"] == []
    later = now + timedelta(days=2)
    reports = await asyncio.gather(*(jobs.run_once(hub.db, later) for _ in range(4)))
    assert sum(r.matured_points for r in reports) == sum(10 + i for i in range(12))
    again = await jobs.run_once(hub.db, later)
    assert again.matured_points == 0
    async with hub.db.read() as conn:
        assert await verify(conn) == []


async def test_ledger_commands_retry_on_deadlock_or_serialization_failure(crowd: dict[str, Any]) -> None:
    """PostgreSQL may abort one side of a deadlock (40P01) or a serialization conflict (40001): run() retries."""
    from sqlalchemy.exc import DBAPIError

    from hub.points import ledger

    class Aborted(Exception):
        sqlstate = "40P01"

    attempts = []

    async def command(conn: Any) -> int:
        attempts.append(1)
        if len(attempts) < 3:
            raise DBAPIError("UPDATE ...", {}, Aborted())
        return int(await conn.scalar(text("SELECT 7")))

    async def replay(conn: Any, txn_id: int) -> int:
        raise AssertionError("nothing to replay")

    key = ledger.Idempotency(partner_id=crowd["pharmacy"].partner_pk, key="retry-test", request_hash="h")
    assert await ledger.run(crowd["hub"].db, key, command, replay) == 7
    assert len(attempts) == 3
