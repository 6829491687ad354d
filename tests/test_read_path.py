"""The read path at partner scale: nested member fields are read once per request, not once per member.

The statements are counted at the driver (SQLAlchemy's `before_cursor_execute`), so nothing a request runs escapes.
On PostgreSQL the partner token's state comes from the process's cache (kept true by NOTIFY). SQLite has no
notification channel, so a hub on SQLite reads the token's state on every request: one statement more there,
which the tests name rather than hide."""

from __future__ import annotations

import asyncio
import gc
import secrets
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select

from hub.consent.models import access_log
from hub.partners import service as partners
from hub.state import Hub
from tests.conftest import ENROLL, PartnerClient, enrolment, new_phone
from tests.portal_helpers import browser, partner_app
from tests.test_member_oauth import approve, authorize_url, code_of, exchange, gql, pkce

# The page, as a POS loads it.
PAGE = """query($n: Int) { members(first: $n) { edges { node { id externalId points { available pending }
  tier { level name benefits { discountRate } } } } } }"""

ENTITIES = """query($r: [_Any!]!) { _entities(representations: $r) { ... on Member { id externalId
  points { available pending } tier { level name benefits { discountRate } } } } }"""

# Every field of a member, each nested list included.
EVERY_FIELD = """{ id externalId memberSince name birthday
  points { available pending held lifetimeEarned expiring { points expiresAt } }
  pointsHistory(first: 5) { edges { cursor node { id kind points } } pageInfo { hasNextPage endCursor } }
  tier { level name since benefits { discountRate pointsMultiplier }
         progress { growthValue windowStart growthToNextLevel growthToKeepLevel reviewAt nextLevel { name } }
         history(first: 5) { fromLevel toLevel reason at } }
  purchaseSummary(months: 12) { months since spend visits categories { category spend } }
  consents { id status permissions } }"""

PERMISSIONS = ["member:read", "points:read", "purchases:read", "purchases:write", "consent:read"]
TOKEN_STATE = "access_token"  # the one table only the token-state read touches


@contextmanager
def counted(hub: Hub) -> Iterator[list[str]]:
    """Every SQL statement the hub's engines run inside the block."""
    statements: list[str] = []
    seen: list[Any] = []  # the execution contexts themselves, so that no id is reused while counting

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        # An engine made with execution_options shares its parent's events: count each execution once.
        if not any(context is earlier for earlier in seen):
            seen.append(context)
            statements.append(statement)

    engines = [engine.sync_engine for engine in hub.db.engines]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)


def page_statements(hub: Hub, statements: list[str]) -> list[str]:
    """The statements that serve the request once the partner token's state is known: on SQLite, all but its
    token-state read; on PostgreSQL that read is cached, so it must not be there at all."""
    reads = [s for s in statements if TOKEN_STATE in s]
    if hub.db.backend == "sqlite":
        assert len(reads) == 1, statements
        return [s for s in statements if TOKEN_STATE not in s]
    assert reads == [], statements
    return statements


def consent(hub: Hub, permissions: list[str] = PERMISSIONS) -> dict[str, Any]:
    expires = (hub.clock.now() + timedelta(days=365)).isoformat()  # purchases:read is health data: it expires
    return {"permissions": permissions, "policyVersion": "1", "channel": "POS", "expiresAt": expires}


async def enrol(partner: PartnerClient, hub: Hub, permissions: list[str] = PERMISSIONS) -> tuple[str, str]:
    """A new member at the partner; returns (phone, the partner's pairwise id)."""
    phone = new_phone()
    variables = enrolment("R-" + secrets.token_hex(4), phone, consent=consent(hub, permissions))
    enrolled = await partner.gql(ENROLL, variables)
    assert enrolled["data"]["enrollMember"]["errors"] == [], enrolled
    return phone, enrolled["data"]["enrollMember"]["member"]["id"]


async def shoppers(partner: PartnerClient, hub: Hub, count: int) -> list[str]:
    """Members with points, purchases and tiers, so every batched read has rows to find."""
    ids = []
    for i in range(count):
        ids.append((await enrol(partner, hub))[1])
        if i % 3 == 0:
            await buy(partner, hub, ids[-1], "6000.00" if i % 2 else "120.00")
    return ids


async def buy(partner: PartnerClient, hub: Hub, member_id: str, amount: str) -> None:
    bought = await partner.gql(
        """mutation($input: RecordPurchaseInput!) { recordPurchase(input: $input) { errors { code message } } }""",
        {
            "input": {
                "memberId": member_id,
                "reference": "r-" + secrets.token_hex(6),
                "occurredAt": (hub.clock.now() - timedelta(days=1)).isoformat(),
                "lines": [{"sku": "A1", "category": "otc", "amount": amount}],
                "idempotencyKey": secrets.token_hex(8),
            }
        },
    )
    assert bought["data"]["recordPurchase"]["errors"] == [], bought


@pytest.fixture(scope="module")
async def pos(make_partner: Any, hub: Hub) -> tuple[PartnerClient, list[str]]:
    partner: PartnerClient = await make_partner()
    return partner, await shoppers(partner, hub, 100)


async def test_a_page_of_members_costs_five_statements_at_any_size(pos: tuple[PartnerClient, list[str]], hub: Hub):
    partner, _ = pos
    await partner.gql(PAGE, {"n": 1})  # the token and its state, once
    costs = {}
    for size in (10, 100):
        with counted(hub) as statements:
            page = await partner.gql(PAGE, {"n": size})
        assert "errors" not in page, page
        assert len(page["data"]["members"]["edges"]) == size
        assert all(e["node"]["points"] is not None and e["node"]["tier"] for e in page["data"]["members"]["edges"])
        costs[size] = page_statements(hub, statements)
    # The members, their balances (accounts and lifetime in one statement), their tier rows, the growth in their
    # windows, the access log.
    assert len(costs[10]) == len(costs[100]) <= 5, costs


async def test_entities_by_the_hundred_cost_the_same(pos: tuple[PartnerClient, list[str]], hub: Hub) -> None:
    partner, ids = pos
    await partner.gql(PAGE, {"n": 1})
    costs = {}
    for size in (10, 100):
        representations = [{"__typename": "Member", "id": i} for i in ids[:size]]
        with counted(hub) as statements:
            found = await partner.gql(ENTITIES, {"r": representations})
        assert "errors" not in found, found
        assert [m["id"] for m in found["data"]["_entities"]] == ids[:size]
        costs[size] = page_statements(hub, statements)
    member_reads = [s for s in costs[100] if "member_link" in s]
    assert len(member_reads) == 1, costs[100]  # the hundred representations are one member statement
    assert len(costs[10]) == len(costs[100]) <= 5, costs


async def test_every_member_field_for_a_page_costs_one_statement_per_field_kind(
    pos: tuple[PartnerClient, list[str]], hub: Hub
) -> None:
    partner, _ = pos
    query = "query($n: Int) { members(first: $n) { edges { node " + EVERY_FIELD + " } } }"
    await partner.gql(query, {"n": 1})
    costs = {}
    for size in (10, 50):  # a hundred members with every nested list is beyond the cost limit
        with counted(hub) as statements:
            page = await partner.gql(query, {"n": size})
        assert "errors" not in page, page
        costs[size] = page_statements(hub, statements)
    # members, balances, expiring, points history, tier rows + growth, tier history, purchase summary, consents,
    # access log
    assert len(costs[10]) == len(costs[50]) == 10, costs


async def test_me_with_every_field_costs_the_same_with_or_without_history(
    app: Any, hub: Hub, http: httpx.AsyncClient, make_partner: Any, sms_gateway: Any
) -> None:
    pharmacy: PartnerClient = await make_partner()
    shopper = pharmacy  # the member shops at the pharmacy; an app reads them through a member token
    costs = []
    for purchases in (0, 12):
        phone, pairwise_id = await enrol(pharmacy, hub)
        for _ in range(purchases):
            await buy(shopper, hub, pairwise_id, "700.00")
        member = browser(app, phone)
        await member.sign_in(sms_gateway)
        application = await partner_app(hub, "member:read points:read consent:read purchases:read")
        verifier, challenge = pkce()
        url = authorize_url(application, challenge, scope="member:read points:read consent:read purchases:read")
        token = (await exchange(http, application, code_of(await approve(member, url)), verifier)).json()
        token = token["access_token"]
        await gql(http, token, "{ me { id } }")
        with counted(hub) as statements:
            me = (await gql(http, token, "{ me " + EVERY_FIELD + " }")).json()
        assert "errors" not in me, me
        # A member-delegated token's state is read on every request (its consent is checked each time).
        assert sum(TOKEN_STATE in s for s in statements) == 1, statements
        costs.append(statements)
    # token state, the member, balances, expiring, points history, tier rows + growth, tier history, purchase
    # summary, consents, access log
    assert len(costs[0]) == len(costs[1]) == 11, costs
    assert me["data"]["me"]["purchaseSummary"]["visits"] == 12


async def test_a_page_mixing_consents_answers_each_member_by_their_own(make_partner: Any, hub: Hub) -> None:
    """One statement for the page, and still each member's own consent: a member who did not consent to
    purchases:read gets CONSENT_REQUIRED on that field while the others on the page are answered."""
    partner: PartnerClient = await make_partner()
    _, wide_id = await enrol(partner, hub)
    _, tight_id = await enrol(partner, hub, ["member:read", "points:read", "purchases:write"])
    await buy(partner, hub, wide_id, "88.00")
    query = """query($r: [_Any!]!) { _entities(representations: $r) { ... on Member { id
      points { available } purchaseSummary { visits } } } }"""
    representations = [{"__typename": "Member", "id": i} for i in (wide_id, tight_id)]
    with counted(hub) as statements:
        found = await partner.gql(query, {"r": representations})
    wide_member, tight_member = found["data"]["_entities"]
    assert wide_member["purchaseSummary"]["visits"] == 1
    assert tight_member["purchaseSummary"] is None and tight_member["points"] is not None
    [refused] = found["errors"]
    assert refused["extensions"]["code"] == "CONSENT_REQUIRED"
    assert refused["path"] == ["_entities", 1, "purchaseSummary"]
    assert sum("purchase_line" in s for s in statements) == 1, statements
    # The access log says what each member's data was read for: purchases only for the one who allowed it.
    async with hub.db.read() as conn:
        logged = await conn.scalars(
            select(access_log.c.categories).where(access_log.c.partner_id == partner.partner_pk)
        )
        categories = sorted(logged.all())
    assert categories[-2:] == ["points:read", "points:read purchases:read"], categories


async def test_a_field_error_that_nulls_a_member_drops_no_connection(make_partner: Any, hub: Hub) -> None:
    """graphql-core cancels the siblings of a field whose error nulls their parent, and the DataLoader then cancels
    its batch: a batch read cancelled mid-read dropped its connection instead of returning it to the pool."""
    partner: PartnerClient = await make_partner(scopes="member:read member:enroll points:read purchases:read")
    for _ in range(3):
        await enrol(partner, hub, ["member:read", "points:read", "purchases:read"])
    # `consents` is non-null and needs consent:read, which this client lacks: each member of the page is nulled.
    query = "query($n: Int) { members(first: $n) { edges { node " + EVERY_FIELD + " } } }"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(20):
            page = await partner.gql(query, {"n": 3})
            assert page["errors"][0]["extensions"]["code"] == "INSUFFICIENT_SCOPE", page
        await asyncio.sleep(0.2)  # reads the response no longer waited for finish on their own
        gc.collect()
    assert not [w for w in caught if "non-checked-in connection" in str(w.message)]
    for engine in hub.db.engines:
        assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_every_path_that_hands_out_members_answers_every_field(make_partner: Any, hub: Hub) -> None:
    """Each resolver that hands out members reads their nested fields ahead (schema/batches.py): a path that
    forgot would answer with an internal error here."""
    partner: PartnerClient = await make_partner()
    async with hub.db.write() as conn:
        await partners.set_terms(
            conn, partner_public_id=partner.partner_id, activity_kinds=["GYM_VISIT"], now=hub.clock.now()
        )
    _, member_id = await enrol(partner, hub, [*PERMISSIONS, "activity:write"])
    external_id = (await partner.gql(PAGE, {"n": 100}))["data"]["members"]["edges"]
    external_id = next(e["node"]["externalId"] for e in external_id if e["node"]["id"] == member_id)
    reference = "r-" + secrets.token_hex(6)
    occurred = (hub.clock.now() - timedelta(days=1)).isoformat()
    line = {"sku": "A1", "category": "otc", "amount": "50.00"}
    fields = "member " + EVERY_FIELD + " errors { code message }"
    paths = {
        "member": ("query($id: ID!) { member(id: $id) " + EVERY_FIELD + " }", {"id": member_id}),
        "memberByExternalId": (
            "query($e: String!) { memberByExternalId(externalId: $e) " + EVERY_FIELD + " }",
            {"e": external_id},
        ),
        "members": ("{ members(first: 5) { edges { node " + EVERY_FIELD + " } } }", {}),
        "_entities": (
            "query($r: [_Any!]!) { _entities(representations: $r) { ... on Member " + EVERY_FIELD + " } }",
            {"r": [{"__typename": "Member", "id": member_id}]},
        ),
        "recordPurchase": (
            "mutation($i: RecordPurchaseInput!) { recordPurchase(input: $i) { " + fields + " } }",
            {"i": {"memberId": member_id, "reference": reference, "occurredAt": occurred, "lines": [line],
                   "idempotencyKey": secrets.token_hex(8)}},
        ),
        "refundPurchase": (
            "mutation($i: RefundPurchaseInput!) { refundPurchase(input: $i) { " + fields + " } }",
            {"i": {"purchaseReference": reference, "amount": "10.00", "idempotencyKey": secrets.token_hex(8)}},
        ),
        "recordActivity": (
            "mutation($i: RecordActivityInput!) { recordActivity(input: $i) { " + fields + " } }",
            {"i": {"memberId": member_id, "kind": "GYM_VISIT", "occurredAt": occurred, "reference": reference,
                   "idempotencyKey": secrets.token_hex(8)}},
        ),
        "enrollMember": (
            "mutation($input: EnrollMemberInput!) { enrollMember(input: $input) { " + fields + " } }",
            enrolment("E-" + secrets.token_hex(4), new_phone(), consent=consent(hub)),
        ),
    }  # fmt: skip
    for name, (query, variables) in paths.items():
        answer = await partner.gql(query, variables)
        assert "errors" not in answer, (name, answer)
        found = answer["data"][name]
        if isinstance(found, dict) and "errors" in found:
            assert found["errors"] == [], (name, found)


async def test_member_data_is_not_sent_when_its_access_log_cannot_be_written(
    pos: tuple[PartnerClient, list[str]], hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    partner, ids = pos

    async def broken(rows: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(hub.access_log, "_insert", broken)
    response = await partner.http.post(
        "/graphql",
        json={
            "query": "query($id: ID!) { member(id: $id) { name points { available } } }",
            "variables": {"id": ids[0]},
        },
        headers={"Authorization": f"Bearer {partner.cached_token or await partner.token()}"},
    )
    assert response.status_code == 503, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert "data" not in response.json() and "王芳" not in response.text
    monkeypatch.undo()
    assert (await partner.gql("query($id: ID!) { member(id: $id) { name } }", {"id": ids[0]}))["data"]["member"]
