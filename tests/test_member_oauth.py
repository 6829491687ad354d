"""Partner apps acting for a member: authorization code + PKCE, the consent screen, refresh, and the checklist of
reference/auth.md §d, all through HTTP."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt as jose_jwt

from hub.clock import FrozenClock
from hub.state import Hub
from tests.conftest import ISSUER, SmsGateway
from tests.portal_helpers import REDIRECT_URI, MemberBrowser, PartnerApp, browser, csrf_of, enrolled_member, partner_app

ME = "{ me { id name points { available } } }"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(app: PartnerApp, challenge: str | None, **overrides: str) -> str:
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "member:read points:read",
        "state": "st-" + secrets.token_hex(4),
    }
    if challenge is not None:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    params.update(overrides)
    return "/oauth/authorize?" + urlencode({k: v for k, v in params.items() if v != ""})


async def approve(member: MemberBrowser, url: str, permissions: list[str] | None = None) -> httpx.Response:
    """The member opens the consent screen and allows (the ticked permissions, or everything asked)."""
    screen = await member.http.get(url)
    assert screen.status_code == 200, screen.text
    chosen = permissions if permissions is not None else parse_qs(urlsplit(url).query)["scope"][0].split()
    return await member.http.post(
        url, data={"csrf_token": csrf_of(screen.text), "permission": chosen, "decision": "allow"}
    )


def code_of(response: httpx.Response) -> str:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI + "?"), location
    return parse_qs(urlsplit(location).query)["code"][0]


async def exchange(
    http: httpx.AsyncClient, app: PartnerApp, code: str, verifier: str, **overrides: str
) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": verifier}
    data.update(overrides)
    return await http.post("/oauth/token", data=data, auth=(app.client_id, app.client_secret))


async def refresh(http: httpx.AsyncClient, app: PartnerApp, token: str, **extra: str) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": token, **extra}
    return await http.post("/oauth/token", data=data, auth=(app.client_id, app.client_secret))


async def gql(
    http: httpx.AsyncClient, token: str, query: str, variables: dict[str, Any] | None = None
) -> httpx.Response:
    return await http.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers={"Authorization": f"Bearer {token}"}
    )


@pytest.fixture
async def signed_in(app: Any, make_partner: Any, sms_gateway: SmsGateway) -> MemberBrowser:
    pharmacy = await make_partner()
    phone, _ = await enrolled_member(pharmacy)
    member = browser(app, phone)
    await member.sign_in(sms_gateway)
    return member


async def tokens_for(member: MemberBrowser, http: httpx.AsyncClient, app: PartnerApp, **kwargs: Any) -> dict[str, Any]:
    verifier, challenge = pkce()
    code = code_of(await approve(member, authorize_url(app, challenge), **kwargs))
    response = await exchange(http, app, code, verifier)
    assert response.status_code == 200, response.text
    return dict(response.json())


# -- the whole flow with an off-the-shelf client --------------------------------------------------------------------
async def test_authlib_client_does_code_and_pkce_through_discovery(
    app: Any, hub: Hub, http: httpx.AsyncClient, signed_in: MemberBrowser
) -> None:
    partner = await partner_app(hub)
    metadata = (await http.get("/.well-known/oauth-authorization-server")).json()
    assert metadata["issuer"] == ISSUER
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert "authorization_code" in metadata["grant_types_supported"]
    async with AsyncOAuth2Client(
        client_id=partner.client_id,
        client_secret=partner.client_secret,
        scope="member:read points:read",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        transport=httpx.ASGITransport(app=app),
        base_url=ISSUER,
    ) as oauth:
        verifier = secrets.token_urlsafe(48)
        url, state = oauth.create_authorization_url(metadata["authorization_endpoint"], code_verifier=verifier)
        path = url.removeprefix(ISSUER)
        # The member unticks points:read on the consent screen: only member:read reaches the code and the token.
        answer = await approve(signed_in, path, permissions=["member:read"])
        location = answer.headers["location"]
        assert parse_qs(urlsplit(location).query)["state"] == [state]
        token = await oauth.fetch_token(
            metadata["token_endpoint"], authorization_response=location, code_verifier=verifier
        )
    assert token["scope"] == "member:read"
    assert token["refresh_token"].startswith("hub_rt_")
    claims = jose_jwt.decode(token["access_token"], hub.keys.public_keys).claims
    assert claims["sub"].startswith("mbr_") and claims["consent_id"].startswith("cns_")
    assert claims["client_id"] == partner.client_id

    me = (await gql(http, token["access_token"], ME)).json()
    assert me["data"]["me"]["id"] == claims["sub"]
    assert me["data"]["me"]["name"] == "王芳"
    assert me["data"]["me"]["points"] is None  # not approved by the member
    assert me["errors"][0]["extensions"]["code"] == "CONSENT_REQUIRED"


async def test_refresh_rotates_and_cannot_widen(hub: Hub, http: httpx.AsyncClient, signed_in: MemberBrowser) -> None:
    partner = await partner_app(hub)
    first = await tokens_for(signed_in, http, partner, permissions=["member:read"])
    wider = await refresh(http, partner, first["refresh_token"], scope="member:read points:read")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"

    second = await refresh(http, partner, first["refresh_token"])
    assert second.status_code == 200, second.text
    assert second.json()["scope"] == "member:read"
    assert second.json()["refresh_token"] != first["refresh_token"]

    # The rotated-out token comes back: someone kept a copy. The whole grant ends, including the new tokens.
    replay = await refresh(http, partner, first["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert (await gql(http, second.json()["access_token"], ME)).status_code == 401
    assert (await refresh(http, partner, second.json()["refresh_token"])).json()["error"] == "invalid_grant"


async def test_revoking_in_the_portal_stops_the_next_request_and_refresh(
    hub: Hub, http: httpx.AsyncClient, signed_in: MemberBrowser
) -> None:
    partner = await partner_app(hub)
    token = await tokens_for(signed_in, http, partner)
    assert (await gql(http, token["access_token"], ME)).json()["data"]["me"]["name"] == "王芳"
    consent_id = jose_jwt.decode(token["access_token"], hub.keys.public_keys).claims["consent_id"]

    revoked = await signed_in.post(f"/portal/consents/{consent_id}/revoke")
    assert revoked.status_code == 303, revoked.text

    after = await gql(http, token["access_token"], ME)
    assert after.status_code == 401
    assert after.json()["errors"][0]["extensions"]["code"] == "INVALID_TOKEN"
    assert (await refresh(http, partner, token["refresh_token"])).json()["error"] == "invalid_grant"


async def test_narrowing_in_the_portal_narrows_the_next_refresh(
    hub: Hub, http: httpx.AsyncClient, signed_in: MemberBrowser
) -> None:
    partner = await partner_app(hub)
    token = await tokens_for(signed_in, http, partner)
    assert token["scope"] == "member:read points:read"
    consent_id = jose_jwt.decode(token["access_token"], hub.keys.public_keys).claims["consent_id"]
    narrowed = await signed_in.post(f"/portal/consents/{consent_id}/narrow", {"permission": ["member:read"]})
    assert narrowed.status_code == 303, narrowed.text

    # The existing access token loses points:read on its very next request...
    points = (await gql(http, token["access_token"], "{ me { points { available } } }")).json()
    assert points["data"]["me"]["points"] is None
    # ... and the refreshed one no longer carries it.
    renewed = await refresh(http, partner, token["refresh_token"])
    assert renewed.json()["scope"] == "member:read"


# -- PKCE, codes and redirect URIs ------------------------------------------------------------------------------------
async def test_pkce_is_required_and_plain_is_refused(hub: Hub, signed_in: MemberBrowser) -> None:
    partner = await partner_app(hub)
    for url in (
        authorize_url(partner, None),
        authorize_url(partner, "x" * 43, code_challenge_method="plain"),
        authorize_url(partner, "x" * 43, code_challenge_method=""),
    ):
        response = await signed_in.http.get(url)
        assert response.status_code == 302, response.text
        query = parse_qs(urlsplit(response.headers["location"]).query)
        assert query["error"] == ["invalid_request"], query
        assert "state" in query


async def test_wrong_verifier_other_client_other_redirect_fail(
    hub: Hub, http: httpx.AsyncClient, signed_in: MemberBrowser
) -> None:
    partner, other = await partner_app(hub), await partner_app(hub)
    verifier, challenge = pkce()
    code = code_of(await approve(signed_in, authorize_url(partner, challenge)))
    wrong_verifier = await exchange(http, partner, code, pkce()[0])
    assert wrong_verifier.json()["error"] == "invalid_grant"

    code = code_of(await approve(signed_in, authorize_url(partner, challenge)))
    assert (await exchange(http, other, code, verifier)).json()["error"] == "invalid_grant"
    assert (await exchange(http, partner, code, verifier, redirect_uri=REDIRECT_URI + "x")).json()[
        "error"
    ] == "invalid_grant"
    missing = await exchange(http, partner, code, "")
    assert missing.status_code == 400


async def test_code_reuse_fails_and_revokes_what_the_code_produced(
    hub: Hub, http: httpx.AsyncClient, signed_in: MemberBrowser
) -> None:
    partner = await partner_app(hub)
    verifier, challenge = pkce()
    code = code_of(await approve(signed_in, authorize_url(partner, challenge)))
    first = await exchange(http, partner, code, verifier)
    assert first.status_code == 200
    again = await exchange(http, partner, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert (await gql(http, first.json()["access_token"], ME)).status_code == 401
    assert (await refresh(http, partner, first.json()["refresh_token"])).json()["error"] == "invalid_grant"


async def test_code_lives_sixty_seconds(
    hub: Hub, http: httpx.AsyncClient, signed_in: MemberBrowser, clock: FrozenClock
) -> None:
    partner = await partner_app(hub)
    verifier, challenge = pkce()
    code = code_of(await approve(signed_in, authorize_url(partner, challenge)))
    clock.advance(seconds=61)
    assert (await exchange(http, partner, code, verifier)).json()["error"] == "invalid_grant"


async def test_redirect_uri_errors_are_shown_not_redirected(hub: Hub, signed_in: MemberBrowser) -> None:
    partner = await partner_app(hub)
    _, challenge = pkce()
    for url in (
        authorize_url(partner, challenge, redirect_uri="https://evil.example/callback"),
        authorize_url(partner, challenge, redirect_uri=REDIRECT_URI + "/"),
        authorize_url(partner, challenge, redirect_uri=""),
        authorize_url(partner, challenge, client_id="hub_ci_unknown"),
        authorize_url(partner, challenge) + "&redirect_uri=" + REDIRECT_URI,
    ):
        response = await signed_in.http.get(url)
        assert response.status_code == 400, (url, response.status_code)
        assert "location" not in response.headers


async def test_scope_beyond_the_ceiling_is_refused(hub: Hub, signed_in: MemberBrowser) -> None:
    partner = await partner_app(hub, scopes="member:read")
    _, challenge = pkce()
    response = await signed_in.http.get(authorize_url(partner, challenge, scope="member:read points:read"))
    assert parse_qs(urlsplit(response.headers["location"]).query)["error"] == ["invalid_scope"]


async def test_consent_screen_rejects_permissions_not_requested(hub: Hub, signed_in: MemberBrowser) -> None:
    partner = await partner_app(hub, scopes="member:read points:read consent:read")
    _, challenge = pkce()
    url = authorize_url(partner, challenge, scope="member:read")
    response = await approve(signed_in, url, permissions=["member:read", "points:read"])
    assert response.status_code == 400
    assert "location" not in response.headers


async def test_denying_redirects_with_access_denied(hub: Hub, signed_in: MemberBrowser) -> None:
    partner = await partner_app(hub)
    _, challenge = pkce()
    url = authorize_url(partner, challenge)
    screen = await signed_in.http.get(url)
    response = await signed_in.http.post(url, data={"csrf_token": csrf_of(screen.text), "decision": "deny"})
    assert response.status_code == 302
    assert parse_qs(urlsplit(response.headers["location"]).query)["error"] == ["access_denied"]


async def test_consent_screen_needs_sign_in_and_csrf(app: Any, hub: Hub, signed_in: MemberBrowser) -> None:
    partner = await partner_app(hub)
    _, challenge = pkce()
    url = authorize_url(partner, challenge)
    stranger = browser(app, "+8613900000000")
    to_login = await stranger.http.get(url)
    assert to_login.status_code == 303 and to_login.headers["location"].startswith("/portal/login?next=")
    forged = await signed_in.http.post(
        url, data={"csrf_token": "forged", "permission": ["member:read"], "decision": "allow"}
    )
    assert forged.status_code == 403
    assert forged.headers["x-frame-options"] == "DENY"


# -- token confusion --------------------------------------------------------------------------------------------------
async def test_member_token_reaches_only_me_and_partner_token_not_me(
    hub: Hub, http: httpx.AsyncClient, signed_in: MemberBrowser, make_partner: Any
) -> None:
    partner = await partner_app(hub)
    token = await tokens_for(signed_in, http, partner)
    sub = jose_jwt.decode(token["access_token"], hub.keys.public_keys).claims["sub"]
    as_partner = (
        await gql(http, token["access_token"], "query($id: ID!) { member(id: $id) { id } }", {"id": sub})
    ).json()
    assert as_partner["data"] is None or as_partner["data"]["member"] is None
    assert as_partner["errors"][0]["extensions"]["code"] == "PARTNER_TOKEN_REQUIRED"
    entities = (
        await gql(
            http,
            token["access_token"],
            "query($r: [_Any!]!) { _entities(representations: $r) { ... on Member { id } } }",
            {"r": [{"__typename": "Member", "id": sub}]},
        )
    ).json()
    assert entities["data"]["_entities"] == [None]

    pharmacy = await make_partner()
    me = await pharmacy.gql(ME)
    assert me["errors"][0]["extensions"]["code"] == "MEMBER_TOKEN_REQUIRED"

    # A refresh token or an authorization code is not a bearer token.
    assert (await gql(http, token["refresh_token"], ME)).status_code == 401


async def test_revoking_a_refresh_token_ends_the_grant(
    hub: Hub, http: httpx.AsyncClient, signed_in: MemberBrowser
) -> None:
    partner, other = await partner_app(hub), await partner_app(hub)
    token = await tokens_for(signed_in, http, partner)
    # Another client cannot revoke it: refused (RFC 7009 §2.1), and nothing changes.
    foreign = await http.post(
        "/oauth/revoke", data={"token": token["refresh_token"]}, auth=(other.client_id, other.client_secret)
    )
    assert foreign.status_code == 400 and foreign.json()["error"] == "invalid_grant"
    assert (await gql(http, token["access_token"], ME)).status_code == 200

    revoked = await http.post(
        "/oauth/revoke",
        data={"token": token["refresh_token"], "token_type_hint": "refresh_token"},
        auth=(partner.client_id, partner.client_secret),
    )
    assert revoked.status_code == 200
    assert (await gql(http, token["access_token"], ME)).status_code == 401
    assert (await refresh(http, partner, token["refresh_token"])).json()["error"] == "invalid_grant"


async def test_erasure_ends_member_tokens(hub: Hub, http: httpx.AsyncClient, signed_in: MemberBrowser) -> None:
    partner = await partner_app(hub)
    token = await tokens_for(signed_in, http, partner)
    assert (await gql(http, token["access_token"], ME)).status_code == 200
    erased = await signed_in.post("/portal/erase", {"confirm": "yes"})
    assert erased.status_code == 200
    assert (await gql(http, token["access_token"], ME)).status_code == 401
    assert (await refresh(http, partner, token["refresh_token"])).json()["error"] == "invalid_grant"
