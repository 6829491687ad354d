"""Issue 10, written as the attacks: a phone number opens nothing, a revocation stays revoked, and no request can
crash or stall the hub. Each test runs on SQLite and on PostgreSQL (the suite's database)."""

from __future__ import annotations

import json
import secrets
import time
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from hub.consent.models import consent
from hub.members.models import member, member_claim, member_link, member_merge
from hub.points.verify import verify
from hub.state import Hub
from tests.conftest import CONFIRM, ENROLL, PartnerClient, SmsGateway, enrolment, new_phone
from tests.points_helpers import EARN, POINTS, call, key
from tests.portal_helpers import browser, csrf_of

PROFILE = """query($id: ID!) { member(id: $id) { id externalId name birthday
  points { available pending } tier { level name } } }"""
SHOPPER = ["member:read", "points:read", "points:earn", "points:redeem"]


def pos(permissions: list[str] = SHOPPER) -> dict[str, Any]:
    return {"permissions": permissions, "policyVersion": "2026-01", "channel": "POS"}


async def enrol(partner: PartnerClient, phone: str, **overrides: Any) -> dict[str, Any]:
    overrides.setdefault("consent", pos())
    result = await partner.gql(ENROLL, enrolment("E-" + secrets.token_hex(5), phone, **overrides))
    assert "errors" not in result, result
    payload: dict[str, Any] = result["data"]["enrollMember"]
    assert payload["errors"] == [], payload
    return payload


async def rows(hub: Hub, query: Any) -> list[Any]:
    async with hub.db.read() as conn:
        return list((await conn.execute(query)).all())


def _shape(payload: dict[str, Any]) -> dict[str, Any]:
    """An enrolment answer without what differs between any two enrolments (ids, times)."""
    member_part = {k: v for k, v in payload["member"].items() if k not in ("id", "externalId", "memberSince")}
    return {"linkedExisting": payload["linkedExisting"], "errors": payload["errors"], "member": member_part}


# -- 1. a phone number opens nothing ---------------------------------------------------------------------------------
async def test_enrolling_a_known_phone_reveals_nothing_of_its_member(make_partner: Any, hub: Hub) -> None:
    a: PartnerClient = await make_partner()
    b: PartnerClient = await make_partner()
    victim = new_phone()
    at_a = await enrol(a, victim, name="王芳", birthday="1980-05-17")
    earned = await call(a, EARN, memberId=at_a["member"]["id"], points=500)
    assert earned["errors"] == []

    # B types in the victim's phone with a self-asserted POS consent, and a phone nobody has.
    known = await enrol(b, victim, name=None, birthday=None)
    unknown = await enrol(b, new_phone(), name=None, birthday=None)
    assert _shape(known) == _shape(unknown)
    assert known["linkedExisting"] is False and known["member"]["name"] is None

    seen = (await b.gql(PROFILE, {"id": known["member"]["id"]}))["data"]["member"]
    fresh = (await b.gql(PROFILE, {"id": unknown["member"]["id"]}))["data"]["member"]
    assert seen["name"] is None and seen["birthday"] is None  # not A's 王芳
    assert seen["points"] == fresh["points"] == {"available": 0, "pending": 0}  # not A's 500
    assert seen["tier"] == fresh["tier"]
    # A's own member is untouched and B is not linked to it.
    [owner] = await rows(hub, select(member.c.id, member.c.status).where(member.c.phone == victim))
    assert owner.status == "active"
    links = await rows(hub, select(member_link.c.partner_id).where(member_link.c.member_id == owner.id))
    assert [link.partner_id for link in links] == [a.partner_pk]


async def test_a_revoked_partner_cannot_reenrol_its_way_back(app: Any, make_partner: Any, hub: Hub) -> None:
    b: PartnerClient = await make_partner()
    phone = new_phone()
    first = await enrol(b, phone)
    member_browser = browser(app, phone)
    await member_browser.sign_in(b.sms)
    page = await member_browser.http.get("/portal/consents")
    consent_id = page.text.split('data-consent="')[1].split('"')[0]
    revoked = await member_browser.http.post(
        f"/portal/consents/{consent_id}/revoke", data={"csrf_token": csrf_of(page.text)}
    )
    assert revoked.status_code == 303

    again = await enrol(b, phone, consent=pos([*SHOPPER, "consent:read"]))  # a self-asserted, wider consent
    assert again["errors"] == [] and again["linkedExisting"] is False  # it answers like any enrolment...
    [kept] = await rows(hub, select(consent.c.status).where(consent.c.public_id == consent_id))
    assert kept.status == "REVOKED"  # ...and the revocation stays in force
    assert (await b.gql(PROFILE, {"id": first["member"]["id"]}))["data"]["member"] is None


async def test_confirming_with_the_members_code_merges_everything(make_partner: Any, hub: Hub) -> None:
    pharmacy: PartnerClient = await make_partner()
    gym: PartnerClient = await make_partner(kind="gym")
    phone = new_phone()
    at_pharmacy = (await enrol(pharmacy, phone))["member"]["id"]
    assert (await call(pharmacy, EARN, memberId=at_pharmacy, points=500))["errors"] == []
    provisional = (await enrol(gym, phone, name="别人"))["member"]["id"]
    assert (await call(gym, EARN, memberId=provisional, points=40))["errors"] == []

    wrong = (await gym.gql(CONFIRM, {"input": {"memberId": provisional, "code": "000000"}}))["data"]
    if gym.sms.last_code(phone) == "000000":  # one chance in a million
        return
    assert wrong["confirmEnrollment"]["errors"][0]["code"] == "INVALID_CODE"
    merged = await gym.confirm(provisional, phone)
    assert merged["linkedExisting"] is True
    assert merged["member"]["id"] == provisional  # the gym's id for the member stays the same
    assert merged["member"]["name"] == "王芳"  # the member's own profile, not what the gym typed
    points = (await gym.gql(POINTS, {"id": provisional}))["data"]["member"]["points"]
    assert points["available"] + points["pending"] == 540  # the pharmacy's 500 and the gym's 40
    for_pharmacy = (await pharmacy.gql(POINTS, {"id": at_pharmacy}))["data"]["member"]["points"]
    assert for_pharmacy["available"] + for_pharmacy["pending"] == 540

    [record] = await rows(hub, select(member_merge).where(member_merge.c.partner_id == gym.partner_pk))
    assert record.evidence["method"] == "sms_code" and record.evidence["points"] == 40
    [source] = await rows(
        hub, select(member.c.status, member.c.merged_into).where(member.c.id == record.merged_member_id)
    )
    assert (source.status, source.merged_into) == ("merged", record.member_id)
    again = (await gym.gql(CONFIRM, {"input": {"memberId": provisional, "code": gym.sms.last_code(phone)}}))["data"]
    assert again["confirmEnrollment"]["errors"][0]["code"] == "MEMBER_NOT_FOUND"  # settled once
    async with hub.db.read() as conn:
        assert await verify(conn) == []


async def test_a_code_dies_after_five_wrong_guesses(make_partner: Any) -> None:
    a: PartnerClient = await make_partner()
    b: PartnerClient = await make_partner()
    phone = new_phone()
    await enrol(a, phone)
    provisional = (await enrol(b, phone))["member"]["id"]
    right = b.sms.last_code(phone)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(5):
        answer = (await b.gql(CONFIRM, {"input": {"memberId": provisional, "code": wrong}}))["data"]
        assert answer["confirmEnrollment"]["errors"][0]["code"] == "INVALID_CODE"
    late = (await b.gql(CONFIRM, {"input": {"memberId": provisional, "code": right}}))["data"]
    assert late["confirmEnrollment"]["errors"][0]["code"] == "INVALID_CODE"


async def test_the_member_links_or_refuses_in_the_portal(app: Any, make_partner: Any, hub: Hub) -> None:
    pharmacy: PartnerClient = await make_partner()
    gym: PartnerClient = await make_partner(kind="gym")
    insurer: PartnerClient = await make_partner(kind="insurer")
    phone = new_phone()
    at_pharmacy = (await enrol(pharmacy, phone))["member"]["id"]
    await call(pharmacy, EARN, memberId=at_pharmacy, points=300)
    at_gym = (await enrol(gym, phone))["member"]["id"]
    at_insurer = (await enrol(insurer, phone))["member"]["id"]

    member_browser = browser(app, phone)
    await member_browser.sign_in(pharmacy.sms)
    page = (await member_browser.http.get("/portal/consents?lang=en")).text
    shown = {part.split('"')[0] for part in page.split('data-claim="')[1:]}
    claimed = await rows(
        hub,
        select(member_claim.c.partner_id, member_claim.c.id).where(
            member_claim.c.phone == phone, member_claim.c.target_member_id.is_not(None)
        ),
    )
    by_partner = {row.partner_id: str(row.id) for row in claimed}
    gym_claim, insurer_claim = by_partner[gym.partner_pk], by_partner[insurer.partner_pk]
    assert shown == {gym_claim, insurer_claim}

    # Another member, signed in, cannot settle this member's claims.
    other_phone = new_phone()
    await enrol(pharmacy, other_phone)
    stranger = browser(app, other_phone)
    await stranger.sign_in(pharmacy.sms)
    assert (await stranger.post(f"/portal/claims/{gym_claim}", {"decision": "approve"})).status_code == 400

    csrf = csrf_of(page)
    linked = await member_browser.http.post(
        f"/portal/claims/{gym_claim}", data={"csrf_token": csrf, "decision": "approve"}
    )
    refused = await member_browser.http.post(
        f"/portal/claims/{insurer_claim}", data={"csrf_token": csrf, "decision": "reject"}
    )
    assert linked.status_code == refused.status_code == 303

    for_gym = (await gym.gql(POINTS, {"id": at_gym}))["data"]["member"]["points"]
    assert for_gym["available"] + for_gym["pending"] == 300
    for_insurer = (await insurer.gql(POINTS, {"id": at_insurer}))["data"]["member"]["points"]
    assert for_insurer["available"] + for_insurer["pending"] == 0  # refused: it stays a record of its own
    page = (await member_browser.http.get("/portal/consents?lang=en")).text
    assert 'data-claim="' not in page and 'class="merge"' in page and "approved in the portal" in page


async def test_a_member_merges_another_record_of_theirs(app: Any, make_partner: Any, hub: Hub) -> None:
    pharmacy: PartnerClient = await make_partner()
    gym: PartnerClient = await make_partner(kind="gym")
    main_phone, old_phone = new_phone(), new_phone()
    mine = (await enrol(pharmacy, main_phone))["member"]["id"]
    old = (await enrol(gym, old_phone))["member"]["id"]
    assert (await call(gym, EARN, memberId=old, points=70))["errors"] == []

    member_browser = browser(app, main_phone)
    await member_browser.sign_in(pharmacy.sms)
    csrf = await member_browser.page_csrf("/portal/consents")
    sent = await member_browser.http.post("/portal/merge/code", data={"csrf_token": csrf, "phone": old_phone})
    assert sent.status_code == 200
    bad = await member_browser.http.post("/portal/merge", data={"csrf_token": csrf, "phone": old_phone, "code": "x"})
    assert bad.status_code == 400
    code = gym.sms.last_code(old_phone)
    done = await member_browser.http.post("/portal/merge", data={"csrf_token": csrf, "phone": old_phone, "code": code})
    assert done.status_code == 303
    for_pharmacy = (await pharmacy.gql(POINTS, {"id": mine}))["data"]["member"]["points"]
    assert for_pharmacy["available"] + for_pharmacy["pending"] == 70
    for_gym = (await gym.gql(POINTS, {"id": old}))["data"]["member"]["points"]
    assert for_gym == for_pharmacy  # the gym's id now names the same member
    [kept] = await rows(hub, select(member.c.id).where(member.c.phone == main_phone))
    assert await rows(hub, select(member.c.id).where(member.c.phone == old_phone)) == []
    [record] = await rows(hub, select(member_merge).where(member_merge.c.member_id == kept.id))
    assert record.partner_id is None and record.evidence["method"] == "sms_code"


async def test_ten_wrong_codes_lock_a_phone_for_an_hour(app: Any, make_partner: Any, hub: Hub, clock: Any) -> None:
    pharmacy: PartnerClient = await make_partner()
    phone = new_phone()
    await enrol(pharmacy, phone)
    attacker = browser(app, phone)
    for _ in range(2):
        sent = await attacker.request_code()
        wrong = f"{(int(pharmacy.sms.last_code(phone)) + 1) % 1_000_000:06d}"
        for _ in range(5):
            tried = await attacker.http.post(
                "/portal/login",
                data={"csrf_token": csrf_of(sent.text), "phone": phone, "code": wrong, "next": "/portal"},
            )
            assert tried.status_code == 400
    locked = await attacker.request_code()
    assert locked.status_code == 429
    clock.set(clock.now() + timedelta(minutes=61))
    member_browser = browser(app, phone)
    await member_browser.sign_in(pharmacy.sms)
    home = (await member_browser.http.get("/portal?lang=en")).text
    assert 'data-testid="locked"' in home  # the member is told, once
    assert 'data-testid="locked"' not in (await member_browser.http.get("/portal?lang=en")).text


# -- 2. no crash from input -----------------------------------------------------------------------------------------
async def _post(http: httpx.AsyncClient, token: str, body: bytes | dict[str, Any]) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await http.post(
        "/graphql", content=content, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    )


def _code(response: httpx.Response) -> str:
    assert response.status_code < 500, response.text
    return str(response.json()["errors"][0]["extensions"]["code"])


async def test_hostile_bodies_get_a_status_and_a_code(http: httpx.AsyncClient, make_partner: Any) -> None:
    partner: PartnerClient = await make_partner()
    token = await partner.token()
    deep_json = b"[" * 1000 + b"]" * 1000
    assert len(deep_json) == 2000
    deep = await _post(http, token, deep_json)
    assert deep.status_code == 400 and _code(deep) == "BAD_REQUEST"
    nested = b'{"a":' * 1500 + b"{}" + b"}" * 1500
    deep_variables = await _post(http, token, b'{"query": "{ viewer { scopes } }", "variables": ' + nested + b"}")
    assert deep_variables.status_code == 400 and _code(deep_variables) == "BAD_REQUEST"
    surrogate = b'{"query": "query($r: String) { viewer { scopes } }", "variables": {"r": "\\ud800"}}'
    assert _code(await _post(http, token, surrogate)) == "INVALID_INPUT"


async def test_hostile_values_are_invalid_input_on_every_database(make_partner: Any) -> None:
    partner: PartnerClient = await make_partner()
    member_id = (await enrol(partner, new_phone()))["member"]["id"]
    nul = await partner.http.post(
        "/graphql",
        json={"query": ENROLL, "variables": enrolment("NUL\x00", new_phone(), consent=pos())},
        headers={"Authorization": f"Bearer {await partner.token()}"},
    )
    assert nul.status_code == 400 and _code(nul) == "INVALID_INPUT"
    literal = await partner.gql('{ memberByExternalId(externalId: "a\\u0000b") { id } }')
    assert literal["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    huge = await partner.http.post(
        "/graphql",
        json={
            "query": EARN,
            "variables": {
                "input": {"memberId": member_id, "points": 1, "reason": "x" * 100_000, "idempotencyKey": key()}
            },
        },
        headers={"Authorization": f"Bearer {await partner.token()}"},
    )
    assert huge.status_code == 400 and _code(huge) == "INVALID_INPUT"
    long_reason = await call(partner, EARN, memberId=member_id, points=1, reason="x" * 300)
    assert [(e["code"], e["field"]) for e in long_reason["errors"]] == [("INVALID_INPUT", "reason")]
    long_policy = await partner.gql(
        ENROLL, enrolment("P-" + secrets.token_hex(3), new_phone(), consent={**pos(), "policyVersion": "v" * 41})
    )
    assert long_policy["data"]["enrollMember"]["errors"][0]["code"] == "INVALID_INPUT"
    purchase = """mutation($input: RecordPurchaseInput!) { recordPurchase(input: $input) { errors { code } } }"""
    ancient = await partner.gql(
        purchase,
        {"input": {"memberId": member_id, "reference": "R-1", "occurredAt": "0001-01-01T00:00:00+14:00",
                   "lines": [{"sku": "A", "category": "otc", "amount": "1.00"}], "idempotencyKey": key()}},
    )  # fmt: skip
    assert ancient["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    unknown_fragment = await partner.gql("{ viewer { ...Nowhere } }")
    assert unknown_fragment["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_malformed_entity_representations_are_invalid_input(make_partner: Any) -> None:
    partner: PartnerClient = await make_partner()
    mine = (await enrol(partner, new_phone()))["member"]["id"]
    query = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Member { id } } }"
    reps = [
        {"__typename": "Member", "id": mine},
        "not an object",
        {"__typename": "Member"},
        {"__typename": "Other", "id": "x"},
        {"__typename": "Member", "id": 7},
    ]
    result = await partner.gql(query, {"r": reps})
    assert result["data"]["_entities"][0] == {"id": mine}
    assert result["data"]["_entities"][1:] == [None, None, None, None]
    assert sorted(e["path"][-1] for e in result["errors"]) == [1, 2, 3, 4]
    assert {e["extensions"]["code"] for e in result["errors"]} == {"INVALID_INPUT"}
    too_many = await partner.gql(query, {"r": [{"__typename": "Member", "id": mine}] * 101})
    assert too_many["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    hundred = await partner.gql(query, {"r": [{"__typename": "Member", "id": f"mbr_{i}"} for i in range(100)]})
    assert "errors" not in hundred and hundred["data"]["_entities"] == [None] * 100


async def test_get_and_anonymous_requests_answer_in_json(http: httpx.AsyncClient) -> None:
    get = await http.get("/graphql", params={"query": "{ viewer { scopes } }"})
    assert get.status_code == 405 and get.headers["allow"] == "POST" and _code(get) == "METHOD_NOT_ALLOWED"
    anonymous = await http.post("/graphql", json={"query": "{ viewer { scopes } }"})
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == 'Bearer realm="hub"'
    assert _code(anonymous) == "UNAUTHENTICATED"
    introspection = await http.post("/graphql", json={"query": "{ __schema { queryType { name } } }"})
    assert introspection.status_code == 401  # production: nothing without a token


# -- 3. no stall ----------------------------------------------------------------------------------------------------
def doubling_bomb(levels: int = 20) -> str:
    """Each fragment spreads the previous one twice: 2^20 paths through the fragments in under 800 bytes."""
    parts = ["query Bomb { viewer { ...F20 } }", "fragment F0 on Viewer { scopes }"]
    parts += [f"fragment F{i} on Viewer {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels + 1)]
    return " ".join(parts)


async def test_a_fragment_bomb_is_refused_fast_with_a_cost_error(make_partner: Any) -> None:
    partner: PartnerClient = await make_partner()
    token = await partner.token()
    for attempt in range(3):  # a fresh document each time: the document cache is no help to the server
        document = doubling_bomb(20) + f" # {attempt} {secrets.token_hex(4)}"
        assert len(document) < 900
        started = time.perf_counter()
        response = await partner.http.post(
            "/graphql", json={"query": document}, headers={"Authorization": f"Bearer {token}"}
        )
        elapsed = time.perf_counter() - started
        assert response.status_code == 200
        assert response.json()["errors"][0]["extensions"]["code"] in (
            "QUERY_COST_EXCEEDED",
            "GRAPHQL_VALIDATION_FAILED",
        )
        assert elapsed < 0.1, elapsed


async def test_cost_is_reported_and_bounded(make_partner: Any) -> None:
    partner: PartnerClient = await make_partner()
    cheap = await partner.gql("query($n: Int) { members(first: $n) { edges { node { id } } } }", {"n": 10})
    # members: 1 + 10 × (edges: 1 + (node: 1 + (id: 1)))
    assert cheap["extensions"]["cost"] == {"requested": 31, "maximum": 10_000}
    costly = (
        "{ "
        + " ".join(
            f"m{i}: members(first: 100) {{ edges {{ node {{ id name pointsHistory(first: 100) {{ edges {{ node {{ id }} }} }} }} }} }}"  # noqa: E501
            for i in range(2)
        )
        + " }"
    )
    refused = await partner.gql(costly)
    assert refused["data"] is None and refused["errors"][0]["extensions"]["code"] == "QUERY_COST_EXCEEDED"
    assert refused["errors"][0]["extensions"]["maximum"] == 10_000


async def test_member_count_does_not_stall_members_page(make_partner: Any) -> None:
    partner: PartnerClient = await make_partner()
    result = await partner.gql("{ members(first: 100) { edges { node { id } } } }")
    assert "errors" not in result


# -- 4. safe defaults -----------------------------------------------------------------------------------------------
def test_defaults_are_production(monkeypatch: Any) -> None:
    from hub.config import Settings

    monkeypatch.delenv("HUB_ENV", raising=False)
    assert Settings().env == "production" and Settings.from_env().env == "production"
    assert not Settings.from_env().development
    assert Settings.from_env().trusted_proxies == ""


async def test_rate_limits_answer_429_with_retry_after(make_partner: Any, hub: Hub) -> None:
    from hub.partners import service as partners

    partner: PartnerClient = await make_partner()
    async with hub.db.write() as conn:
        await partners.set_client_limits(conn, client_id=partner.client_id, requests_per_minute=3, cost_per_minute=None)
    token = await partner.token()  # a fresh token: its state (and the limits) are read anew
    statuses = []
    for _ in range(4):
        response = await partner.http.post(
            "/graphql", json={"query": "{ viewer { scopes } }"}, headers={"Authorization": f"Bearer {token}"}
        )
        statuses.append(response.status_code)
    assert statuses == [200, 200, 200, 429]
    assert int(response.headers["retry-after"]) >= 1 and _code(response) == "RATE_LIMITED"

    costly: PartnerClient = await make_partner()
    async with hub.db.write() as conn:
        await partners.set_client_limits(conn, client_id=costly.client_id, requests_per_minute=None, cost_per_minute=40)
    token = await costly.token()
    query = "{ members(first: 10) { edges { node { id } } } }"  # cost 31
    first = await costly.http.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"})
    second = await costly.http.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"})
    assert first.status_code == 200 and second.status_code == 429 and _code(second) == "RATE_LIMITED"
    assert "retry-after" in second.headers


async def test_sms_bodies_never_carry_another_partners_data(make_partner: Any, sms_gateway: SmsGateway) -> None:
    a: PartnerClient = await make_partner()
    b: PartnerClient = await make_partner()
    phone = new_phone()
    await enrol(a, phone, name="王芳")
    await enrol(b, phone, name=None)
    [message] = [m for m in sms_gateway.messages if m["to"] == phone][-1:]
    assert "王芳" not in message["text"]
