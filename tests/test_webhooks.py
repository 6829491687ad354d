"""Webhooks as partners use them: endpoints through GraphQL, real receivers on 127.0.0.1, every payload verified with
the `standardwebhooks` library. On SQLite and on PostgreSQL (the suite's database)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import time
from dataclasses import replace
from datetime import timedelta
from ipaddress import ip_address
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select

from hub.app import create_app
from hub.consent.models import access_log
from hub.events.models import event
from hub.members.models import member_link
from hub.state import Hub
from hub.webhooks import catalogue, delivery, transport
from hub.webhooks.models import webhook_delivery, webhook_endpoint
from hub.webhooks.service import check_url
from tests.conftest import ENROLL, ISSUER, ROOT, PartnerClient, enrolment, new_phone
from tests.points_helpers import EARN, call
from tests.portal_helpers import browser, csrf_of
from tests.webhook_helpers import ENDPOINTS, Receiver, deliver, endpoint

SHOPPER = ["member:read", "points:read", "points:earn", "points:redeem"]
EVENTS = int(os.environ.get("HUB_WEBHOOK_TEST_EVENTS", "10000"))


@pytest.fixture
def receiver() -> Any:
    r = Receiver()
    yield r
    r.close()


async def enrol(partner: PartnerClient, phone: str, permissions: list[str] = SHOPPER) -> str:
    consent = {"permissions": permissions, "policyVersion": "2026-01", "channel": "POS"}
    enrolled = await partner.gql(ENROLL, enrolment("W-" + secrets.token_hex(5), phone, consent=consent))
    member_id = enrolled["data"]["enrollMember"]["member"]["id"]
    return str((await partner.confirm(member_id, phone))["member"]["id"])


async def log_of(partner: PartnerClient, status: str | None = None) -> list[dict[str, Any]]:
    result = await partner.gql(ENDPOINTS, {"first": 100, "status": status})
    return [e["node"] for e in result["data"]["webhookEndpoints"][0]["deliveries"]["edges"]]


def _no_internal_ids(body: dict[str, Any], pairwise_id: str) -> None:
    """Only the catalogue's fields, the member by the partner's own pairwise id."""
    data = body["data"]
    assert data["memberId"] == pairwise_id
    assert set(data) <= {"memberId", *catalogue.CATALOGUE[body["type"]].fields}


async def test_a_partner_registers_tests_and_receives_signed_events(
    make_partner: Any, hub: Hub, receiver: Receiver
) -> None:
    pharmacy: PartnerClient = await make_partner()
    endpoint_id, secret = await endpoint(pharmacy, receiver.url, ["points.earned", "webhook.test"])
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", secret)
    test = await pharmacy.gql(
        "mutation($i: SendTestWebhookInput!) { sendTestWebhook(input: $i) { eventId errors { code } } }",
        {"i": {"endpointId": endpoint_id}},
    )
    assert test["data"]["sendTestWebhook"]["errors"] == []
    member_id = await enrol(pharmacy, new_phone())
    assert (await call(pharmacy, EARN, memberId=member_id, points=120))["errors"] == []
    await deliver(hub)

    [hello] = receiver.of_type("webhook.test")
    assert hello.verify(secret)["data"]["endpointId"] == endpoint_id
    assert hello.headers["webhook-id"] == test["data"]["sendTestWebhook"]["eventId"]
    [earned] = receiver.of_type("points.earned")
    body = earned.verify(secret)
    assert body["data"]["points"] == 120 and body["data"]["transactionId"].startswith("txn_")
    _no_internal_ids(body, member_id)
    assert abs(int(earned.headers["webhook-timestamp"]) - time.time()) < 60
    log = await log_of(pharmacy)
    assert {(d["eventType"], d["status"], d["responseStatus"]) for d in log} >= {
        ("points.earned", "SUCCEEDED", 200),
        ("webhook.test", "SUCCEEDED", 200),
    }
    # The delivery carried member data: it is in the member's access log, as a read would be.
    async with hub.db.read() as conn:
        vias = (
            await conn.scalars(select(access_log.c.via).where(access_log.c.partner_id == pharmacy.partner_pk))
        ).all()
    assert "webhook:points.earned" in vias


async def test_the_consent_decides_who_hears_what(make_partner: Any, hub: Hub, receiver: Receiver) -> None:
    pharmacy: PartnerClient = await make_partner()
    gym: PartnerClient = await make_partner(kind="gym")
    phone = new_phone()
    at_pharmacy = await enrol(pharmacy, phone)
    at_gym = await enrol(gym, phone, permissions=["member:read", "points:earn"])  # no points:read
    _, pharmacy_secret = await endpoint(pharmacy, receiver.url, ["points.earned"])
    other = Receiver()
    try:
        await endpoint(gym, other.url, ["points.earned"])
        assert (await call(pharmacy, EARN, memberId=at_pharmacy, points=10))["errors"] == []
        assert (await call(gym, EARN, memberId=at_gym, points=20))["errors"] == []
        await deliver(hub)
        assert [r.verify(pharmacy_secret)["data"]["points"] for r in receiver.of_type("points.earned")] == [10]
        assert other.of_type("points.earned") == []  # the gym may not read points: it hears of none
    finally:
        other.close()


async def test_a_revoked_partner_hears_of_the_revocation_and_nothing_after(
    app: Any, make_partner: Any, hub: Hub, receiver: Receiver
) -> None:
    pharmacy: PartnerClient = await make_partner()
    phone = new_phone()
    member_id = await enrol(pharmacy, phone)
    _, secret = await endpoint(pharmacy, receiver.url, ["points.earned"])  # not subscribed to consent.*
    assert (await call(pharmacy, EARN, memberId=member_id, points=5))["errors"] == []
    while await delivery.fan_out(hub.db, hub.webhook_key, hub.clock.now()):
        pass  # the earn's delivery is queued, not sent yet

    member = browser(app, phone)
    await member.sign_in(pharmacy.sms)
    page = await member.http.get("/portal/consents")
    consent_id = page.text.split('data-consent="')[1].split('"')[0]
    revoked = await member.http.post(f"/portal/consents/{consent_id}/revoke", data={"csrf_token": csrf_of(page.text)})
    assert revoked.status_code == 303
    await deliver(hub)

    [notice] = receiver.of_type("consent.revoked")
    assert notice.verify(secret)["data"] == {"memberId": member_id, "consentId": consent_id, "by": "member"}
    assert receiver.of_type("points.earned") == []  # queued before, but the consent had ended when it was due
    statuses = {d["eventType"]: d["status"] for d in await log_of(pharmacy)}
    assert statuses["points.earned"] == "CANCELLED"


async def test_erasure_reaches_every_partner_that_held_the_member(
    app: Any, make_partner: Any, hub: Hub, receiver: Receiver
) -> None:
    pharmacy: PartnerClient = await make_partner()
    gym: PartnerClient = await make_partner(kind="gym")
    phone = new_phone()
    at_pharmacy = await enrol(pharmacy, phone)
    at_gym = await enrol(gym, phone, permissions=["member:read"])
    _, pharmacy_secret = await endpoint(pharmacy, receiver.url, ["points.earned"])
    other = Receiver()
    try:
        _, gym_secret = await endpoint(gym, other.url, ["webhook.test"])  # subscribed to neither
        member = browser(app, phone)
        await member.sign_in(pharmacy.sms)
        erased = await member.post("/portal/erase", {"confirm": "yes"})
        assert erased.status_code in (200, 303)
        await deliver(hub)
        [to_pharmacy] = receiver.of_type("member.erased")
        [to_gym] = other.of_type("member.erased")
        assert to_pharmacy.verify(pharmacy_secret)["data"] == {"memberId": at_pharmacy}
        assert to_gym.verify(gym_secret)["data"] == {"memberId": at_gym}
        # One event, two partners: two webhook-ids that cannot be matched.
        assert to_pharmacy.headers["webhook-id"] != to_gym.headers["webhook-id"]
    finally:
        other.close()


async def test_retries_follow_the_schedule_and_the_answer(
    make_partner: Any, hub: Hub, clock: Any, receiver: Receiver
) -> None:
    pharmacy: PartnerClient = await make_partner()
    member_id = await enrol(pharmacy, new_phone())
    answers = [(500, {}, b"down"), (429, {"Retry-After": "120"}, b"slow down"), (200, {}, b"ok")]
    receiver.respond = lambda r: answers.pop(0) if answers else (200, {}, b"ok")
    _, secret = await endpoint(pharmacy, receiver.url, ["points.earned"])
    assert (await call(pharmacy, EARN, memberId=member_id, points=7))["errors"] == []
    await deliver(hub)
    [first] = await log_of(pharmacy)
    assert (first["status"], first["responseStatus"], first["attempt"]) == ("FAILED", 500, 1)
    waiting = await _delivery_row(hub, pharmacy)
    assert waiting.status == "RETRYING"
    assert 4.4 <= (waiting.next_attempt_at - clock.now()).total_seconds() <= 5.6  # 5 s, jittered
    clock.set(clock.now() + timedelta(seconds=6))
    await deliver(hub)
    waiting = await _delivery_row(hub, pharmacy)
    assert (waiting.next_attempt_at - clock.now()).total_seconds() == pytest.approx(120, abs=1)  # Retry-After
    clock.set(clock.now() + timedelta(seconds=121))
    await deliver(hub)
    done = await _delivery_row(hub, pharmacy)
    assert (done.status, done.attempts) == ("SUCCEEDED", 3)
    ids = {r.headers["webhook-id"] for r in receiver.got}
    assert len(receiver.got) == 3 and len(ids) == 1  # one webhook-id across its retries
    for received in receiver.got:
        received.verify(secret)


async def _delivery_row(hub: Hub, partner: PartnerClient) -> Any:
    async with hub.db.read() as conn:
        return (
            await conn.execute(
                select(webhook_delivery)
                .join(webhook_endpoint, webhook_endpoint.c.id == webhook_delivery.c.endpoint_id)
                .where(webhook_endpoint.c.partner_id == partner.partner_pk)
                .order_by(webhook_delivery.c.id.desc())
                .limit(1)
            )
        ).one()


async def test_a_refusal_is_final_and_gone_disables(make_partner: Any, hub: Hub, receiver: Receiver) -> None:
    pharmacy: PartnerClient = await make_partner()
    member_id = await enrol(pharmacy, new_phone())
    receiver.respond = lambda r: (400, {}, b"bad")
    await endpoint(pharmacy, receiver.url, ["points.earned"])
    await call(pharmacy, EARN, memberId=member_id, points=1)
    await deliver(hub)
    assert (await _delivery_row(hub, pharmacy)).status == "FAILED"  # no retry on 400

    receiver.respond = lambda r: (410, {}, b"gone")
    await call(pharmacy, EARN, memberId=member_id, points=1)
    await deliver(hub)
    state = (await pharmacy.gql(ENDPOINTS, {"first": 1}))["data"]["webhookEndpoints"][0]
    assert state["enabled"] is False and "410" in state["disabledReason"]
    reenabled = await pharmacy.gql(
        "mutation($i: UpdateWebhookEndpointInput!) { updateWebhookEndpoint(input: $i) { endpoint { enabled } } }",
        {"i": {"id": state["id"], "enabled": True}},
    )
    assert reenabled["data"]["updateWebhookEndpoint"]["endpoint"]["enabled"] is True


async def test_hostile_receivers_are_failed_attempts(
    make_partner: Any, hub: Hub, receiver: Receiver, monkeypatch: Any
) -> None:
    pharmacy: PartnerClient = await make_partner()
    member_id = await enrol(pharmacy, new_phone())
    monkeypatch.setattr(transport, "TOTAL_TIMEOUT", 0.5)

    def hang_up(received: Any) -> tuple[int, dict[str, str], bytes]:
        raise ConnectionAbortedError("the receiver closes the connection without answering")

    behaviours = {
        "close": hang_up,
        "redirect": lambda r: (302, {"Location": "http://169.254.169.254/latest"}, b""),
        "huge": lambda r: (200, {}, b"x" * (5 * 1024 * 1024)),
        "hang": lambda r: (time.sleep(2), (200, {}, b""))[1],
    }
    outcomes = {}
    for name, behaviour in behaviours.items():
        receiver.respond = behaviour
        receiver.got.clear()
        await endpoint(pharmacy, receiver.url + "/" + name, ["points.earned"])
        await call(pharmacy, EARN, memberId=member_id, points=1)
        await deliver(hub)
        row = await _delivery_row(hub, pharmacy)
        outcomes[name] = row.status
        await pharmacy.gql(
            "mutation($i: UpdateWebhookEndpointInput!) { updateWebhookEndpoint(input: $i) { errors { code } } }",
            {
                "i": {
                    "id": (await pharmacy.gql(ENDPOINTS, {"first": 1}))["data"]["webhookEndpoints"][-1]["id"],
                    "enabled": False,
                }
            },
        )
    assert outcomes == {"close": "RETRYING", "redirect": "RETRYING", "huge": "SUCCEEDED", "hang": "RETRYING"}
    assert not any("169.254" in r.headers.get("host", "") for r in receiver.got)  # the redirect was not followed


async def test_rotation_signs_with_both_secrets_for_a_day(make_partner: Any, hub: Hub, receiver: Receiver) -> None:
    pharmacy: PartnerClient = await make_partner()
    member_id = await enrol(pharmacy, new_phone())
    endpoint_id, old = await endpoint(pharmacy, receiver.url, ["points.earned"])
    rotated = await pharmacy.gql(
        "mutation($i: WebhookEndpointIdInput!) { rotateWebhookSecret(input: $i) { secret errors { code } } }",
        {"i": {"id": endpoint_id}},
    )
    new = rotated["data"]["rotateWebhookSecret"]["secret"]
    assert new != old
    await call(pharmacy, EARN, memberId=member_id, points=3)
    await deliver(hub)
    [received] = receiver.of_type("points.earned")
    assert len(received.headers["webhook-signature"].split(" ")) == 2
    assert received.verify(old) == received.verify(new)


async def test_redelivery_sends_the_same_webhook_id_again(make_partner: Any, hub: Hub, receiver: Receiver) -> None:
    pharmacy: PartnerClient = await make_partner()
    member_id = await enrol(pharmacy, new_phone())
    endpoint_id, secret = await endpoint(pharmacy, receiver.url, ["points.earned"])
    await call(pharmacy, EARN, memberId=member_id, points=4)
    await deliver(hub)
    [first] = receiver.got
    again = await pharmacy.gql(
        "mutation($i: RedeliverWebhookEventsInput!) { redeliverWebhookEvents(input: $i) { count errors { code } } }",
        {"i": {"endpointId": endpoint_id, "eventIds": [first.headers["webhook-id"]]}},
    )
    assert again["data"]["redeliverWebhookEvents"] == {"count": 1, "errors": []}
    await deliver(hub)
    assert [r.headers["webhook-id"] for r in receiver.got] == [first.headers["webhook-id"]] * 2
    assert receiver.got[1].body == first.body and receiver.got[1].verify(secret)


async def test_two_workers_never_send_one_delivery_twice(make_partner: Any, hub: Hub, receiver: Receiver) -> None:
    pharmacy: PartnerClient = await make_partner()
    member_id = await enrol(pharmacy, new_phone())
    await endpoint(pharmacy, receiver.url, ["points.earned"])
    for _ in range(40):
        await call(pharmacy, EARN, memberId=member_id, points=1)
    while await delivery.fan_out(hub.db, hub.webhook_key, hub.clock.now()):
        pass
    async with transport.new_client(True) as a, transport.new_client(True) as b:
        workers = [delivery.Dispatcher(hub.db, hub.webhook_key, c, allow_private=True) for c in (a, b)]

        async def drain(worker: delivery.Dispatcher) -> None:
            while await worker.dispatch(hub.clock.now(), batch=7):
                pass

        await asyncio.gather(*(drain(w) for w in workers))
    ids = [r.headers["webhook-id"] for r in receiver.got]
    assert len(ids) == 40 and len(set(ids)) == 40


async def test_bad_endpoints_are_typed_errors_and_nothing_is_written(
    settings: Any, make_partner: Any, hub: Hub
) -> None:
    production = create_app(replace(settings, webhook_allow_private=False))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=production), base_url=ISSUER) as http:
            base: PartnerClient = await make_partner()
            partner = PartnerClient(
                http, base.partner_id, base.partner_pk, base.client_id, base.client_secret, base.scopes, base.sms
            )
            cases = [
                ("https://10.0.0.5/hook", "FORBIDDEN_ADDRESS"),
                ("https://169.254.169.254/latest/meta-data", "FORBIDDEN_ADDRESS"),
                ("https://[::ffff:127.0.0.1]/hook", "FORBIDDEN_ADDRESS"),
                ("https://localhost/hook", "FORBIDDEN_ADDRESS"),
                ("https://user:pw@example.com/hook", "INVALID_URL"),
                ("https://example.com/" + "a" * 2000, "INVALID_URL"),
                ("ftp://example.com/hook", "INVALID_URL"),
            ]
            for url, code in cases:
                answer = await partner.gql(
                    "mutation($i: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $i) "
                    "{ endpoint { id } secret errors { field code } } }",
                    {"i": {"url": url, "eventTypes": ["points.earned"]}},
                )
                payload = answer["data"]["createWebhookEndpoint"]
                assert payload == {"endpoint": None, "secret": None, "errors": [{"field": "url", "code": code}]}, url
            unknown = await partner.gql(
                "mutation($i: CreateWebhookEndpointInput!) "
                "{ createWebhookEndpoint(input: $i) { errors { field code } } }",
                {"i": {"url": "https://example.com/hook", "eventTypes": ["points.stolen"]}},
            )
            assert unknown["data"]["createWebhookEndpoint"]["errors"] == [
                {"field": "eventTypes", "code": "UNKNOWN_EVENT_TYPE"}
            ]
    finally:
        await production.state.hub.close()
    async with hub.db.read() as conn:
        assert (
            await conn.execute(select(webhook_endpoint).where(webhook_endpoint.c.partner_id == base.partner_pk))
        ).all() == []
    # Another partner's endpoint is indistinguishable from a missing one.
    owner: PartnerClient = await make_partner()
    intruder: PartnerClient = await make_partner()
    endpoint_id, _ = await endpoint(owner, "http://127.0.0.1:9/hook", ["points.earned"])
    for mutation, arg in (
        ("deleteWebhookEndpoint", "WebhookEndpointIdInput"),
        ("rotateWebhookSecret", "WebhookEndpointIdInput"),
    ):
        for who, target in ((intruder, endpoint_id), (intruder, "whe_missing")):
            answer = await who.gql(
                f"mutation($i: {arg}!) {{ {mutation}(input: $i) {{ errors {{ field code }} }} }}", {"i": {"id": target}}
            )
            assert answer["data"][mutation]["errors"] == [{"field": "id", "code": "WEBHOOK_ENDPOINT_NOT_FOUND"}]
    assert (await intruder.gql("{ webhookEndpoints { id } }"))["data"]["webhookEndpoints"] == []


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.100.100.200",
        "0.0.0.0",  # noqa: S104 (an address refused, not bound)
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:10.0.0.1",
        "::ffff:7f00:1",
        "64:ff9b::a9fe:a9fe",
        "::",
    ],
)
async def test_every_forbidden_address_is_refused_at_send_time(address: str) -> None:
    assert transport.forbidden(ip_address(address))
    async with transport.new_client() as client:
        host = f"[{address}]" if ":" in address else address
        answer = await transport.post(client, f"https://{host}/hook", {}, b"{}", allow_private=False)
    assert answer.status is None and "forbidden address" in (answer.error or "")


async def test_a_name_that_resolves_to_a_forbidden_address_is_refused() -> None:
    async with transport.new_client(allow_private=False) as client:
        answer = await transport.post(client, "http://localhost:9/hook", {}, b"{}", allow_private=False)
    assert answer.status is None and "forbidden address" in (answer.error or ""), answer


def test_public_addresses_are_allowed() -> None:
    for address in ("93.184.216.34", "2606:2800:220:1::1", "8.8.8.8"):
        assert not transport.forbidden(ip_address(address))
    assert check_url("https://example.com/hook", allow_private=False, production=True)


async def test_a_receiver_down_for_10000_events_gets_every_one_when_back(
    make_partner: Any, hub: Hub, clock: Any
) -> None:
    pharmacy: PartnerClient = await make_partner()
    member_id = await enrol(pharmacy, new_phone())
    receiver = Receiver()
    port = receiver.server.server_address[1]
    url = receiver.url
    receiver.close()  # down: connections are refused
    _, secret = await endpoint(pharmacy, url, ["points.earned"])
    async with hub.db.read() as conn:
        member = await conn.scalar(select(member_link.c.member_id).where(member_link.c.pairwise_id == member_id))
    async with hub.db.write() as conn:
        await conn.execute(
            insert(event),
            [
                {
                    "type": "points.earned",
                    "member_id": member,
                    "partner_id": pharmacy.partner_pk,
                    "payload": {"transactionId": f"txn_{i}", "points": i},
                    "occurred_at": clock.now(),
                }
                for i in range(EVENTS)
            ],
        )
    await deliver(hub, rounds=200)
    async with hub.db.read() as conn:
        waiting = (
            (
                await conn.execute(
                    select(webhook_delivery.c.status)
                    .join(webhook_endpoint, webhook_endpoint.c.id == webhook_delivery.c.endpoint_id)
                    .where(webhook_endpoint.c.partner_id == pharmacy.partner_pk)
                )
            )
            .scalars()
            .all()
        )
    assert len(waiting) == EVENTS and set(waiting) == {"RETRYING"}

    up = Receiver(port=port)  # back, where the endpoint points
    try:
        clock.set(clock.now() + timedelta(seconds=10))
        await deliver(hub, rounds=200)
        points = sorted(r.verify(secret)["data"]["points"] for r in up.got)
        assert points == list(range(EVENTS))
        assert len({r.headers["webhook-id"] for r in up.got}) == EVENTS
    finally:
        up.close()


async def test_a_revocation_in_the_portal_reaches_the_partner_within_a_second(
    app: Any, make_partner: Any, hub: Hub, receiver: Receiver
) -> None:
    pharmacy: PartnerClient = await make_partner()
    phone = new_phone()
    member_id = await enrol(pharmacy, phone)
    _, secret = await endpoint(pharmacy, receiver.url, ["points.earned"])
    stop = asyncio.Event()
    async with transport.new_client(allow_private=True) as client:
        dispatcher = delivery.Dispatcher(hub.db, hub.webhook_key, client, allow_private=True)
        worker = asyncio.create_task(delivery.run(hub.db, dispatcher, hub.clock, stop))
        try:
            member = browser(app, phone)
            await member.sign_in(pharmacy.sms)
            page = await member.http.get("/portal/consents")
            consent_id = page.text.split('data-consent="')[1].split('"')[0]
            await asyncio.sleep(0.5)  # the worker idles, polling
            started = time.monotonic()
            await member.http.post(f"/portal/consents/{consent_id}/revoke", data={"csrf_token": csrf_of(page.text)})
            while not receiver.of_type("consent.revoked"):
                assert time.monotonic() - started < 1.0, "no consent.revoked within a second"
                await asyncio.sleep(0.01)
        finally:
            stop.set()
            await worker
    [notice] = receiver.of_type("consent.revoked")
    assert notice.verify(secret)["data"]["memberId"] == member_id
    # The member sees the notice in their access log.
    log = (await member.http.get("/portal/access-log?lang=en")).text
    assert "sent by webhook: consent.revoked" in log


def test_the_catalogue_document_is_current() -> None:
    committed = (ROOT / "docs" / "webhooks.md").read_text(encoding="utf-8")
    assert committed == catalogue.document(), "run `hub webhooks catalogue > docs/webhooks.md` and commit it"


async def test_event_types_are_listed_with_their_schema(make_partner: Any) -> None:
    partner: PartnerClient = await make_partner()
    listed = await partner.gql("{ webhookEventTypes { name description mandatory payloadSchema } }")
    types = {t["name"]: t for t in listed["data"]["webhookEventTypes"]}
    assert set(types) == set(catalogue.SUBSCRIBABLE)
    assert types["member.erased"]["mandatory"] is True
    schema = types["points.earned"]["payloadSchema"]
    assert schema["properties"]["data"]["required"] == ["memberId", "points", "transactionId"]


async def test_five_days_of_failures_disable_and_the_worker_prunes(
    make_partner: Any, hub: Hub, clock: Any, receiver: Receiver
) -> None:
    pharmacy: PartnerClient = await make_partner()
    member_id = await enrol(pharmacy, new_phone())
    receiver.respond = lambda r: (503, {}, b"")
    await endpoint(pharmacy, receiver.url, ["points.earned"])
    await call(pharmacy, EARN, memberId=member_id, points=1)
    await deliver(hub)
    clock.set(clock.now() + timedelta(days=5, seconds=1))
    await deliver(hub)
    state = (await pharmacy.gql(ENDPOINTS, {"first": 1}))["data"]["webhookEndpoints"][0]
    assert state["enabled"] is False and state["disabledReason"] == "every delivery failed for 5 days"

    ok = Receiver()
    try:
        other: PartnerClient = await make_partner()
        other_member = await enrol(other, new_phone())
        await endpoint(other, ok.url, ["points.earned"])
        await call(other, EARN, memberId=other_member, points=1)
        await deliver(hub)
        sent = await _delivery_row(hub, other)
        assert sent.status == "SUCCEEDED"
        later = clock.now() + timedelta(days=31)
        pruned = 0
        while batch := await delivery.prune(hub.db, later, timedelta(days=30)):  # 5,000 at a time
            pruned += batch
        assert pruned >= 1
        async with hub.db.read() as conn:
            gone = await conn.scalar(select(webhook_delivery.c.id).where(webhook_delivery.c.id == sent.id))
        assert gone is None
    finally:
        ok.close()


async def test_the_operator_sees_and_switches_endpoints_from_the_cli(
    database_url: str, tmp_path: Any, make_partner: Any
) -> None:
    from tests.test_cli import hub_cli

    partner: PartnerClient = await make_partner()
    some, _ = await endpoint(partner, "http://127.0.0.1:9/hook", ["points.earned"])
    listed = json.loads(
        hub_cli(database_url, tmp_path, "webhooks", "list", "--partner", partner.partner_id, "--json").stdout
    )
    assert [e["id"] for e in listed["endpoints"]] == [some]
    off = hub_cli(database_url, tmp_path, "webhooks", "disable", "--endpoint", some, "--json")
    assert off.returncode == 0 and json.loads(off.stdout) == {"endpoint": some, "enabled": False}
    log = hub_cli(database_url, tmp_path, "webhooks", "deliveries", "--endpoint", some, "--json")
    assert log.returncode == 0 and "deliveries" in json.loads(log.stdout)
    again = hub_cli(database_url, tmp_path, "webhooks", "redeliver", "--endpoint", some, "--since",
                    "2000-01-01T00:00:00+00:00", "--json")  # fmt: skip
    assert again.returncode == 0 and json.loads(again.stdout)["redelivering"] >= 0
    on = hub_cli(database_url, tmp_path, "webhooks", "enable", "--endpoint", some, "--json")
    assert json.loads(on.stdout) == {"endpoint": some, "enabled": True}
    missing = hub_cli(database_url, tmp_path, "webhooks", "disable", "--endpoint", "whe_nope")
    assert missing.returncode == 1 and "WEBHOOK_ENDPOINT_NOT_FOUND" in missing.stderr


async def test_a_partner_hears_how_the_member_decided_its_request(
    app: Any, make_partner: Any, hub: Hub, receiver: Receiver
) -> None:
    insurer: PartnerClient = await make_partner(kind="insurer")
    phone = new_phone()
    member_id = await enrol(insurer, phone, permissions=["member:read"])
    _, secret = await endpoint(
        insurer, receiver.url, ["consent.requested", "consent.request_decided", "consent.widened"]
    )
    asked = await insurer.gql(
        "mutation($i: RequestConsentInput!) { requestConsent(input: $i) { consentRequest { id } errors { code } } }",
        {"i": {"memberId": member_id, "permissions": ["points:read"], "purposes": ["discounts"]}},
    )
    request_id = asked["data"]["requestConsent"]["consentRequest"]["id"]
    member = browser(app, phone)
    await member.sign_in(insurer.sms)
    assert (await member.post(f"/portal/requests/{request_id}", {"decision": "approve"})).status_code == 303
    await deliver(hub)
    kinds = [r.verify(secret)["type"] for r in receiver.got]
    assert sorted(kinds) == ["consent.request_decided", "consent.requested", "consent.widened"]  # not ordered
    decided = receiver.of_type("consent.request_decided")[0].verify(secret)["data"]
    assert decided == {"memberId": member_id, "requestId": request_id, "decision": "approved"}


async def test_a_slow_receiver_never_delays_another_partners(make_partner: Any, hub: Hub) -> None:
    slow = Receiver(respond=lambda r: (time.sleep(3), (200, {}, b""))[1])
    fast = Receiver()
    try:
        sluggish: PartnerClient = await make_partner()
        quick: PartnerClient = await make_partner()
        sluggish_member = await enrol(sluggish, new_phone())
        quick_member = await enrol(quick, new_phone())
        await endpoint(sluggish, slow.url, ["points.earned"])
        await endpoint(quick, fast.url, ["points.earned"])
        for _ in range(40):  # more than the worker will open to one endpoint at once
            await call(sluggish, EARN, memberId=sluggish_member, points=1)
        await call(quick, EARN, memberId=quick_member, points=1)
        stop = asyncio.Event()
        async with transport.new_client(allow_private=True) as client:
            dispatcher = delivery.Dispatcher(hub.db, hub.webhook_key, client, allow_private=True)
            started = time.monotonic()
            worker = asyncio.create_task(delivery.run(hub.db, dispatcher, hub.clock, stop))
            try:
                while not fast.got:
                    assert time.monotonic() - started < 1.5, "the quick partner waited on the slow one"
                    await asyncio.sleep(0.01)
                # Meanwhile the slow receiver holds no more connections than one endpoint may have.
                assert len(slow.got) <= delivery.PER_ENDPOINT
            finally:
                stop.set()
                await worker
    finally:
        slow.close()
        fast.close()
