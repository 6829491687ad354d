"""Retention through the hub, on both databases: histories imported as a chain imports them, scores read through
GraphQL under the member's consent (and gone when it goes), `member.at_risk` and `points.expiring` delivered to a
real receiver once, the report's numbers on a hand-built history, and the portal and export showing the member
what was concluded about them."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from hub import imports
from hub.clock import FrozenClock
from hub.consent import service as consents
from hub.consent.models import consent
from hub.members import privacy
from hub.members.models import member_link
from hub.partners import service as partners
from hub.points import jobs
from hub.retention import report as reports
from hub.retention import service
from hub.retention.models import retention_score
from hub.retention.scoring import SEGMENT_NAMES
from hub.retention.summary import summarise
from hub.state import Hub
from tests.conftest import ALL_PARTNER_SCOPES, PartnerClient, new_phone
from tests.test_import import write_csv
from tests.webhook_helpers import Receiver, deliver, endpoint

ANALYTICS = f"{ALL_PARTNER_SCOPES} analytics:read"
PROFILED = "member:read points:read points:earn purchases:write analytics:read"
UNPROFILED = "member:read points:read points:earn purchases:write"


@dataclass(frozen=True)
class Shopper:
    external_id: str
    visits: list[datetime]
    profiled: bool = True
    amount: str = "80.00"


async def import_history(hub: Hub, partner: PartnerClient, shoppers: list[Shopper], folder: Path) -> None:
    """The chain's members and their purchase history, through `hub import` (members, then purchases)."""
    expires = (hub.clock.now() + timedelta(days=365)).isoformat()
    members = [
        {"external_id": s.external_id, "phone": new_phone(), "name": "会员", "birthday": "1980-01-01",
         "permissions": PROFILED if s.profiled else UNPROFILED, "policy_version": "2026-01",
         "consent_expires_at": expires if s.profiled else ""}
        for s in shoppers
    ]  # fmt: skip
    purchases = [
        {"reference": f"{partner.partner_id}-{s.external_id}-{n}", "external_id": s.external_id,
         "occurred_at": at.isoformat(), "store_id": "S1", "sku": "SKU-1", "category": "otc", "amount": s.amount,
         "quantity": "1", "prescription": "false", "insurer_paid": "false"}
        for s in shoppers
        for n, at in enumerate(sorted(s.visits))
    ]  # fmt: skip
    for kind, rows, columns in (
        ("members", members, imports.MEMBER_COLUMNS),
        ("purchases", purchases, imports.PURCHASE_COLUMNS),
    ):
        path = folder / f"{partner.partner_id}-{kind}.csv"
        write_csv(path, columns, rows)
        done = await imports.run(
            hub, kind=kind, partner_public_id=partner.partner_id, path=path, rejects=folder / f"{kind}.rej"
        )
        assert done.rejected == 0, (folder / f"{kind}.rej").read_text()


def regulars_and_lapsed(now: datetime, count: int, seed: int, prefix: str = "R") -> list[Shopper]:
    """Members who shop at their own pace (every 10 to 40 days on average, at random) until now, and a third who
    did the same but stopped months ago; one in ten did not consent to analytics."""
    rng = random.Random(seed)
    shoppers = []
    for n in range(count):
        gap = rng.uniform(10, 40)
        stopped = 0.0 if n % 3 else rng.uniform(120, 200)
        day = rng.uniform(stopped + 2 * gap, 420)
        visits = []
        while day > stopped:
            visits.append(now - timedelta(days=day))
            day -= rng.expovariate(1 / gap)
        shoppers.append(Shopper(f"{prefix}{n:03d}", visits, profiled=n % 10 != 9))
    return shoppers


async def member_of(hub: Hub, partner: PartnerClient, external_id: str) -> tuple[int, str]:
    """The hub's member id and pairwise id behind a chain's external id."""
    async with hub.db.read() as conn:
        row = (
            await conn.execute(
                select(member_link.c.member_id, member_link.c.pairwise_id).where(
                    member_link.c.partner_id == partner.partner_pk, member_link.c.external_id == external_id
                )
            )
        ).one()
    return row.member_id, row.pairwise_id


RETENTION = """query($first: Int) { members(first: $first) { edges { node { externalId
  retention { pAlive expectedPurchases90d value12m recencyDays frequency monetary segment rfm { r f m } atRisk
  scoredAt model { id fittedAt members } } } } } }"""
AT_RISK = """query($first: Int, $after: String, $max: Float) {
  atRiskMembers(first: $first, after: $after, maxPAlive: $max) {
    edges { cursor node { id externalId retention { pAlive monetary value12m } } } pageInfo { hasNextPage endCursor }
  } }"""


async def test_scores_are_read_under_the_members_consent_and_go_with_it(
    hub: Hub, make_partner: Any, tmp_path: Path
) -> None:
    chain: PartnerClient = await make_partner(scopes=ANALYTICS)
    now = hub.clock.now()
    shoppers = regulars_and_lapsed(now, 40, seed=1)
    await import_history(hub, chain, shoppers, tmp_path)
    scored = await service.score_partner(hub.db, chain.partner_pk, now, hub.settings.points_policy.zone, now=now)
    profiled = {s.external_id for s in shoppers if s.profiled}
    assert scored.error is None and scored.members == len(profiled) == 36
    assert scored.fit is not None and scored.fit.members == 36

    found = await chain.gql(RETENTION, {"first": 100})
    nodes = {e["node"]["externalId"]: e["node"] for e in found["data"]["members"]["edges"]}
    refused = {e["path"][3] for e in found["errors"]} if "errors" in found else set()
    assert {e["extensions"]["code"] for e in found["errors"]} == {"CONSENT_REQUIRED"}
    assert len(refused) == 1 and sum(1 for n in nodes.values() if n["retention"] is None) == 4
    for external_id in profiled:
        score = nodes[external_id]["retention"]
        assert 0 <= score["pAlive"] <= 1 and score["model"]["id"] == scored.fit.public_id
        assert score["model"]["members"] == 36 and all(1 <= score["rfm"][k] <= 5 for k in "rfm")
    lapsed = [s for s in shoppers if s.profiled and (now - max(s.visits)).days > 100]
    regular = [s for s in shoppers if s.profiled and (now - max(s.visits)).days < 45]
    # The model tells them apart: the lapsed are far less likely to be customers still.
    assert max(nodes[s.external_id]["retention"]["pAlive"] for s in lapsed) < min(
        nodes[s.external_id]["retention"]["pAlive"] for s in regular
    )

    # The at-risk list: every at-risk member once, most valuable first, across pages.
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        page = (await chain.gql(AT_RISK, {"first": 4, "after": after}))["data"]["atRiskMembers"]
        seen += [e["node"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    at_risk = {e for e, n in nodes.items() if n["retention"] and n["retention"]["atRisk"]}
    assert [n["externalId"] for n in seen if n["externalId"]] and {n["externalId"] for n in seen} == at_risk
    worth = [n["retention"]["value12m"] if n["retention"]["value12m"] is not None else n["retention"]["monetary"]
             for n in seen]  # fmt: skip
    assert worth == sorted(worth, reverse=True)
    narrowed = (await chain.gql(AT_RISK, {"first": 100, "max": 0.05}))["data"]["atRiskMembers"]["edges"]
    assert all(e["node"]["retention"]["pAlive"] <= 0.05 for e in narrowed)

    # Without the scope: refused, whatever the members consented to.
    token = await chain.token(scope="member:read")
    denied = await chain.gql(AT_RISK, {"first": 5}, token=token)
    assert denied["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE"
    hidden = await chain.gql(RETENTION, {"first": 5}, token=token)
    assert {e["extensions"]["code"] for e in hidden["errors"]} == {"CONSENT_REQUIRED"}

    # The member withdraws analytics: the score is deleted at once, and reads are refused.
    first = next(iter(sorted(at_risk)))
    member_id, pairwise_id = await member_of(hub, chain, first)
    async with hub.db.write() as conn:
        given = (
            await conn.execute(
                select(consent.c.public_id, consent.c.permissions).where(
                    consent.c.member_id == member_id, consent.c.partner_id == chain.partner_pk
                )
            )
        ).one()
        keep = frozenset(given.permissions) - {"analytics:read"}
        await consents.narrow(conn, member_id, given.public_id, keep, now=now, actor="member")
    async with hub.db.read() as conn:
        left = await conn.scalar(
            select(func.count()).select_from(retention_score).where(retention_score.c.member_id == member_id)
        )
    assert left == 0
    one = await chain.gql("query($id: ID!) { member(id: $id) { retention { pAlive } } }", {"id": pairwise_id})
    assert one["errors"][0]["extensions"]["code"] == "CONSENT_REQUIRED"
    everyone = (await chain.gql(AT_RISK, {"first": 100}))["data"]["atRiskMembers"]["edges"]
    assert first not in {e["node"]["externalId"] for e in everyone}
    # Rescoring leaves them out too.
    again = await service.score_partner(hub.db, chain.partner_pk, now, hub.settings.points_policy.zone, now=now)
    assert again.members == 35


async def test_the_member_sees_their_segment_in_the_portal_and_the_export(
    hub: Hub, make_partner: Any, tmp_path: Path
) -> None:
    chain: PartnerClient = await make_partner(scopes=ANALYTICS)
    now = hub.clock.now()
    shoppers = regulars_and_lapsed(now, 30, seed=2, prefix="P")
    await import_history(hub, chain, shoppers, tmp_path)
    await service.score_partner(hub.db, chain.partner_pk, now, hub.settings.points_policy.zone, now=now)
    member_id, _ = await member_of(hub, chain, "P001")
    async with hub.db.read() as conn:
        exported = await privacy.export(conn, member_id, now)
    [mine] = exported["retention"]
    assert mine["partner"].startswith("Partner ") and mine["segment"] and 0 <= mine["pAlive"] <= 1


async def test_at_risk_members_reach_the_partner_once_in_90_days(
    hub: Hub, make_partner: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "ANNOUNCE_CHUNK", 4)  # a few members per chunk: the notices span several
    chain: PartnerClient = await make_partner(scopes=ANALYTICS)
    now = hub.clock.now()
    zone = hub.settings.points_policy.zone
    shoppers = regulars_and_lapsed(now, 30, seed=3, prefix="W")
    await import_history(hub, chain, shoppers, tmp_path)
    receiver = Receiver()
    try:
        await endpoint(chain, receiver.url, ["member.at_risk"])

        async def threshold(value: float) -> None:
            async with hub.db.write() as conn:
                await partners.set_terms(conn, partner_public_id=chain.partner_id, at_risk_threshold=value, now=now)

        async def rescore(days: int) -> set[str]:
            """The members announced by a rescoring `days` from now."""
            before = len(receiver.of_type("member.at_risk"))
            moment = now + timedelta(days=days)
            done = await service.score_partner(hub.db, chain.partner_pk, moment, zone, now=now)
            await deliver(hub)
            told = receiver.of_type("member.at_risk")[before:]
            assert done.error is None, (days, done.error)
            assert done.announced == len(told)
            return {r.json["data"]["memberId"] for r in told}

        await threshold(0.3)
        first = await rescore(0)
        assert first
        data = receiver.of_type("member.at_risk")[0].json["data"]
        assert set(data) == {"memberId", "pAlive", "segment", "lastPurchaseDate", "availablePoints",
                             "expiringSoonest"}  # fmt: skip
        assert 0 <= data["pAlive"] <= 1 and data["segment"] in SEGMENT_NAMES
        assert data["availablePoints"] > 0  # the member's consent covers points:read: the levers are shown
        shopper = {(await member_of(hub, chain, s.external_id))[1]: s for s in shoppers}[data["memberId"]]
        assert data["lastPurchaseDate"] == max(shopper.visits).astimezone(zone).date().isoformat()  # the local day

        # The next day: the same members are still at risk, and nobody is told twice.
        assert await rescore(1) == set()
        # Those who came back (judged by P(alive): a lower threshold lets them recover) and slip again 30 days
        # later are still inside their 90 days: not told again (someone newly at risk may be).
        await threshold(0.0001)
        await rescore(2)
        await threshold(0.3)
        assert not await rescore(30) & first
        # Past 90 days since the notice, a member who recovers and slips again is announced again. Who recovers
        # is set by the threshold, under the P(alive) of the most likely first-announced member who came back at
        # least once (P(alive) only falls while nobody buys, so 0.3 catches them again the day after).
        await threshold(0.0001)
        await rescore(90)
        async with hub.db.read() as conn:
            best = await conn.scalar(
                select(func.max(retention_score.c.p_alive))
                .join(member_link, member_link.c.member_id == retention_score.c.member_id)
                .where(
                    retention_score.c.partner_id == chain.partner_pk,
                    member_link.c.partner_id == chain.partner_pk,
                    member_link.c.pairwise_id.in_(first),
                    retention_score.c.frequency > 1,
                )
            )
        assert best and best < 0.3
        await threshold(best / 10)
        back = await rescore(91)
        await threshold(0.3)
        assert await rescore(92) & first - back
    finally:
        receiver.close()


async def test_points_expiring_is_told_once_per_batch_to_partners_with_points_read(
    hub: Hub, make_partner: Any, clock: FrozenClock
) -> None:
    from tests.points_helpers import EARN, call, enrol_member

    shop: PartnerClient = await make_partner()
    phone = new_phone()
    member = await enrol_member(shop, phone=phone)
    blind: PartnerClient = await make_partner()
    await enrol_member(blind, ["member:read"], phone=phone)  # linked to the same member, no points:read
    receivers = {p.partner_id: Receiver() for p in (shop, blind)}
    try:
        for p in (shop, blind):
            await endpoint(p, receivers[p.partner_id].url, ["points.expiring"])
        for _ in range(2):  # two earns, one batch: they expire at the same instant
            assert (await call(shop, EARN, memberId=member, points=40))["errors"] == []
        within = timedelta(days=800)  # lots expire at the end of next year
        while await jobs.announce_expiring(hub.db, clock.now(), within):
            pass
        await deliver(hub)
        told = [r.json["data"] for r in receivers[shop.partner_id].of_type("points.expiring")]
        assert len(told) == 1 and told[0]["memberId"] == member and told[0]["points"] == 80
        assert receivers[blind.partner_id].of_type("points.expiring") == []
        # Once per batch: another round, and another earn into the same batch, tell nothing more.
        assert (await call(shop, EARN, memberId=member, points=5))["errors"] == []
        while await jobs.announce_expiring(hub.db, clock.now(), within):
            pass
        await deliver(hub)
        assert len(receivers[shop.partner_id].of_type("points.expiring")) == 1
    finally:
        for r in receivers.values():
            r.close()


def local(day: date, hour: int = 12) -> datetime:
    from zoneinfo import ZoneInfo

    return datetime.combine(day, time(hour), ZoneInfo("Asia/Shanghai"))


def month_of(now: datetime, back: int) -> date:
    """The first day of the month `back` months before now's."""
    number = now.year * 12 + now.month - 1 - back
    return date(number // 12, number % 12 + 1, 1)


REPORT = """query($from: Date!, $to: Date!) { retentionReport(from: $from, to: $to) { from to
  cohorts { month size retained suppressed } activeMembers repurchaseRate churnedMembers scoredMembers meanPAlive
  segments { segment members suppressed } suppressed } }"""


async def test_the_report_on_a_hand_built_history(hub: Hub, make_partner: Any, tmp_path: Path) -> None:
    """Cohort A: 12 members first buying in month 0, 6 of them again in month 1, 3 in month 2. Cohort B: 5 members
    first buying in month 1 (suppressed). 11 members bought only before month 0 (churned). 2 members bought in
    month 0 but are not profiled (they count nowhere)."""
    chain: PartnerClient = await make_partner(scopes=ANALYTICS)
    now = hub.clock.now()
    m0, m1, m2 = month_of(now, 4), month_of(now, 3), month_of(now, 2)
    end = month_of(now, 1) - timedelta(days=1)  # the last day of month 2
    shoppers = []
    for n in range(12):
        visits = [local(m0 + timedelta(days=n))]
        if n < 6:
            visits.append(local(m1 + timedelta(days=3)))
        if n < 3:
            visits += [local(m2 + timedelta(days=5)), local(m2 + timedelta(days=6))]
        shoppers.append(Shopper(f"A{n:02d}", visits))
    shoppers += [Shopper(f"B{n:02d}", [local(m1 + timedelta(days=n))]) for n in range(5)]
    shoppers += [Shopper(f"C{n:02d}", [local(m0 - timedelta(days=40 + n))]) for n in range(11)]
    shoppers += [Shopper(f"X{n:02d}", [local(m0 + timedelta(days=2))], profiled=False) for n in range(2)]
    await import_history(hub, chain, shoppers, tmp_path)

    found = (await chain.gql(REPORT, {"from": m0.isoformat(), "to": end.isoformat()}))["data"]["retentionReport"]
    assert found["cohorts"] == [
        {"month": m0.isoformat(), "size": 12, "retained": [0.5, 0.25], "suppressed": False},
        {"month": m1.isoformat(), "size": None, "retained": None, "suppressed": True},
        {"month": m2.isoformat(), "size": 0, "retained": [], "suppressed": False},
    ]
    assert found["activeMembers"] == 17  # 12 + 5
    assert found["repurchaseRate"] == pytest.approx(6 / 17)  # two purchase days or more within the period
    assert found["churnedMembers"] == 11
    # Not scored yet: no one to count, no mean.
    assert found["scoredMembers"] == 0 and found["meanPAlive"] is None and found["suppressed"] == []

    scored = await service.score_partner(hub.db, chain.partner_pk, now, hub.settings.points_policy.zone, now=now)
    assert scored.members == 28
    found = (await chain.gql(REPORT, {"from": m0.isoformat(), "to": end.isoformat()}))["data"]["retentionReport"]
    assert found["scoredMembers"] == 28 and 0 < found["meanPAlive"] < 1
    counts = {s["segment"]: s for s in found["segments"]}
    assert sum(s["members"] or 0 for s in counts.values()) <= 28
    for s in counts.values():  # every group under 10 is hidden and flagged (an empty one is simply 0)
        assert (s["members"] is None) == s["suppressed"] and (
            s["members"] is None or s["members"] in (0,) or s["members"] >= 10
        )
    assert any(s["suppressed"] for s in counts.values())  # 28 members in 9 segments: some groups are small

    # Bad ranges: a typed error, nothing else.
    for start, stop in (("2020-01-01", "2025-06-01"), ("2026-03-01", "2026-02-01")):
        bad = await chain.gql(REPORT, {"from": start, "to": stop})
        assert bad["data"] is None and bad["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_a_partner_without_history_gets_an_empty_report(hub: Hub) -> None:
    async with hub.db.read() as conn:
        empty = await reports.report(conn, -1, date(2026, 1, 1), date(2026, 2, 1), hub.settings.points_policy.zone,
                                     now=hub.clock.now())  # fmt: skip
    assert empty.active_members == 0 and empty.repurchase_rate is None and empty.suppressed == []
    assert [(c.size, c.suppressed) for c in empty.cohorts] == [(0, False), (0, False)]


async def test_the_rescoring_is_claimed_once_per_interval(hub: Hub, make_partner: Any, tmp_path: Path) -> None:
    chain: PartnerClient = await make_partner(scopes=ANALYTICS)
    now = hub.clock.now()
    await import_history(hub, chain, regulars_and_lapsed(now, 25, seed=5, prefix="Q"), tmp_path)
    zone = hub.settings.points_policy.zone
    every = timedelta(hours=24)
    first = [r for r in await service.rescore_due(hub.db, now, every, zone) if r.partner_id == chain.partner_pk]
    assert len(first) == 1 and first[0].fit is not None
    again = await service.rescore_due(hub.db, now + timedelta(hours=1), every, zone)
    assert chain.partner_pk not in {r.partner_id for r in again}
    later = await service.rescore_due(hub.db, now + timedelta(hours=25), every, zone)
    assert chain.partner_pk in {r.partner_id for r in later}
    async with hub.db.write() as conn:  # leave the other tests' partners to their own schedule
        from hub.retention.models import retention_run

        await conn.execute(update(retention_run).values(attempted_at=now - timedelta(days=2)))


async def test_the_summary_counts_purchase_days_in_the_programmes_zone(
    hub: Hub, make_partner: Any, tmp_path: Path
) -> None:
    """Two purchases on one local day are one purchase day (their spend summed, the first day's spend kept apart);
    days are the programme's, not UTC's (00:30 in Shanghai is the previous day in UTC); a member who did not allow
    profiling is not summarised."""
    chain: PartnerClient = await make_partner(scopes=ANALYTICS)
    zone = hub.settings.points_policy.zone
    now = hub.clock.now()
    start = datetime.combine(now.astimezone(zone).date() - timedelta(days=40), time(10), tzinfo=zone)
    visits = [start, start + timedelta(hours=5), start + timedelta(days=10, hours=13, minutes=30),
              start + timedelta(days=20, hours=14, minutes=30)]  # fmt: skip
    assert visits[3].astimezone(UTC).date() < visits[3].date()  # 00:30 local: the day before in UTC
    await import_history(hub, chain, [Shopper("S1", visits), Shopper("S2", visits, profiled=False)], tmp_path)
    member_id, _ = await member_of(hub, chain, "S1")
    async with hub.db.read() as conn:
        found = await summarise(conn, chain.partner_pk, now, zone, now=now)
    assert found.member_id.tolist() == [member_id]

    def day(moment: datetime) -> int:
        return (moment.astimezone(zone).date() - date(1970, 1, 1)).days

    assert found.days.tolist() == [3]
    assert (found.first_day[0], found.last_day[0]) == (day(visits[0]), day(visits[3]))
    assert found.as_of_day == day(now)
    assert (found.spend[0], found.first_spend[0]) == (4 * 8000, 2 * 8000)
    assert found.repeat_spend.tolist() == [8000.0]
