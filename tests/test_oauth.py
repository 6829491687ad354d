"""The authorization server through HTTP: token endpoint, client authentication, bad tokens, revocation,
introspection, metadata and key rotation."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey
from sqlalchemy import create_engine, select, text, update

from hub.auth.models import access_token
from hub.config import Settings
from hub.db import sync_url
from hub.partners import service as partners
from hub.partners.models import client_secret, oauth_client
from hub.state import Hub
from tests.conftest import ISSUER, PartnerClient

VIEWER = "{ viewer { partner { id name kind } scopes } }"
AUDIENCE = ISSUER + "/graphql"


def claims_of(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    decode = lambda part: json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # noqa: E731
    return decode(header), decode(payload)


async def graphql_status(http: httpx.AsyncClient, token: str) -> tuple[int, dict[str, Any]]:
    response = await http.post("/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {token}"})
    return response.status_code, response.json()


def mint(hub: Hub, header: dict[str, Any] | None = None, key: Any = None, **claims: Any) -> str:
    """Sign a token with the hub's own key (or another), to build the bad tokens a forger would send."""
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
        "jti": "forged-" + str(now),
        "client_id": "hub_ci_x",
        "sub": "hub_ci_x",
        "scope": "member:read",
    }
    body.update(claims)
    signing = key or hub.keys.signing_key.key
    head = {"alg": "ES256", "typ": "at+jwt", "kid": hub.keys.signing_key.kid}
    head.update(header or {})
    head = {k: v for k, v in head.items() if v is not None}
    return jwt.encode(head, {k: v for k, v in body.items() if v is not None}, signing, algorithms=[head["alg"]])


# -- token endpoint --------------------------------------------------------------------------------------------------
async def test_client_credentials_issues_an_rfc9068_token(make_partner: Any, hub: Hub) -> None:
    partner: PartnerClient = await make_partner()
    response = await partner.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "member:read points:read"},
        auth=(partner.client_id, partner.client_secret),
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "member:read points:read"
    assert 0 < body["expires_in"] <= 900
    header, claims = claims_of(body["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256" and header["kid"] == hub.keys.signing_key.kid
    assert claims["iss"] == ISSUER and claims["aud"] == AUDIENCE
    assert claims["client_id"] == partner.client_id and claims["sub"] == partner.client_id
    assert claims["exp"] - claims["iat"] <= 900 and claims["jti"]


async def test_omitted_scope_means_the_whole_ceiling(make_partner: Any) -> None:
    partner: PartnerClient = await make_partner(scopes="member:read points:read")
    token = await partner.token()
    assert claims_of(token)[1]["scope"] == "member:read points:read"


@pytest.mark.parametrize("scope", ["member:read analytics:read", "operator:admin", "no:such-scope"])
async def test_scope_beyond_the_ceiling_is_rejected_not_trimmed(make_partner: Any, scope: str) -> None:
    partner: PartnerClient = await make_partner(scopes="member:read points:read")
    response = await partner.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=(partner.client_id, partner.client_secret),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


async def test_client_secret_post_and_pinned_auth_method(make_partner: Any) -> None:
    partner: PartnerClient = await make_partner(auth_method="client_secret_post")
    ok = await partner.http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": partner.client_id,
            "client_secret": partner.client_secret,
        },
    )
    assert ok.status_code == 200, ok.text
    # The same secret sent with another method is refused: a client authenticates only the way it registered.
    basic = await partner.http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(partner.client_id, partner.client_secret)
    )
    assert basic.status_code == 401
    assert basic.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    ("auth", "data"),
    [
        (("hub_ci_unknown", "whatever"), {"grant_type": "client_credentials"}),
        (None, {"grant_type": "client_credentials"}),
        ("wrong-secret", {"grant_type": "client_credentials"}),
    ],
)
async def test_bad_client_credentials_get_401(make_partner: Any, auth: Any, data: dict[str, str]) -> None:
    partner: PartnerClient = await make_partner()
    if auth == "wrong-secret":
        auth = (partner.client_id, partner.client_secret + "x")
    response = await partner.http.post("/oauth/token", data=data, auth=auth)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_malformed_token_requests(make_partner: Any) -> None:
    partner: PartnerClient = await make_partner()
    auth = (partner.client_id, partner.client_secret)
    unsupported = await partner.http.post("/oauth/token", data={"grant_type": "password"}, auth=auth)
    assert unsupported.status_code == 400 and unsupported.json()["error"] == "unsupported_grant_type"
    as_json = await partner.http.post("/oauth/token", json={"grant_type": "client_credentials"}, auth=auth)
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"
    repeated = await partner.http.post(
        "/oauth/token",
        content="grant_type=client_credentials&scope=member:read&scope=points:read",
        headers={"content-type": "application/x-www-form-urlencoded"},
        auth=auth,
    )
    assert repeated.status_code == 400 and repeated.json()["error"] == "invalid_request"


async def test_secrets_are_stored_hashed(make_partner: Any, hub: Hub) -> None:
    partner: PartnerClient = await make_partner()
    async with hub.db.read() as conn:
        stored = (
            await conn.execute(
                select(client_secret.c.secret_hash)
                .join(oauth_client, oauth_client.c.id == client_secret.c.client_pk)
                .where(oauth_client.c.client_id == partner.client_id)
            )
        ).scalar_one()
    assert partner.client_secret not in stored and len(stored) == 64


async def test_operator_scopes_are_never_grantable(hub: Hub) -> None:
    async with hub.db.write() as conn:
        owner = await partners.create_partner(conn, name=f"Op test {time.time_ns()}", kind="other", now=hub.clock.now())
        with pytest.raises(partners.DomainError) as raised:
            await partners.create_client(
                conn, partner_public_id=owner.public_id, scopes=frozenset({"operator:admin"}), now=hub.clock.now()
            )
    assert raised.value.code == "INVALID_SCOPE"


# -- private_key_jwt -------------------------------------------------------------------------------------------------
@pytest.fixture
async def key_client(hub: Hub, make_partner: Any) -> tuple[str, ECKey, httpx.AsyncClient]:
    base: PartnerClient = await make_partner()
    key = ECKey.generate_key("P-256", private=True)
    key_set = KeySet([key])
    async with hub.db.write() as conn:
        created = await partners.create_client(
            conn,
            partner_public_id=base.partner_id,
            scopes=frozenset({"member:read"}),
            auth_method="private_key_jwt",
            jwks=key_set.as_dict(private=False),
            now=hub.clock.now(),
        )
    assert created.client_secret is None
    return created.client_id, key, base.http


def assertion(client_id: str, key: Any, **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": ISSUER + "/oauth/token",
        "iat": now,
        "exp": now + 60,
        "jti": f"a-{time.time_ns()}",
    }
    claims.update(overrides)
    return jwt.encode({"alg": "ES256", "kid": key.thumbprint()}, claims, key)


async def post_assertion(http: httpx.AsyncClient, signed: str) -> httpx.Response:
    return await http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": signed,
        },
    )


async def test_private_key_jwt_assertions_live_five_minutes_at_most(key_client: Any) -> None:
    client_id, key, http = key_client
    for lifetime, accepted in ((365 * 24 * 3600, False), (3600, False), (240, True)):
        response = await post_assertion(http, assertion(client_id, key, exp=int(time.time()) + lifetime))
        if accepted:
            assert response.status_code == 200, response.text
        else:
            assert response.status_code in (400, 401) and response.json()["error"] == "invalid_client"


async def test_private_key_jwt_authenticates_once_per_assertion(key_client: Any) -> None:
    client_id, key, http = key_client
    signed = assertion(client_id, key)
    first = await post_assertion(http, signed)
    assert first.status_code == 200, first.text
    replay = await post_assertion(http, signed)
    assert replay.status_code in (400, 401), replay.text
    assert replay.json()["error"] == "invalid_client" and "used" in replay.json()["error_description"]


@pytest.mark.parametrize(
    "overrides",
    [{"aud": "https://elsewhere.example/token"}, {"exp": int(time.time()) - 600}, {"sub": None}, {"iss": "someone"}],
)
async def test_private_key_jwt_rejects_bad_assertions(key_client: Any, overrides: dict[str, Any]) -> None:
    client_id, key, http = key_client
    claims = {k: v for k, v in overrides.items() if v is not None}
    signed = assertion(client_id, key, **claims)
    if overrides.get("sub", "x") is None:
        header, body = claims_of(signed)
        body.pop("sub")
        signed = jwt.encode(header, body, key)
    response = await post_assertion(http, signed)
    assert response.status_code in (400, 401)
    assert response.json()["error"] == "invalid_client"


async def test_private_key_jwt_signed_by_another_key_fails(key_client: Any) -> None:
    client_id, _key, http = key_client
    response = await post_assertion(http, assertion(client_id, ECKey.generate_key("P-256", private=True)))
    assert response.status_code in (400, 401)
    assert response.json()["error"] == "invalid_client"


# -- bad bearer tokens on the API ------------------------------------------------------------------------------------
async def test_a_good_token_reaches_graphql(make_partner: Any) -> None:
    partner: PartnerClient = await make_partner(kind="gym", scopes="member:read")
    result = await partner.gql(VIEWER)
    assert result["data"]["viewer"]["partner"] == {
        "id": partner.partner_id,
        "name": result["data"]["viewer"]["partner"]["name"],
        "kind": "gym",
    }
    assert result["data"]["viewer"]["scopes"] == ["member:read"]


def _none_alg(token: str) -> str:
    header, claims = claims_of(token)
    header["alg"] = "none"
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{enc(header)}.{enc(claims)}."


@pytest.mark.parametrize(
    "forge",
    [
        "garbage",
        "alg-none",
        "wrong-aud",
        "wrong-iss",
        "missing-typ",
        "wrong-typ",
        "unknown-key",
        "expired",
        "hs256-with-public-key",
        "embedded-jwk",
        "unknown-jti",
    ],
)
async def test_bad_tokens_get_401_never_500(make_partner: Any, hub: Hub, forge: str) -> None:
    partner: PartnerClient = await make_partner()
    good = await partner.token()
    _, good_claims = claims_of(good)
    base = {"client_id": partner.client_id, "sub": partner.client_id, "jti": good_claims["jti"]}
    tokens = {
        "garbage": lambda: "not-a-jwt",
        "alg-none": lambda: _none_alg(good),
        "wrong-aud": lambda: mint(hub, aud="https://other-api.example", **base),
        "wrong-iss": lambda: mint(hub, iss="https://evil.example", **base),
        "missing-typ": lambda: mint(hub, header={"typ": None}, **base),
        "wrong-typ": lambda: mint(hub, header={"typ": "JWT"}, **base),
        "unknown-key": lambda: mint(hub, key=ECKey.generate_key("P-256", private=True), **base),
        "expired": lambda: mint(hub, iat=int(time.time()) - 1200, exp=int(time.time()) - 600, **base),
        "hs256-with-public-key": lambda: jwt.encode(
            {"alg": "HS256", "typ": "at+jwt", "kid": hub.keys.signing_key.kid},
            claims_of(good)[1],
            OctKey.import_key(json.dumps(hub.keys.jwks()).encode()),
            algorithms=["HS256"],
        ),
        "embedded-jwk": lambda: mint(
            hub, header={"jwk": ECKey.generate_key("P-256", private=True).as_dict(private=False)}, **base
        ),
        "unknown-jti": lambda: mint(hub, **{**base, "jti": "never-issued"}),
    }
    token = tokens[forge]()
    status, body = await graphql_status(partner.http, token)
    assert status == 401, (forge, body)
    assert body["error"] == "invalid_token"


async def test_bearer_scheme_and_query_string_tokens_are_refused(make_partner: Any) -> None:
    partner: PartnerClient = await make_partner()
    token = await partner.token()
    basic = await partner.http.post("/graphql", json={"query": VIEWER}, headers={"Authorization": f"Basic {token}"})
    assert basic.status_code == 401 and basic.json()["error"] == "invalid_request"
    in_query = await partner.http.post(f"/graphql?access_token={token}", json={"query": VIEWER})
    assert in_query.status_code == 400


# -- revocation and introspection ------------------------------------------------------------------------------------
async def test_revoked_token_stops_working_on_the_next_request(make_partner: Any) -> None:
    partner: PartnerClient = await make_partner()
    token = await partner.token()
    assert (await graphql_status(partner.http, token))[0] == 200
    revoked = await partner.http.post(
        "/oauth/revoke", data={"token": token}, auth=(partner.client_id, partner.client_secret)
    )
    assert revoked.status_code == 200
    status, body = await graphql_status(partner.http, token)
    assert status == 401 and "revoked" in body["error_description"]


async def test_a_client_cannot_revoke_or_introspect_another_clients_token(make_partner: Any) -> None:
    owner: PartnerClient = await make_partner()
    other: PartnerClient = await make_partner()
    token = await owner.token()
    attempt = await other.http.post("/oauth/revoke", data={"token": token}, auth=(other.client_id, other.client_secret))
    assert attempt.status_code == 400
    assert (await graphql_status(owner.http, token))[0] == 200
    peek = await other.http.post(
        "/oauth/introspect", data={"token": token}, auth=(other.client_id, other.client_secret)
    )
    assert peek.json() == {"active": False}
    own = await owner.http.post("/oauth/introspect", data={"token": token}, auth=(owner.client_id, owner.client_secret))
    body = own.json()
    assert body["active"] is True and body["client_id"] == owner.client_id and body["iss"] == ISSUER


async def heard_of_changes(hub: Hub, since: int) -> None:
    """Wait for PostgreSQL's notification of a change to reach this process's token cache (SQLite has none)."""
    if not hub.token_states.listening:
        return
    deadline = time.monotonic() + 5
    while hub.token_states.generation == since:
        assert time.monotonic() < deadline, "no change notification arrived"
        await asyncio.sleep(0.005)


async def test_lowering_the_ceiling_narrows_live_tokens(make_partner: Any, hub: Hub) -> None:
    partner: PartnerClient = await make_partner(scopes="member:read points:read")
    token = await partner.token()
    _, before = await graphql_status(partner.http, token)  # and now in the token cache, on PostgreSQL
    assert before["data"]["viewer"]["scopes"] == ["member:read", "points:read"]
    since = hub.token_states.generation
    async with hub.db.write() as conn:
        await conn.execute(
            update(oauth_client)
            .where(oauth_client.c.client_id == partner.client_id)
            .values(allowed_scopes="points:read")
        )
    await heard_of_changes(hub, since)
    _, body = await graphql_status(partner.http, token)
    assert body["data"]["viewer"]["scopes"] == ["points:read"]


async def test_disabled_client_tokens_stop_working(make_partner: Any, hub: Hub) -> None:
    partner: PartnerClient = await make_partner()
    token = await partner.token()
    assert (await graphql_status(partner.http, token))[0] == 200
    since = hub.token_states.generation
    async with hub.db.write() as conn:
        await conn.execute(
            update(oauth_client).where(oauth_client.c.client_id == partner.client_id).values(status="disabled")
        )
    await heard_of_changes(hub, since)
    assert (await graphql_status(partner.http, token))[0] == 401
    refused = await partner.http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(partner.client_id, partner.client_secret)
    )
    assert refused.status_code == 401


async def test_an_operators_sql_reaches_every_process_token_cache(make_partner: Any, hub: Hub) -> None:
    """PostgreSQL: partner token state is cached per process and dropped on the triggers' notification."""
    partner: PartnerClient = await make_partner()
    token = await partner.token()
    jti = claims_of(token)[1]["jti"]
    assert (await graphql_status(partner.http, token))[0] == 200
    if hub.db.backend != "postgresql":  # no notifications, so nothing may be cached
        assert not hub.token_states.listening and hub.token_states.get(jti) is None
        return
    assert hub.token_states.listening and hub.token_states.get(jti) is not None
    since = hub.token_states.generation
    # Another connection, as an operator's psql session would be: no hub code runs.
    engine = create_engine(sync_url(hub.db.url))
    with engine.begin() as conn:
        conn.execute(text("UPDATE partner SET status = 'suspended' WHERE public_id = :id"), {"id": partner.partner_id})
    engine.dispose()
    await heard_of_changes(hub, since)
    assert hub.token_states.get(jti) is None
    assert (await graphql_status(partner.http, token))[0] == 401


async def test_a_lost_listener_turns_the_token_cache_off_until_it_is_back(make_partner: Any, hub: Hub) -> None:
    if hub.db.backend != "postgresql":
        pytest.skip("the token cache exists on PostgreSQL only")
    partner: PartnerClient = await make_partner()
    token = await partner.token()
    assert (await graphql_status(partner.http, token))[0] == 200
    assert hub.token_states.listening
    engine = create_engine(sync_url(hub.db.url))
    with engine.begin() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN %hub_token_state%'"
            )
        )
    deadline = time.monotonic() + 5
    while hub.token_states.listening:
        assert time.monotonic() < deadline, "the hub did not notice its listener had gone"
        await asyncio.sleep(0.01)
    # Nothing is cached now: a revocation no notification announced is still seen on the next request.
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE access_token SET revoked_at = now() WHERE jti = :jti"), {"jti": claims_of(token)[1]["jti"]}
        )
    engine.dispose()
    assert (await graphql_status(partner.http, token))[0] == 401
    other = await make_partner()
    while not hub.token_states.listening:  # requests bring the listener back (retried every few seconds)
        assert time.monotonic() < deadline + 10, "the listener did not come back"
        assert (await graphql_status(other.http, await other.token()))[0] == 200
        await asyncio.sleep(0.1)


async def test_issued_tokens_are_recorded_by_jti_only(make_partner: Any, hub: Hub) -> None:
    partner: PartnerClient = await make_partner()
    token = await partner.token()
    _, claims = claims_of(token)
    async with hub.db.read() as conn:
        row = (await conn.execute(select(access_token).where(access_token.c.jti == claims["jti"]))).one()
    assert token not in str(tuple(row))


# -- metadata and keys -----------------------------------------------------------------------------------------------
async def test_metadata_and_jwks(http: httpx.AsyncClient) -> None:
    meta = (await http.get("/.well-known/oauth-authorization-server")).json()
    assert meta["issuer"] == ISSUER
    assert meta["token_endpoint"] == ISSUER + "/oauth/token"
    assert "client_credentials" in meta["grant_types_supported"]
    assert set(meta["token_endpoint_auth_methods_supported"]) >= {"client_secret_basic", "client_secret_post"}
    assert "operator:admin" not in meta["scopes_supported"]
    keys = (await http.get(meta["jwks_uri"].removeprefix(ISSUER))).json()["keys"]
    assert keys and all("d" not in k for k in keys)
    assert len({k["kid"] for k in keys}) == len(keys)


async def test_metadata_passes_authlibs_own_validation_and_documents_a_page_that_exists(
    http: httpx.AsyncClient,
) -> None:
    from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

    meta = (await http.get("/.well-known/oauth-authorization-server")).json()
    AuthorizationServerMetadata(meta).validate()  # RFC 8414, as a client library checks it
    assert "private_key_jwt" in meta["revocation_endpoint_auth_methods_supported"]
    assert meta["revocation_endpoint_auth_signing_alg_values_supported"] == ["ES256", "RS256", "PS256", "EdDSA"]
    page = await http.get(meta["service_documentation"].removeprefix(ISSUER))
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for needle in ("/oauth/token", "points:redeem", "CONSENT_REQUIRED", "points.redeemed", "冻结与使用积分"):
        assert needle in page.text, needle


async def test_key_rotation_keeps_old_tokens_valid(make_partner: Any, hub: Hub) -> None:
    partner: PartnerClient = await make_partner()
    before = await partner.token()
    old_kid = claims_of(before)[0]["kid"]
    hub.keys.rotate()
    after = await partner.token()
    assert claims_of(after)[0]["kid"] != old_kid
    assert (await graphql_status(partner.http, before))[0] == 200
    assert (await graphql_status(partner.http, after))[0] == 200
    kids = {k["kid"] for k in (await partner.http.get("/.well-known/jwks.json")).json()["keys"]}
    assert {old_kid, claims_of(after)[0]["kid"]} <= kids


async def test_expired_token_records_are_purged(make_partner: Any, hub: Hub) -> None:
    from datetime import UTC, datetime, timedelta

    from hub.auth.housekeeping import purge_expired

    partner: PartnerClient = await make_partner()
    token = await partner.token()
    jti = claims_of(token)[1]["jti"]
    await purge_expired(hub.db, datetime.now(UTC))
    async with hub.db.read() as conn:
        assert await conn.scalar(select(access_token.c.jti).where(access_token.c.jti == jti)) == jti
    await purge_expired(hub.db, datetime.now(UTC) + timedelta(hours=1))
    async with hub.db.read() as conn:
        assert await conn.scalar(select(access_token.c.jti).where(access_token.c.jti == jti)) is None
    assert (await graphql_status(partner.http, token))[0] == 401


async def test_private_key_jwt_clients_store_public_keys_only(hub: Hub, make_partner: Any) -> None:
    base: PartnerClient = await make_partner()
    key = ECKey.generate_key("P-256", private=True)
    async with hub.db.write() as conn:
        created = await partners.create_client(
            conn,
            partner_public_id=base.partner_id,
            scopes=frozenset({"member:read"}),
            auth_method="private_key_jwt",
            jwks=KeySet([key]).as_dict(private=True),  # a partner sending its private key by mistake
            now=hub.clock.now(),
        )
        stored = await conn.scalar(select(oauth_client.c.jwks).where(oauth_client.c.client_id == created.client_id))
        with pytest.raises(partners.DomainError) as raised:
            await partners.create_client(
                conn,
                partner_public_id=base.partner_id,
                scopes=frozenset({"member:read"}),
                auth_method="private_key_jwt",
                jwks={"keys": [{"kty": "nonsense"}]},
                now=hub.clock.now(),
            )
    assert all("d" not in k for k in stored["keys"])
    assert raised.value.code == "INVALID_INPUT"


async def test_the_token_cache_is_bounded(make_partner: Any, hub: Hub) -> None:
    from hub.auth.token_states import MAX_ENTRIES

    if hub.db.backend != "postgresql":
        pytest.skip("the token cache exists on PostgreSQL only")
    partner: PartnerClient = await make_partner()
    assert (await graphql_status(partner.http, await partner.token()))[0] == 200
    states = hub.token_states
    assert states.listening
    for n in range(MAX_ENTRIES + 5):
        states.put(f"jti-{n}", object(), states.generation)
    assert states.get("jti-0") is None and states.get(f"jti-{MAX_ENTRIES + 4}") is not None
    states.changed()


async def test_the_token_cache_can_be_turned_off(make_partner: Any, settings: Settings) -> None:
    """HUB_TOKEN_CACHE_SECONDS=0, for a hub behind a transaction-pooling proxy where LISTEN hears nothing."""
    from dataclasses import replace

    from hub.app import create_app

    partner: PartnerClient = await make_partner()
    token = await partner.token()
    app = create_app(replace(settings, token_cache_seconds=0))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as client:
        for _ in range(2):
            assert (await graphql_status(client, token))[0] == 200
    states = app.state.hub.token_states
    await app.state.hub.close()
    assert not states.listening and states.get(claims_of(token)[1]["jti"]) is None


async def test_a_listener_that_cannot_connect_means_no_cache() -> None:
    from hub.auth.token_states import TokenStates

    states = TokenStates("postgresql://postgres@127.0.0.1:1/nowhere")  # nothing listens on port 1
    assert states.get("jti") is None  # and a connection attempt starts
    await states.close()  # waits for the attempt, which fails
    states.put("jti", object(), states.generation)
    assert not states.listening and states.get("jti") is None
