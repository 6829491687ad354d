"""The member portal over HTTP: sign-in and its limits, CSRF, consent requests, the access log, export, erasure."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from hub.clock import FrozenClock
from hub.consent.models import access_log, consent, consent_event
from hub.consent.service import expire_due
from hub.events.models import event
from hub.members.models import member as member_table
from hub.state import Hub
from tests.conftest import ENROLL, SmsGateway, enrolment, new_phone
from tests.portal_helpers import browser, csrf_of, enrolled_member

MEMBER = "query($id: ID!) { member(id: $id) { id name consents { id status permissions purposes expiresAt } } }"
REQUEST = """
mutation($input: RequestConsentInput!) {
  requestConsent(input: $input) { consentRequest { id status permissions } errors { field code message } }
}
"""


async def test_sign_in_with_a_one_time_code(app: Any, make_partner: Any, sms_gateway: SmsGateway) -> None:
    phone, _ = await enrolled_member(await make_partner())
    member = browser(app, phone)
    assert (await member.http.get("/portal")).headers["location"].startswith("/portal/login")
    await member.sign_in(sms_gateway)
    home = await member.http.get("/portal")
    assert home.status_code == 200 and "积分" in home.text
    english = await member.http.get("/portal?lang=en")
    assert "Points" in english.text and member.http.cookies["hub_lang"] == "en"


async def test_unknown_phone_gets_the_same_answer_and_no_sms(app: Any, sms_gateway: SmsGateway) -> None:
    stranger = browser(app, new_phone())
    sent = len(sms_gateway.messages)
    response = await stranger.request_code()
    assert response.status_code == 200 and 'name="code"' in response.text
    assert len(sms_gateway.messages) == sent


async def _try_code(member: Any, code: str) -> httpx.Response:
    page = await member.http.get("/portal/login")
    return await member.http.post(
        "/portal/login", data={"csrf_token": csrf_of(page.text), "phone": member.phone, "code": code, "next": "/portal"}
    )


async def test_guessing_locks_the_code_and_expired_codes_fail(
    app: Any, make_partner: Any, sms_gateway: SmsGateway, clock: FrozenClock
) -> None:
    phone, _ = await enrolled_member(await make_partner())
    member = browser(app, phone)
    await member.request_code()
    right = sms_gateway.last_code(phone)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(5):
        assert (await _try_code(member, wrong)).status_code == 400
    locked = await _try_code(member, right)
    assert locked.status_code == 400 and "hub_session" not in member.http.cookies

    await member.request_code()
    fresh = sms_gateway.last_code(phone)
    clock.advance(seconds=301)
    assert (await _try_code(member, fresh)).status_code == 400


async def test_codes_are_rate_limited_per_phone(app: Any, make_partner: Any) -> None:
    phone, _ = await enrolled_member(await make_partner())
    member = browser(app, phone)
    statuses = [(await member.request_code()).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]


async def test_portal_forms_need_the_csrf_token(app: Any, make_partner: Any, sms_gateway: SmsGateway) -> None:
    pharmacy = await make_partner()
    phone, _ = await enrolled_member(pharmacy)
    member = browser(app, phone)
    no_cookie = await member.http.post("/portal/login/code", data={"csrf_token": "x", "phone": phone})
    assert no_cookie.status_code == 403
    await member.sign_in(sms_gateway)
    page = await member.http.get("/portal/consents")
    consent_id = page.text.split('data-consent="')[1].split('"')[0]
    for token in ("", "forged"):
        forged = await member.http.post(f"/portal/consents/{consent_id}/revoke", data={"csrf_token": token})
        assert forged.status_code == 403
    assert "Authorised" in (await member.http.get("/portal/consents?lang=en")).text


async def test_another_members_consent_cannot_be_touched(
    app: Any, hub: Hub, make_partner: Any, sms_gateway: SmsGateway
) -> None:
    pharmacy = await make_partner()
    victim_phone, victim_id = await enrolled_member(pharmacy)
    attacker_phone, _ = await enrolled_member(pharmacy)
    async with hub.db.read() as conn:
        victim_consent = await conn.scalar(
            select(consent.c.public_id)
            .join(member_table, consent.c.member_id == member_table.c.id)
            .where(member_table.c.phone == victim_phone)
        )
    attacker = browser(app, attacker_phone)
    await attacker.sign_in(sms_gateway)
    response = await attacker.post(f"/portal/consents/{victim_consent}/revoke")
    assert response.status_code == 400
    assert (await pharmacy.gql(MEMBER, {"id": victim_id}))["data"]["member"]["name"] == "王芳"


async def test_consent_request_approved_in_the_portal(
    app: Any, hub: Hub, make_partner: Any, sms_gateway: SmsGateway
) -> None:
    insurer = await make_partner(kind="insurer")
    phone, member_id = await enrolled_member(insurer, ["member:read", "consent:read"])
    health = {"memberId": member_id, "permissions": ["purchases:read"], "purposes": ["Premium discount"]}
    refused = await insurer.gql(REQUEST, {"input": health})
    assert refused["data"]["requestConsent"]["errors"][0]["code"] == "EXPIRY_REQUIRED"
    unknown = await insurer.gql(REQUEST, {"input": {**health, "memberId": "mbr_nobody", "expiresAt": None}})
    assert unknown["data"]["requestConsent"]["errors"][0]["code"] == "MEMBER_NOT_FOUND"

    expires = (hub.clock.now() + timedelta(days=90)).isoformat()
    asked = await insurer.gql(REQUEST, {"input": {**health, "expiresAt": expires}})
    request = asked["data"]["requestConsent"]["consentRequest"]
    assert request["status"] == "AWAITING_AUTHORISATION" and request["id"].startswith("crq_")

    member = browser(app, phone)
    await member.sign_in(sms_gateway)
    page = await member.http.get("/portal/consents")
    assert request["id"] in page.text and "Premium discount" in page.text
    approved = await member.post(f"/portal/requests/{request['id']}", {"decision": "approve"})
    assert approved.status_code == 303
    again = await member.post(f"/portal/requests/{request['id']}", {"decision": "reject"})
    assert again.status_code == 400

    seen = await insurer.gql(MEMBER, {"id": member_id})
    [granted] = seen["data"]["member"]["consents"]
    assert granted["status"] == "AUTHORISED"
    assert granted["permissions"] == ["consent:read", "member:read", "purchases:read"]
    assert granted["purposes"] == ["Premium discount"] and granted["expiresAt"] is not None
    async with hub.db.read() as conn:
        kinds = (await conn.scalars(select(consent_event.c.kind).order_by(consent_event.c.id))).all()
    assert "requested" in kinds and "widened" in kinds


async def test_expired_consent_hides_the_member_and_is_written_down(
    app: Any, hub: Hub, make_partner: Any, sms_gateway: SmsGateway, clock: FrozenClock
) -> None:
    insurer = await make_partner(kind="insurer")
    phone, member_id = await enrolled_member(insurer, ["member:read"])
    expires = (clock.now() + timedelta(days=1)).isoformat()
    asked = await insurer.gql(
        REQUEST,
        {"input": {"memberId": member_id, "permissions": ["purchases:read"], "purposes": ["x"], "expiresAt": expires}},
    )
    member = browser(app, phone)
    await member.sign_in(sms_gateway)
    await member.post(
        f"/portal/requests/{asked['data']['requestConsent']['consentRequest']['id']}", {"decision": "approve"}
    )
    assert (await insurer.gql(MEMBER, {"id": member_id}))["data"]["member"] is not None
    clock.advance(days=2)
    assert (await insurer.gql(MEMBER, {"id": member_id}))["data"]["member"] is None
    async with hub.db.write() as conn:
        assert await expire_due(conn, clock.now()) >= 1
    async with hub.db.read() as conn:
        assert "expired" in (await conn.scalars(select(consent_event.c.kind))).all()


async def test_access_log_shows_who_read_what(app: Any, hub: Hub, make_partner: Any, sms_gateway: SmsGateway) -> None:
    pharmacy = await make_partner()
    phone, member_id = await enrolled_member(pharmacy)
    await pharmacy.gql("query($id: ID!) { member(id: $id) { name points { available } } }", {"id": member_id})
    await pharmacy.gql("query($id: ID!) { member(id: $id) { id externalId } }", {"id": member_id})  # no member data
    async with hub.db.read() as conn:
        rows = (await conn.execute(select(access_log.c.categories))).all()
    member = browser(app, phone)
    await member.sign_in(sms_gateway)
    page = await member.http.get("/portal/access-log?lang=en")
    assert page.status_code == 200
    assert "Read member profiles" in page.text and "Read points balances" in page.text
    # The header, the enrolment payload's name and birthday, and the first query; the second read no member data.
    assert page.text.count("<tr>") == 3
    assert any(r.categories == "member:read points:read" for r in rows)


async def test_export_is_the_members_own_data(app: Any, make_partner: Any, sms_gateway: SmsGateway) -> None:
    pharmacy = await make_partner()
    phone, member_id = await enrolled_member(pharmacy)
    other_phone, _ = await enrolled_member(pharmacy)
    await pharmacy.gql("query($id: ID!) { member(id: $id) { name } }", {"id": member_id})
    member = browser(app, phone)
    await member.sign_in(sms_gateway)
    response = await member.post("/portal/export")
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment")
    document = json.loads(response.text)
    assert document["profile"]["phone"] == phone
    assert document["consents"][0]["status"] == "AUTHORISED"
    assert document["accessLog"][0]["categories"] == ["member:read"]
    assert other_phone not in response.text and member_id not in response.text  # no pairwise ids either


async def test_erasure(app: Any, hub: Hub, make_partner: Any, sms_gateway: SmsGateway) -> None:
    pharmacy = await make_partner()
    phone, member_id = await enrolled_member(pharmacy)
    member = browser(app, phone)
    await member.sign_in(sms_gateway)
    unconfirmed = await member.post("/portal/erase")
    assert unconfirmed.status_code == 400
    erased = await member.post("/portal/erase", {"confirm": "yes"})
    assert erased.status_code == 200 and "hub_session" not in member.http.cookies

    assert (await pharmacy.gql(MEMBER, {"id": member_id}))["data"]["member"] is None
    sent = len(sms_gateway.messages)
    await member.request_code()
    assert len(sms_gateway.messages) == sent  # the phone is gone: no code, no sign-in
    async with hub.db.read() as conn:
        erasures = (await conn.execute(select(event.c.payload).where(event.c.type == "member.erased"))).all()
    assert {"memberId": member_id} in [row.payload for row in erasures]


async def test_sign_in_never_redirects_off_the_hub(app: Any, make_partner: Any, sms_gateway: SmsGateway) -> None:
    phone, _ = await enrolled_member(await make_partner())
    member = browser(app, phone)
    sent = await member.request_code()
    response = await member.http.post(
        "/portal/login",
        data={
            "csrf_token": csrf_of(sent.text),
            "phone": phone,
            "code": sms_gateway.last_code(phone),
            "next": "//evil.example/steal",
        },
    )
    assert response.headers["location"] == "/portal"


async def test_health_permissions_need_an_expiry_at_enrolment_too(make_partner: Any) -> None:
    pharmacy = await make_partner()
    variables = enrolment("ext-health", new_phone())
    variables["input"]["consent"]["permissions"] = ["member:read", "purchases:read"]
    refused = await pharmacy.gql(ENROLL, variables)
    assert refused["data"]["enrollMember"]["errors"][0]["code"] == "EXPIRY_REQUIRED"
    variables["input"]["consent"]["expiresAt"] = "2099-01-01T00:00:00+00:00"
    assert (await pharmacy.gql(ENROLL, variables))["data"]["enrollMember"]["errors"] == []


async def test_a_failing_sms_gateway_is_reported_not_crashed(app: Any, hub: Hub, make_partner: Any) -> None:
    from hub.members.sms import HttpSender

    phone, _ = await enrolled_member(await make_partner())
    working = hub.sms
    hub.sms = HttpSender("http://127.0.0.1:9/nothing-listens-here", timeout=1)
    try:
        response = await browser(app, phone).request_code()
    finally:
        hub.sms = working
    assert response.status_code == 503 and 'name="code"' not in response.text


async def test_notices_are_only_the_hubs_own(app: Any, make_partner: Any, sms_gateway: SmsGateway) -> None:
    phone, _ = await enrolled_member(await make_partner())
    member = browser(app, phone)
    await member.sign_in(sms_gateway)
    page = await member.http.get("/portal?notice=Call+0800+now&lang=en")
    assert "Call 0800" not in page.text
    saved = await member.http.get("/portal?notice=saved&lang=en")
    assert "Saved." in saved.text


async def test_a_partner_ends_its_own_consent(app: Any, hub: Hub, make_partner: Any, sms_gateway: SmsGateway) -> None:
    pharmacy = await make_partner()
    phone, member_id = await enrolled_member(pharmacy)
    revoke = """
    mutation($input: RevokeConsentInput!) {
      revokeConsent(input: $input) { consent { id status version } errors { field code } }
    }"""
    done = (await pharmacy.gql(revoke, {"input": {"memberId": member_id, "reason": "asked at the till"}}))["data"]
    assert done["revokeConsent"]["errors"] == [] and done["revokeConsent"]["consent"]["status"] == "REVOKED"
    assert (await pharmacy.gql(MEMBER, {"id": member_id}))["data"]["member"] is None
    again = await pharmacy.gql(revoke, {"input": {"memberId": member_id}})
    assert again["data"]["revokeConsent"]["errors"][0]["code"] == "CONSENT_NOT_ACTIVE"
    unknown = await pharmacy.gql(revoke, {"input": {"memberId": "mbr_nobody"}})
    assert unknown["data"]["revokeConsent"]["errors"][0]["code"] == "MEMBER_NOT_FOUND"
    async with hub.db.read() as conn:
        logged = (
            await conn.execute(
                select(consent_event.c.kind, consent_event.c.actor, consent_event.c.evidence)
                .join(consent, consent.c.id == consent_event.c.consent_id)
                .where(consent.c.public_id == done["revokeConsent"]["consent"]["id"])
                .order_by(consent_event.c.id)
            )
        ).all()
    assert logged[-1].kind == "revoked_by_partner" and logged[-1].actor == f"partner:{pharmacy.partner_id}"
    assert logged[-1].evidence == {"reason": "asked at the till"}
    member = browser(app, phone)
    await member.sign_in(sms_gateway)
    assert "Revoked" in (await member.http.get("/portal/consents?lang=en")).text
