"""Members and identity federation through GraphQL: enrolment, phone linking, pairwise ids, consent-scoped
reads, partner isolation, and the rows each enrolment writes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select, update

from hub.consent.models import consent, consent_event
from hub.events.models import event
from hub.members.models import member, member_claim, member_link
from hub.state import Hub
from tests.conftest import CONFIRM, ENROLL, PartnerClient, SmsGateway, enrol_confirmed, enrolment, new_phone

MEMBER = "query($id: ID!) { member(id: $id) { id externalId name birthday memberSince } }"
BY_EXTERNAL = "query($e: String!) { memberByExternalId(externalId: $e) { id externalId } }"
MEMBERS = """query($first: Int, $after: String) {
  members(first: $first, after: $after) {
    edges { cursor node { id externalId } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""


async def enrol(partner: PartnerClient, external_id: str, phone: str, **overrides: Any) -> dict[str, Any]:
    result = await partner.gql(ENROLL, enrolment(external_id, phone, **overrides))
    assert "errors" not in result, result
    return result["data"]["enrollMember"]  # type: ignore[no-any-return]


async def count(hub: Hub, table: Any, *where: Any) -> int:
    async with hub.db.read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table).where(*where)) or 0)


async def test_enrolment_creates_member_link_consent_and_events(make_partner: Any, hub: Hub) -> None:
    pharmacy: PartnerClient = await make_partner()
    phone = new_phone()
    payload = await enrol(pharmacy, "P-1", phone)
    assert payload["errors"] == [] and payload["linkedExisting"] is False
    created = payload["member"]
    assert created["id"].startswith("mbr_") and created["externalId"] == "P-1"
    assert created["name"] == "王芳" and created["birthday"] == "1980-05-17"

    async with hub.db.read() as conn:
        row = (await conn.execute(select(member).where(member.c.phone == phone))).one()
        given = (
            await conn.execute(
                select(consent).where(consent.c.member_id == row.id, consent.c.partner_id == pharmacy.partner_pk)
            )
        ).one()
        proof = (await conn.execute(select(consent_event).where(consent_event.c.consent_id == given.id))).all()
        events = (await conn.execute(select(event.c.type).where(event.c.member_id == row.id))).scalars().all()
    assert given.status == "AUTHORISED" and sorted(given.permissions) == ["member:read", "points:read"]
    assert given.policy_version == "2026-01" and given.channel == "POS"
    assert [p.kind for p in proof] == ["granted"] and proof[0].evidence["channel"] == "POS"
    assert sorted(events) == ["consent.granted", "member.enrolled"]


async def test_phone_in_another_format_links_the_existing_member_once_confirmed(
    make_partner: Any, hub: Hub, sms_gateway: SmsGateway
) -> None:
    pharmacy: PartnerClient = await make_partner()
    insurer: PartnerClient = await make_partner(kind="insurer")
    phone = new_phone()
    first = await enrol(pharmacy, "P-2", phone)
    local = phone.removeprefix("+86")
    local_format = f"{local[:3]} {local[3:7]} {local[7:]}"
    second = await enrol_confirmed(insurer, "INS-2", local_format, name=None, birthday=None)
    assert second["linkedExisting"] is True
    assert second["member"]["id"] != first["member"]["id"]  # pairwise: each partner its own id
    assert second["member"]["name"] == "王芳"  # the hub profile, not a duplicate
    assert await count(hub, member, member.c.phone == phone) == 1


async def test_pairwise_ids_are_stable_and_differ_across_partners(make_partner: Any) -> None:
    a: PartnerClient = await make_partner()
    b: PartnerClient = await make_partner()
    phone = new_phone()
    id_a = (await enrol(a, "A-3", phone))["member"]["id"]
    id_b = (await enrol(b, "B-3", phone))["member"]["id"]
    assert id_a != id_b
    again = await a.gql(BY_EXTERNAL, {"e": "A-3"})
    assert again["data"]["memberByExternalId"]["id"] == id_a
    # Partner B cannot use A's pairwise id, nor A's external id, to reach the member they share.
    assert (await b.gql(MEMBER, {"id": id_a}))["data"]["member"] is None
    assert (await b.gql(BY_EXTERNAL, {"e": "A-3"}))["data"]["memberByExternalId"] is None


async def test_partner_isolation_unknown_and_unconsented_look_the_same(make_partner: Any) -> None:
    a: PartnerClient = await make_partner()
    b: PartnerClient = await make_partner()
    only_a = (await enrol(a, "A-4", new_phone()))["member"]["id"]
    unknown = await b.gql(MEMBER, {"id": "mbr_doesNotExistAtAll0000"})
    foreign = await b.gql(MEMBER, {"id": only_a})
    assert unknown["data"] == foreign["data"] == {"member": None}
    listed = await b.gql(MEMBERS, {"first": 100})
    assert only_a not in {e["node"]["id"] for e in listed["data"]["members"]["edges"]}


async def test_enrolment_errors_are_typed_and_write_nothing(make_partner: Any, hub: Hub) -> None:
    pharmacy: PartnerClient = await make_partner()
    await enrol(pharmacy, "P-5", new_phone())
    before = [await count(hub, t) for t in (member, member_link, consent, consent_event, event)]
    cases = [
        (enrolment("P-5", new_phone()), "EXTERNAL_ID_TAKEN", "externalId"),
        (enrolment("P-6", "12345"), "INVALID_PHONE", "phone"),
        (enrolment("P-6", "not a phone"), "INVALID_PHONE", "phone"),
        (enrolment("", new_phone()), "INVALID_INPUT", "externalId"),
        (enrolment("P-6", new_phone(), birthday="2999-01-01"), "INVALID_INPUT", "birthday"),
        (
            enrolment("P-6", new_phone(), consent={"permissions": [], "policyVersion": "1", "channel": "APP"}),
            "INVALID_INPUT",
            "consent.permissions",
        ),
        (
            enrolment(
                "P-6", new_phone(), consent={"permissions": ["operator:admin"], "policyVersion": "1", "channel": "APP"}
            ),
            "INVALID_INPUT",
            "consent.permissions",
        ),
        (
            enrolment(
                "P-6", new_phone(), consent={"permissions": ["member:read"], "policyVersion": " ", "channel": "APP"}
            ),
            "INVALID_INPUT",
            "consent",
        ),
    ]
    for variables, code, field in cases:
        payload = (await pharmacy.gql(ENROLL, variables))["data"]["enrollMember"]
        assert payload["member"] is None and payload["linkedExisting"] is False
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [(code, field)], variables
    after = [await count(hub, t) for t in (member, member_link, consent, consent_event, event)]
    assert before == after


async def test_enrolling_the_same_phone_twice_makes_a_record_that_confirming_folds_back(
    make_partner: Any, sms_gateway: SmsGateway
) -> None:
    pharmacy: PartnerClient = await make_partner()
    phone = new_phone()
    first = await enrol(pharmacy, "P-7", phone)
    # The answer does not say the phone is known, even to the partner that enrolled it first.
    again = await enrol(pharmacy, "P-7b", phone, name="别人")
    assert again["errors"] == [] and again["linkedExisting"] is False and again["member"]["name"] == "别人"
    code = sms_gateway.last_code(phone)
    confirmed = (await pharmacy.gql(CONFIRM, {"input": {"memberId": again["member"]["id"], "code": code}}))["data"]
    result = confirmed["confirmEnrollment"]
    # The partner already knew this member: it keeps the id it had, and the hub profile stays the member's.
    assert result["linkedExisting"] is True and result["member"]["id"] == first["member"]["id"]
    assert result["member"]["externalId"] == "P-7" and result["member"]["name"] == "王芳"
    assert (await pharmacy.gql(MEMBER, {"id": again["member"]["id"]}))["data"]["member"] is None


async def test_malformed_input_is_a_graphql_error_with_code(make_partner: Any) -> None:
    pharmacy: PartnerClient = await make_partner()
    bad = await pharmacy.gql(ENROLL, enrolment("P-8", new_phone(), birthday="17 May 1980"))
    assert bad["data"] is None and bad["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    bad_channel = await pharmacy.gql(
        ENROLL,
        enrolment("P-8", new_phone(), consent={"permissions": ["member:read"], "policyVersion": "1", "channel": "FAX"}),
    )
    assert bad_channel["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_profile_fields_need_the_members_consent(make_partner: Any) -> None:
    gym: PartnerClient = await make_partner(kind="gym")
    payload = await gym.gql(
        ENROLL,
        enrolment("G-9", new_phone(), consent={"permissions": ["points:read"], "policyVersion": "1", "channel": "APP"}),
    )
    assert payload["data"]["enrollMember"]["member"]["name"] is None
    errors = payload["errors"]
    assert {e["path"][-1] for e in errors} == {"name", "birthday"}
    assert {e["extensions"]["code"] for e in errors} == {"CONSENT_REQUIRED"}


async def test_revoked_consent_hides_the_member_on_the_next_request(make_partner: Any, hub: Hub) -> None:
    pharmacy: PartnerClient = await make_partner()
    token = await pharmacy.token()
    member_id = (await enrol(pharmacy, "P-10", new_phone()))["member"]["id"]
    assert (await pharmacy.gql(MEMBER, {"id": member_id}, token=token))["data"]["member"]["id"] == member_id
    async with hub.db.write() as conn:
        await conn.execute(update(consent).where(consent.c.partner_id == pharmacy.partner_pk).values(status="REVOKED"))
    assert (await pharmacy.gql(MEMBER, {"id": member_id}, token=token))["data"]["member"] is None
    assert (await pharmacy.gql(BY_EXTERNAL, {"e": "P-10"}, token=token))["data"]["memberByExternalId"] is None


@pytest.mark.parametrize(
    ("query", "variables", "needs"),
    [
        (MEMBER, {"id": "mbr_x"}, "member:read"),
        (BY_EXTERNAL, {"e": "x"}, "member:read"),
        (MEMBERS, {"first": 1}, "member:read"),
        (ENROLL, enrolment("S-1", "+8613900000000"), "member:enroll"),
    ],
)
async def test_every_field_enforces_its_scope(
    make_partner: Any, query: str, variables: dict[str, Any], needs: str
) -> None:
    partner: PartnerClient = await make_partner(scopes="points:read consent:read")
    result = await partner.gql(query, variables)
    assert all(value is None for value in (result["data"] or {}).values())
    assert result["errors"][0]["extensions"] == {"code": "INSUFFICIENT_SCOPE", "requiredScope": needs}


async def test_anonymous_requests_are_unauthenticated(http: Any) -> None:
    response = await http.post("/graphql", json={"query": MEMBER, "variables": {"id": "x"}})
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_members_pages_are_relay_connections(make_partner: Any) -> None:
    partner: PartnerClient = await make_partner()
    enrolled = {(await enrol(partner, f"L-{i}", new_phone()))["member"]["id"] for i in range(7)}
    seen: list[str] = []
    after = None
    while True:
        page = (await partner.gql(MEMBERS, {"first": 3, "after": after}))["data"]["members"]
        seen += [e["node"]["id"] for e in page["edges"]]
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen)) == 7 and set(seen) == enrolled
    too_many = await partner.gql(MEMBERS, {"first": 101})
    assert too_many["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    bad_cursor = await partner.gql(MEMBERS, {"first": 1, "after": "%%%"})
    assert bad_cursor["errors"][0]["extensions"]["code"] == "INVALID_CURSOR"


async def test_federation_entities_obey_consent(make_partner: Any) -> None:
    a: PartnerClient = await make_partner()
    b: PartnerClient = await make_partner()
    mine = (await enrol(a, "F-1", new_phone()))["member"]["id"]
    query = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Member { id externalId } } }"
    reps = {"r": [{"__typename": "Member", "id": mine}]}
    assert (await a.gql(query, reps))["data"]["_entities"] == [{"id": mine, "externalId": "F-1"}]
    assert (await b.gql(query, reps))["data"]["_entities"] == [None]


async def test_concurrent_enrolments_of_one_phone_make_one_owner(make_partner: Any, hub: Hub) -> None:
    partners = [await make_partner() for _ in range(4)]
    phone = new_phone()
    results = await asyncio.gather(*(enrol(p, f"C-{i}", phone) for i, p in enumerate(partners)))
    assert [r["linkedExisting"] for r in results] == [False] * 4
    assert await count(hub, member, member.c.phone == phone) == 1
    assert (
        await count(hub, member_claim, member_claim.c.phone == phone, member_claim.c.target_member_id.is_not(None)) == 3
    )
