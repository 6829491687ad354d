"""Bulk import: rejects with line numbers, resumption without double counting, and the same results as the API."""

from __future__ import annotations

import csv
import json
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from hub import imports
from hub.clock import FrozenClock
from hub.consent.models import consent
from hub.events.models import event
from hub.members.models import member, member_claim, member_link
from hub.points.models import point_lot
from hub.points.verify import verify
from hub.purchases.models import purchase
from hub.state import Hub
from hub.tiers.models import member_tier, tier_change
from tests.conftest import ENROLL, PartnerClient, enrolment, new_phone
from tests.test_cli import hub_cli
from tests.test_purchases import PURCHASE, SHOPPER, shopper


class Interrupted(Exception):
    pass


def write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def history(clock: FrozenClock, members: list[str], count: int, seed: int) -> list[dict[str, Any]]:
    """Purchases over the past two years, some with several lines, prescriptions and big tickets."""
    rng = random.Random(seed)
    rows = []
    start = clock.now() - timedelta(days=700)
    for n in range(count):
        at = start + timedelta(days=700 * n / count, minutes=rng.randint(0, 600))
        owner = rng.choice(members)
        for line_no in range(rng.choice([1, 1, 2, 3])):
            rows.append(
                {
                    "reference": f"H-{seed}-{n}",
                    "external_id": owner,
                    "occurred_at": at.isoformat(),
                    "store_id": "S1",
                    "sku": f"SKU{line_no}",
                    "category": rng.choice(["otc", "vitamins", "devices"]),
                    "amount": f"{rng.randint(100, 300000) / 100:.2f}",
                    "quantity": rng.randint(1, 3),
                    "prescription": "true" if rng.random() < 0.1 else "false",
                    "insurer_paid": "false",
                }
            )
    return rows


def twin_line(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "sku": row["sku"],
        "category": row["category"],
        "amount": row["amount"],
        "quantity": row["quantity"],
        "prescription": row["prescription"] == "true",
        "insurerPaid": False,
    }


async def state_of(hub: Hub, member_ids: list[int]) -> list[tuple[Any, ...]]:
    from hub.points import queries

    result = []
    async with hub.db.read() as conn:
        for member_id in member_ids:
            balances = await queries.balances(conn, member_id)
            level = await conn.scalar(select(member_tier.c.level).where(member_tier.c.member_id == member_id))
            # What remains, by when it becomes available and when it expires (the issuer is each twin's own).
            lots = await conn.execute(
                select(point_lot.c.status, point_lot.c.available_at, point_lot.c.expires_at,
                       func.sum(point_lot.c.remaining))
                .where(point_lot.c.member_id == member_id)
                .group_by(point_lot.c.status, point_lot.c.available_at, point_lot.c.expires_at)
                .order_by(point_lot.c.status, point_lot.c.available_at, point_lot.c.expires_at)
            )  # fmt: skip
            result.append(
                (balances.available, balances.pending, balances.lifetime_earned, level or 0, [tuple(r) for r in lots])
            )
    return result


async def test_import_rejects_resumes_and_matches_the_api(
    hub: Hub, make_partner: Any, clock: FrozenClock, tmp_path: Path
) -> None:
    chain: PartnerClient = await make_partner()
    externals = [f"C{n:03d}" for n in range(8)]
    phones = [new_phone() for _ in externals]
    member_rows = [
        {"external_id": e, "phone": p, "name": "会员", "birthday": "1985-03-01", "permissions": " ".join(SHOPPER),
         "policy_version": "2025-paper", "consent_expires_at": ""}
        for e, p in zip(externals, phones, strict=True)
    ]  # fmt: skip
    member_rows.insert(3, {**member_rows[0], "external_id": "BAD-PHONE", "phone": "12"})
    member_rows.append({**member_rows[1], "external_id": "DUP", "phone": phones[1]})  # the same person twice
    elsewhere: PartnerClient = await make_partner()
    known_phone = new_phone()
    await elsewhere.gql(ENROLL, enrolment("E-1", known_phone))  # a hub member already, through another partner
    member_rows.append({**member_rows[2], "external_id": "KNOWN", "phone": known_phone})
    members_csv = tmp_path / "members.csv"
    write_csv(members_csv, imports.MEMBER_COLUMNS, member_rows)
    done = await imports.run(
        hub, kind="members", partner_public_id=chain.partner_id, path=members_csv, rejects=tmp_path / "m.rej"
    )
    assert (done.accepted, done.rejected, done.provisional) == (9, 2, 1)
    rejected = list(csv.DictReader((tmp_path / "m.rej").open(encoding="utf-8")))
    assert [(r["line"], r["code"]) for r in rejected] == [("5", "INVALID_PHONE"), ("11", "MEMBER_ALREADY_ENROLLED")]
    async with hub.db.read() as conn:
        enrolled = (
            await conn.execute(
                select(member_link.c.external_id, consent.c.status, consent.c.permissions, consent.c.version)
                .join(
                    consent,
                    (consent.c.member_id == member_link.c.member_id)
                    & (consent.c.partner_id == member_link.c.partner_id),
                )
                .where(member_link.c.partner_id == chain.partner_pk)
                .order_by(member_link.c.external_id)
            )
        ).all()
        linked = await conn.scalar(
            select(func.count())
            .select_from(member_link)
            .join(member, member.c.id == member_link.c.member_id)
            .where(member.c.phone == known_phone)
        )
        claimed = (
            await conn.execute(
                select(member.c.status, member_claim.c.status.label("claim"))
                .join(member_claim, member_claim.c.member_id == member.c.id)
                .join(member_link, member_link.c.member_id == member.c.id)
                .where(member_link.c.partner_id == chain.partner_pk, member_link.c.external_id == "KNOWN")
            )
        ).one()
        kinds = (await conn.scalars(select(event.c.type).where(event.c.partner_id == chain.partner_pk))).all()
    assert [r.external_id for r in enrolled] == [*externals, "KNOWN"]
    assert {(r.status, tuple(r.permissions), r.version) for r in enrolled} == {
        ("AUTHORISED", tuple(sorted(SHOPPER)), 1)
    }
    assert linked == 1  # the known phone's owner is not linked to the chain by the file alone...
    assert tuple(claimed) == ("provisional", "PENDING")  # ...but provisionally, until the owner confirms
    assert kinds.count("member.enrolled") == 9 and kinds.count("consent.granted") == 9

    rows = history(clock, externals, 60, seed=1)
    rows.insert(10, {**rows[9], "reference": "BAD-AMOUNT", "amount": "-3"})
    rows.insert(20, {**rows[19], "reference": "NOBODY", "external_id": "C999"})
    purchases_csv = tmp_path / "purchases.csv"
    write_csv(purchases_csv, imports.PURCHASE_COLUMNS, rows)

    seen: list[int] = []

    def stop_after_first_batch(lines: int) -> None:
        seen.append(lines)
        if len(seen) == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        await imports.run(
            hub, kind="purchases", partner_public_id=chain.partner_id, path=purchases_csv,
            rejects=tmp_path / "p.rej", batch=15, progress=stop_after_first_batch,
        )  # fmt: skip
    resumed = await imports.run(
        hub, kind="purchases", partner_public_id=chain.partner_id, path=purchases_csv,
        rejects=tmp_path / "p.rej", batch=15,
    )  # fmt: skip
    assert resumed.resumed_after > 1
    assert (resumed.accepted, resumed.rejected) == (60, 2)
    codes = {r["code"] for r in csv.DictReader((tmp_path / "p.rej").open(encoding="utf-8"))}
    assert codes == {"INVALID_AMOUNT", "MEMBER_NOT_FOUND"}
    again = await imports.run(
        hub, kind="purchases", partner_public_id=chain.partner_id, path=purchases_csv, rejects=tmp_path / "p.rej"
    )
    assert again.accepted == 60  # a finished job is not run twice

    per_partner: list[list[tuple[Any, ...]]] = []
    # The twin: the same history sent through GraphQL, purchase by purchase, for members enrolled by the API.
    twin: PartnerClient = await make_partner()
    twins = {e: await shopper(twin, birthday="1985-03-01") for e in externals}
    by_reference: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["reference"] not in ("BAD-AMOUNT", "NOBODY"):
            by_reference.setdefault(row["reference"], []).append(row)
    for reference, lines in by_reference.items():
        first = lines[0]
        data = {
            "memberId": twins[first["external_id"]],
            "reference": reference,
            "occurredAt": first["occurred_at"],
            "storeId": "S1",
            "lines": [twin_line(r) for r in lines],
            "idempotencyKey": f"twin:{reference}",
        }
        assert (await twin.gql(PURCHASE, {"input": data}))["data"]["recordPurchase"]["errors"] == []

    async with hub.db.read() as conn:
        imported_ids = {
            r.external_id: r.member_id
            for r in await conn.execute(
                select(member_link.c.external_id, member_link.c.member_id).where(
                    member_link.c.partner_id == chain.partner_pk
                )
            )
        }
        twin_ids = {
            r.pairwise_id: r.member_id
            for r in await conn.execute(
                select(member_link.c.pairwise_id, member_link.c.member_id).where(
                    member_link.c.partner_id == twin.partner_pk
                )
            )
        }
        assert await verify(conn) == []
    imported = await state_of(hub, [imported_ids[e] for e in externals])
    through_api = await state_of(hub, [twin_ids[twins[e]] for e in externals])
    assert imported == through_api
    async with hub.db.read() as conn:
        for partner_pk in (chain.partner_pk, twin.partner_pk):
            recorded = await conn.execute(
                select(purchase.c.reference, purchase.c.points, purchase.c.qualifying, purchase.c.tier_level)
                .where(purchase.c.partner_id == partner_pk)
                .order_by(purchase.c.reference)
            )
            per_partner.append([tuple(r) for r in recorded])
        for external in externals:
            changes = []
            for member_pk in (imported_ids[external], twin_ids[twins[external]]):
                found = await conn.execute(
                    select(tier_change.c.from_level, tier_change.c.to_level, tier_change.c.reason)
                    .where(tier_change.c.member_id == member_pk)
                    .order_by(tier_change.c.id)
                )
                changes.append([tuple(r) for r in found])
            assert changes[0] == changes[1]
    assert per_partner[0] == per_partner[1]
    assert any(level > 0 for *_, level, _lots in imported)  # the history is big enough to move tiers
    assert all(lots for *_, lots in imported)


def test_import_cli_with_progress_and_json(fresh_database_url: str, tmp_path: Path) -> None:
    assert hub_cli(fresh_database_url, tmp_path, "db", "upgrade").returncode == 0
    partner = json.loads(
        hub_cli(fresh_database_url, tmp_path, "partner", "create", "--name", "Chain", "--kind", "pharmacy_chain",
                "--json").stdout
    )["id"]  # fmt: skip
    members_csv = tmp_path / "m.csv"
    write_csv(
        members_csv,
        imports.MEMBER_COLUMNS,
        [{"external_id": "A1", "phone": new_phone(), "name": "", "birthday": "", "permissions": " ".join(SHOPPER),
          "policy_version": "", "consent_expires_at": ""}],
    )  # fmt: skip
    result = hub_cli(
        fresh_database_url, tmp_path, "import", "members", str(members_csv), "--partner", partner, "--json"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) | {"seconds": 0} == {
        "kind": "members", "lines": 1, "accepted": 1, "rejected": 0, "provisional": 0, "resumed_after_line": 0,
        "rejects_file": str(tmp_path / "m.rejects.csv"), "seconds": 0, "encoding": "utf-8",
    }  # fmt: skip
    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("who,what\n1,2\n", encoding="utf-8")
    refused = hub_cli(fresh_database_url, tmp_path, "import", "purchases", str(bad_header), "--partner", partner)
    assert refused.returncode == 1 and "INVALID_INPUT" in refused.stderr
