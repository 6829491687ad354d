"""The consent rule is written once in Python (hub/consent/rule.py); PostgreSQL's one-round-trip redemption
(`hub_redeem`, migrations 0003 and 0010) carries the one copy Python cannot build. This runs both redemption paths
from the same states, each in a savepoint of one transaction, and compares what they answer and every row they
write: the member, link and consent states the rule distinguishes, and the balances the debit distinguishes."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.consent.models import consent
from hub.errors import DomainError
from hub.events.models import event
from hub.members.models import member, member_link
from hub.points import ledger
from hub.points.models import ledger_account, ledger_entry, ledger_txn, lot_allocation, point_lot
from hub.state import Hub
from tests.conftest import PartnerClient
from tests.points_helpers import EARN, call, enrol_member


@dataclass
class Shopper:
    pairwise_id: str
    member_id: int
    partner_id: int


Setup = Callable[[AsyncConnection, Shopper, datetime], Awaitable[None]]


async def _nothing(conn: AsyncConnection, who: Shopper, now: datetime) -> None:
    return None


def _consent(**values: Any) -> Setup:
    async def change(conn: AsyncConnection, who: Shopper, now: datetime) -> None:
        resolved = {k: v(now) if callable(v) else v for k, v in values.items()}
        await conn.execute(
            update(consent)
            .where(consent.c.member_id == who.member_id, consent.c.partner_id == who.partner_id)
            .values(**resolved)
        )

    return change


def _member_status(status: str) -> Setup:
    async def change(conn: AsyncConnection, who: Shopper, now: datetime) -> None:
        await conn.execute(update(member).where(member.c.id == who.member_id).values(status=status))

    return change


async def _unlinked(conn: AsyncConnection, who: Shopper, now: datetime) -> None:
    await conn.execute(
        update(member_link)
        .where(member_link.c.member_id == who.member_id, member_link.c.partner_id == who.partner_id)
        .values(pairwise_id="mbr_" + secrets.token_hex(8))
    )


async def _in_debt(conn: AsyncConnection, who: Shopper, now: datetime) -> None:
    code = f"m:{who.member_id}:member_available:POINT"
    await conn.execute(update(ledger_account).where(ledger_account.c.code == code).values(balance=-5))


# (name, the state, points asked): each path must answer the same and write the same rows.
CASES: list[tuple[str, Setup, int]] = [
    ("consent in force", _nothing, 30),
    ("all the points", _nothing, 100),
    ("more than the balance", _nothing, 101),
    ("a balance in debt", _in_debt, 1),
    ("consent without points:redeem", _consent(permissions=["member:read", "points:read"]), 30),
    ("consent revoked", _consent(status="REVOKED"), 30),
    ("consent marked expired", _consent(status="EXPIRED"), 30),
    ("consent awaiting authorisation", _consent(status="AWAITING_AUTHORISATION"), 30),
    ("consent past its expiry, not yet marked", _consent(expires_at=lambda now: now - timedelta(seconds=1)), 30),
    ("consent expiring this very instant", _consent(expires_at=lambda now: now), 30),
    ("consent expiring later", _consent(expires_at=lambda now: now + timedelta(days=1)), 30),
    ("provisional member", _member_status("provisional"), 30),
    ("erased member", _member_status("erased"), 30),
    ("merged member", _member_status("merged"), 30),
    ("not linked to the caller", _unlinked, 30),
]


async def _written(conn: AsyncConnection, who: Shopper, since: dict[str, int]) -> dict[str, list[Any]]:
    """What a redemption wrote or changed for this member, with generated ids and public ids taken out."""
    txns = select(ledger_txn.c.id).where(ledger_txn.c.member_id == who.member_id)
    lots = select(point_lot.c.id).where(point_lot.c.member_id == who.member_id)
    reads = {
        "ledger_txn": select(ledger_txn).where(ledger_txn.c.member_id == who.member_id),
        "ledger_entry": select(ledger_entry).where(ledger_entry.c.txn_id.in_(txns)),
        "ledger_account": select(ledger_account).where(
            (ledger_account.c.member_id == who.member_id) | (ledger_account.c.partner_id == who.partner_id)
        ),
        "point_lot": select(point_lot).where(point_lot.c.member_id == who.member_id),
        "lot_allocation": select(lot_allocation).where(lot_allocation.c.lot_id.in_(lots)),
        "event": select(event).where(event.c.member_id == who.member_id, event.c.id > since["event"]),
    }
    found = {}
    for table, query in reads.items():
        rows = []
        for row in (await conn.execute(query)).mappings():
            kept = {k: v for k, v in row.items() if k not in {"id", "public_id", "txn_id", "earn_txn_id"}}
            if table == "event":
                kept["payload"] = {k: v for k, v in row["payload"].items() if k != "transactionId"}
            if table in {"ledger_entry", "lot_allocation"}:
                kept["new"] = row["txn_id"] > since["ledger_txn"]  # which transaction: the redemption or an earn
            rows.append(kept)
        found[table] = sorted(rows, key=repr)
    return found


async def _run(
    conn: AsyncConnection,
    path: Callable[..., Awaitable[ledger.Txn]],
    who: Shopper,
    caller: int,
    cmd: ledger.Redeem,
    now: datetime,
    since: dict[str, int],
) -> tuple[str, dict[str, list[Any]] | None]:
    """One path in a savepoint: its answer, and what it wrote (a refusal writes nothing: it rolls back)."""
    savepoint = await conn.begin_nested()
    try:
        txn = await path(conn, caller, cmd, now)
    except DomainError as refused:
        await savepoint.rollback()
        return refused.code, None
    assert txn.points == cmd.points
    written = await _written(conn, who, since)
    await savepoint.rollback()
    return "OK", written


@pytest.fixture(scope="module")
async def shoppers(make_partner: Any, hub: Hub) -> tuple[PartnerClient, PartnerClient, list[Shopper]]:
    pharmacy: PartnerClient = await make_partner()
    other: PartnerClient = await make_partner()
    found = []
    for _ in CASES:
        pairwise_id = await enrol_member(pharmacy)
        # Two lots from two earns, so that a redemption's allocation order shows.
        for points in (60, 40):
            assert (await call(pharmacy, EARN, memberId=pairwise_id, points=points))["errors"] == []
        async with hub.db.read() as conn:
            member_id = await conn.scalar(
                select(member_link.c.member_id).where(member_link.c.pairwise_id == pairwise_id)
            )
        found.append(Shopper(pairwise_id, int(member_id or 0), pharmacy.partner_pk))
    return pharmacy, other, found


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c[0] for c in CASES])
async def test_hub_redeem_applies_the_consent_rule_as_python_does(
    hub: Hub, shoppers: tuple[PartnerClient, PartnerClient, list[Shopper]], index: int
) -> None:
    if hub.db.backend != "postgresql":
        pytest.skip("hub_redeem exists on PostgreSQL only; SQLite runs the Python path alone")
    _, _, found = shoppers
    name, setup, points = CASES[index]
    who = found[index]
    now = hub.clock.now()
    async with hub.db.engine.connect() as conn:
        outer = await conn.begin()
        await setup(conn, who, now)
        since = {
            "event": int(await conn.scalar(text("SELECT coalesce(max(id), 0) FROM event")) or 0),
            "ledger_txn": int(await conn.scalar(text("SELECT coalesce(max(id), 0) FROM ledger_txn")) or 0),
        }
        cmd = ledger.Redeem(who.pairwise_id, points, "till-1", "k-" + secrets.token_hex(6))
        python = await _run(conn, ledger._redeem_in_python, who, who.partner_id, cmd, now, since)
        function = await _run(conn, ledger._redeem_in_postgresql, who, who.partner_id, cmd, now, since)
        await outer.rollback()
    assert python == function, name
    # And the rule means what it says: only these states let the partner redeem.
    allowed = {"consent in force", "all the points", "consent expiring later", "provisional member"}
    assert (python[0] == "OK") == (name in allowed), python[0]


async def test_another_partner_reaches_nobody_through_a_pairwise_id_it_was_not_given(
    hub: Hub, shoppers: tuple[PartnerClient, PartnerClient, list[Shopper]]
) -> None:
    if hub.db.backend != "postgresql":
        pytest.skip("hub_redeem exists on PostgreSQL only")
    _, other, found = shoppers
    who = found[0]
    now = hub.clock.now()
    async with hub.db.engine.connect() as conn:
        outer = await conn.begin()
        since = {"event": 0, "ledger_txn": 0}
        cmd = ledger.Redeem(who.pairwise_id, 10, None, "k-" + secrets.token_hex(6))
        python = await _run(conn, ledger._redeem_in_python, who, other.partner_pk, cmd, now, since)
        function = await _run(conn, ledger._redeem_in_postgresql, who, other.partner_pk, cmd, now, since)
        await outer.rollback()
    assert python == function == ("MEMBER_NOT_FOUND", None)
