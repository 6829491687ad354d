"""The demo coalition: a pharmacy chain, an insurer and a gym, each with a client, and a few hundred members.

Members are enrolled through the same service partners use, so the demo data obeys every rule real data does:
a pharmacy enrols everyone, and the insurer and gym enrol some of the same people by phone, which links them to
the existing hub member instead of creating a duplicate.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.consent import requests as consent_requests
from hub.consent.service import Evidence
from hub.db import Database
from hub.errors import DomainError
from hub.members import claims
from hub.members import service as members
from hub.partners import service as partners
from hub.partners.models import partner
from hub.partners.service import Partner
from hub.points import ledger
from hub.points.policy import PointsPolicy
from hub.programme.config import Programme
from hub.purchases import service as purchases
from hub.rewards import catalogue

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = [
    "伟",
    "芳",
    "娜",
    "敏",
    "静",
    "丽",
    "强",
    "磊",
    "军",
    "洋",
    "勇",
    "艳",
    "杰",
    "娟",
    "涛",
    "明",
    "超",
    "秀英",
    "霞",
    "平",
]

DEMO_PARTNERS = [
    (
        "Kangjian Pharmacy",
        "pharmacy_chain",
        "member:read member:enroll points:read points:earn points:redeem "
        "points:reverse purchases:write purchases:read consent:read consent:request settlement:read webhooks:manage "
        "analytics:read rewards:manage rewards:redeem",
        "DEMO-PH",
        1.0,
    ),
    (
        "Ping'an Health Insurance",
        "insurer",
        "member:read member:enroll points:read points:grant activity:write "
        "purchases:read consent:read consent:request settlement:read webhooks:manage",
        "DEMO-IN",
        0.4,
    ),
    (
        "Leap Fitness",
        "gym",
        "member:read member:enroll points:read points:grant points:redeem activity:write consent:read "
        "consent:request settlement:read webhooks:manage rewards:manage rewards:redeem",
        "DEMO-GY",
        0.3,
    ),
]


# The member to sign in as in the portal (the one-time code is printed in the server log in development), and
# the redirect URI of the gym's demo app (authorization code flow; nothing needs to listen there: the code is in
# the browser's address bar).
DEMO_MEMBER_PHONE = "+8613800138000"
SHOPPER = ["member:read", "points:read", "points:earn", "points:redeem", "purchases:write"]
# Most of the pharmacy's members also let it profile their visits (a health-related permission: it expires).
PROFILED = [*SHOPPER, "analytics:read"]
PROFILED_SHARE = 0.85
HISTORY_DAYS = 540  # the pharmacy's members first bought within the last year and a half
DEMO_APP_REDIRECT_URI = "http://127.0.0.1:8765/callback"


@dataclass(frozen=True)
class DemoClient:
    partner_id: str
    partner_name: str
    kind: str
    client_id: str
    client_secret: str
    scopes: str
    redirect_uri: str = ""


async def is_seeded(conn: AsyncConnection) -> bool:
    return bool(await conn.scalar(select(func.count()).select_from(partner)))


async def seed(
    conn: AsyncConnection,
    *,
    now: datetime,
    policy: PointsPolicy,
    programme: Programme,
    members_count: int = 300,
    rng_seed: int = 7,
) -> list[DemoClient]:
    rng = random.Random(rng_seed)
    clients: list[DemoClient] = []
    created = []
    for name, kind, scope, _prefix, _share in DEMO_PARTNERS:
        p = await partners.create_partner(conn, name=name, kind=kind, now=now)
        c = await partners.create_client(conn, partner_public_id=p.public_id, scopes=frozenset(scope.split()), now=now)
        assert c.client_secret is not None
        clients.append(DemoClient(p.public_id, p.name, kind, c.client_id, c.client_secret, scope))
        created.append(p)

    gym = created[2]
    app = await partners.create_client(
        conn,
        partner_public_id=gym.public_id,
        scopes=frozenset({"member:read", "points:read"}),
        redirect_uris=[DEMO_APP_REDIRECT_URI],
        name="Leap Fitness app",
        now=now,
    )
    assert app.client_secret is not None
    clients.append(
        DemoClient(
            gym.public_id,
            "Leap Fitness app",
            "gym",
            app.client_id,
            app.client_secret,
            "member:read points:read",
            DEMO_APP_REDIRECT_URI,
        )
    )

    links: dict[str, list[str]] = {}  # partner public id -> pairwise ids of its members
    settle_with = claims.Programme(programme.at(now), policy.zone)
    await _demo_member(conn, created, links, now, settle_with)
    for i in range(members_count):
        phone = f"+86138{rng.randrange(10**8):08d}"
        name = rng.choice(_SURNAMES) + rng.choice(_GIVEN)
        birthday = date(rng.randint(1950, 2005), rng.randint(1, 12), rng.randint(1, 28))
        for p, (_n, _k, _s, prefix, share) in zip(created, DEMO_PARTNERS, strict=True):
            if rng.random() >= share:
                continue
            profiled = p is created[0] and rng.random() < PROFILED_SHARE
            enrolment = members.Enrolment(
                external_id=f"{prefix}-{i + 1:05d}",
                phone=phone,
                name=name,
                birthday=birthday,
                permissions=PROFILED if profiled else SHOPPER,
                evidence=Evidence(policy_version="2026-01", channel="POS", actor=f"partner:{p.public_id}"),
                consent_expires_at=now + timedelta(days=365) if profiled else None,
            )
            try:
                async with conn.begin_nested():
                    pairwise_id, _ = await _enrol_confirmed(conn, p, enrolment, now, settle_with)
            except DomainError:
                continue  # a random phone collided with an earlier member under another external id
            links.setdefault(p.public_id, []).append(pairwise_id)
    await _points_activity(conn, created, links, rng, now, policy, programme)
    await _rewards(conn, created, programme, now)
    return clients


async def _rewards(conn: AsyncConnection, created: list[Partner], programme: Programme, now: datetime) -> None:
    """The catalogue: the pharmacy's coupon, and the gym's health check (sponsored by the gym, redeemed at the
    pharmacy too, so its settlement has a sponsor line). The 金卡-first gift is left for the walkthrough to create."""
    pharmacy, _insurer, gym = created
    version = programme.at(now)
    await catalogue.create(conn, pharmacy.id, catalogue.RewardInput(
        kind="COUPON", name="满100减20 coupon", points_cost=1000, face_value="20.00", claim_valid_days=30,
        description="20 yuan off a basket of vitamins or personal care", categories=("vitamins", "personal care"),
    ), version, now)  # fmt: skip
    await catalogue.create(conn, gym.id, catalogue.RewardInput(
        kind="SERVICE", name="Body composition check", points_cost=500, face_value="60.00", stock=200, member_limit=1,
        limit_period="YEAR", redeemers=(gym.public_id, pharmacy.public_id),
    ), version, now)  # fmt: skip


async def _enrol_confirmed(
    conn: AsyncConnection, p: Partner, enrolment: members.Enrolment, now: datetime, programme: claims.Programme
) -> tuple[str, int]:
    """Enrol as a till does, and settle the claim as the member does who hands back the code sent to their phone
    (so the demo's members are linked across partners). Returns the pairwise id and the hub member."""
    enrolled = await members.enrol(conn, p.id, enrolment, now=now, default_region="CN")
    assert enrolled.claim is not None
    kept = await claims.settle(conn, enrolled.claim.id, "CODE", now, programme)
    return enrolled.member.pairwise_id, kept


async def _demo_member(
    conn: AsyncConnection,
    created: list[Partner],
    links: dict[str, list[str]],
    now: datetime,
    programme: claims.Programme,
) -> None:
    """The portal's demo member: enrolled at the pharmacy and the gym; the insurer asks to read purchases."""
    pharmacy, insurer, gym = created
    for p, external_id in ((pharmacy, "DEMO-PH-MEMBER"), (gym, "DEMO-GY-MEMBER"), (insurer, "DEMO-IN-MEMBER")):
        permissions = PROFILED if p is pharmacy else SHOPPER if p is gym else ["member:read"]
        pairwise_id, member_id = await _enrol_confirmed(
            conn,
            p,
            members.Enrolment(
                external_id=external_id,
                phone=DEMO_MEMBER_PHONE,
                name="演示会员",
                birthday=date(1985, now.month, 1),
                permissions=permissions,
                evidence=Evidence(policy_version="2026-01", channel="POS", actor=f"partner:{p.public_id}"),
                consent_expires_at=now + timedelta(days=365) if p is pharmacy else None,
            ),
            now,
            programme,
        )
        links.setdefault(p.public_id, []).append(pairwise_id)
    await consent_requests.request(
        conn,
        partner_id=insurer.id,
        member_id=member_id,
        permissions=frozenset({"purchases:read"}),
        purposes=["Premium discount for regular health checks"],
        expires_at=now + timedelta(days=365),
        now=now,
        actor=f"partner:{insurer.public_id}",
    )


async def _points_activity(
    conn: AsyncConnection,
    created: list[Partner],
    links: dict[str, list[str]],
    rng: random.Random,
    now: datetime,
    policy: PointsPolicy,
    programme: Programme,
) -> None:
    """Members shop at the pharmacy (points, growth, tiers) over a year and a half, each as BG/NBD tells it: at their
    own pace until, after some visit, they stop coming (so the retention model has cohorts, regulars and the
    lapsed to find); gym members spend some points at the gym (a settlement line). The demo member shops every few
    weeks, and a device takes them to 金卡, so their tier, its reasons and its priority purchase can be tried."""
    pharmacy, insurer, gym = created
    for p, kinds in ((insurer, ["HEALTH_CHECK", "VACCINATION"]), (gym, ["GYM_VISIT", "WORKOUT"])):
        await partners.set_terms(conn, partner_public_id=p.public_id, activity_kinds=kinds, now=now)
    categories = ("otc", "vitamins", "devices", "personal care")
    for n, pairwise_id in enumerate(links.get(pharmacy.public_id, [])):
        if n == 0:
            visits = [(days, "168.00", "vitamins") for days in range(360, 9, -24)] + [(12, "10000.00", "devices")]
        else:
            visits = [(days, f"{rng.randint(2000, 60000) / 100:.2f}", rng.choice(categories)) for days in _visits(rng)]
        for b, (days_ago, amount, category) in enumerate(visits):
            await purchases.record(
                conn,
                pharmacy.id,
                purchases.RecordPurchase(
                    member_id=pairwise_id,
                    reference=f"DEMO-{n}-{b}",
                    occurred_at=now - timedelta(days=days_ago, minutes=rng.randint(0, 600)),
                    store_id="DEMO-STORE-1",
                    lines=(purchases.LineInput(f"SKU-{rng.randint(1000, 9999)}", category, amount),),
                    idempotency_key=f"demo-purchase-{n}-{b}",
                ),
                now=now,
                programme=programme,
                policy=policy,
            )
    for n, pairwise_id in enumerate(links.get(gym.public_id, [])):
        if rng.random() < 0.5:
            redeem = ledger.Redeem(pairwise_id, rng.randint(10, 100), f"GYM-{n}", f"demo-redeem-{n}")
            try:
                async with conn.begin_nested():
                    await ledger.redeem(conn, gym.id, redeem, now)
            except DomainError:
                continue  # a gym member who never shopped at the pharmacy has no points


def _visits(rng: random.Random) -> list[int]:
    """Days ago of one member's visits: the first within HISTORY_DAYS, then visits at the member's own rate (a
    month apart on average, some far more often) until they leave for good after a visit (1 in 5 on average)."""
    rate = rng.gammavariate(1.5, 1 / 45)  # visits a day
    leave = rng.betavariate(1.0, 4.0)
    first = rng.randint(2, HISTORY_DAYS)
    days, t = [first], float(first)
    while len(days) < 12:
        t -= rng.expovariate(rate)
        if t < 1:
            break
        days.append(int(t))
        if rng.random() < leave:
            break
    return days


async def score(db: Database, now: datetime, zone: ZoneInfo) -> None:
    """The demo's first retention scores (the worker rescores daily after). Their `member.at_risk` events wait in
    the outbox: a webhook endpoint the pharmacy registers before the worker first runs receives them."""
    from hub.retention import service as retention

    await retention.rescore_due(db, now, timedelta(hours=24), zone)


def save_credentials(path: Path, clients: list[DemoClient]) -> None:
    """Keep the demo secrets (demo only!) so `make run` can show them again; the hub itself stores hashes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump([asdict(c) for c in clients], handle, indent=2, ensure_ascii=False)


def load_credentials(path: Path) -> list[DemoClient]:
    if not path.exists():
        return []
    return [DemoClient(**c) for c in json.loads(path.read_text())]
