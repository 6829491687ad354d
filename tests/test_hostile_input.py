"""Generated hostile input: documents built from the published schema (hypothesis-graphql, valid and invalid ones,
NUL characters and odd scalars included) and arbitrary JSON bodies, sent over HTTP as a partner would. Whatever
comes in, the hub answers with a status below 500 and a code on every error, and never an internal one."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, nodes

from hub.app import create_app
from hub.config import Settings
from hub.partners import service as partners
from hub.schema import build_schema
from tests.conftest import ALL_PARTNER_SCOPES, ENROLL, ISSUER, enrolment, new_phone

SCHEMA = build_schema(Settings())._schema  # graphql-core's schema: the federation directives resolved

_TEXTISH = st.one_of(
    st.text(max_size=40), st.sampled_from(["", "\x00", "\ud800", "x" * 1200, "0001-01-01T00:00:00+14:00"])
)
SCALARS = {
    "DateTime": st.one_of(
        st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
        st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-13-01T00:00:00Z"]),
        st.text(max_size=30),
    ).map(nodes.String),
    "Date": st.one_of(st.dates().map(lambda d: d.isoformat()), st.text(max_size=12)).map(nodes.String),
    "BigInt": st.integers(-(2**70), 2**70).map(nodes.Int),
    "_Any": _TEXTISH.map(nodes.String),  # representations as objects come through variables, below
}


class Loop:
    """The app runs on a private event loop: Hypothesis tests are synchronous."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)


@pytest.fixture(scope="module")
def partner_http(settings: Settings) -> Iterator[tuple[Loop, httpx.AsyncClient, str, str]]:
    loop = Loop()
    app = create_app(replace(settings, rate_limit_requests=10_000_000, rate_limit_cost=10_000_000_000))
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER)
    hub = app.state.hub

    async def setup() -> tuple[str, str]:
        async with hub.db.write() as conn:
            partner = await partners.create_partner(
                conn, name=f"Fuzz {secrets.token_hex(4)}", kind="pharmacy_chain", now=hub.clock.now()
            )
            client = await partners.create_client(
                conn, partner_public_id=partner.public_id, scopes=frozenset(ALL_PARTNER_SCOPES.split()),
                now=hub.clock.now(),
            )  # fmt: skip
        assert client.client_secret is not None
        token = (
            await http.post(
                "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.client_secret)
            )
        ).json()["access_token"]
        enrolled = await http.post(
            "/graphql",
            json={"query": ENROLL, "variables": enrolment("FUZZ-1", new_phone())},
            headers={"Authorization": f"Bearer {token}"},
        )
        return token, enrolled.json()["data"]["enrollMember"]["member"]["id"]

    token, member_id = loop.run(setup())
    yield loop, http, token, member_id
    loop.run(http.aclose())
    loop.run(hub.close())
    loop.loop.close()


def _answer_is_clean(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    body = response.json()
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        assert code and code != "INTERNAL_SERVER_ERROR", error


def _post(fixture: Any, payload: bytes) -> httpx.Response:
    loop, http, token, _ = fixture
    return loop.run(  # type: ignore[no-any-return]
        http.post(
            "/graphql",
            content=payload,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
    )


FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)


@FUZZ
@given(document=from_schema(SCHEMA, custom_scalars=SCALARS))
def test_generated_documents_never_fail_inside(partner_http: Any, document: str) -> None:
    _answer_is_clean(_post(partner_http, json.dumps({"query": document}).encode()))


@FUZZ
@given(document=from_schema(SCHEMA, custom_scalars=SCALARS, mode=Mode.NEGATIVE))
def test_invalid_documents_are_refused_with_a_code(partner_http: Any, document: str) -> None:
    _answer_is_clean(_post(partner_http, json.dumps({"query": document}).encode()))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXTISH,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXTISH, inner, max_size=4),
    max_leaves=30,
)
_OPERATIONS = [
    ENROLL,
    "mutation($input: EarnPointsInput!) { earnPoints(input: $input) { errors { code } } }",
    "mutation($input: RecordPurchaseInput!) { recordPurchase(input: $input) { errors { code } } }",
    "mutation($input: RevokeConsentInput!) { revokeConsent(input: $input) { errors { code } } }",
    "query($r: [_Any!]!) { _entities(representations: $r) { ... on Member { id } } }",
    "query($id: ID!, $n: Int) { member(id: $id) { id pointsHistory(first: $n) { edges { node { id } } } } }",
]


@FUZZ
@given(query=st.sampled_from(_OPERATIONS), variables=_JSON, raw=st.binary(max_size=64))
def test_arbitrary_variables_and_bodies_are_answered_with_a_code(
    partner_http: Any, query: str, variables: Any, raw: bytes
) -> None:
    _answer_is_clean(_post(partner_http, json.dumps({"query": query, "variables": variables}).encode()))
    wrapped = {"query": query, "variables": {"input": variables, "r": variables, "id": partner_http[3], "n": 5}}
    _answer_is_clean(_post(partner_http, json.dumps(wrapped).encode()))
    response = _post(partner_http, raw)
    assert response.status_code < 500 and "code" in response.text
