"""A member with a browser-like HTTP client (its own cookie jar), and partner apps that act for members."""

from __future__ import annotations

import html
import re
import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from hub.partners import service as partners
from hub.state import Hub
from tests.conftest import ENROLL, ISSUER, PartnerClient, SmsGateway, enrolment, new_phone

REDIRECT_URI = "http://127.0.0.1:9999/callback"


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page[:2000]
    return html.unescape(found.group(1))


@dataclass
class MemberBrowser:
    http: httpx.AsyncClient
    phone: str

    async def request_code(self) -> httpx.Response:
        page = await self.http.get("/portal/login")
        assert page.status_code == 200, page.text
        return await self.http.post(
            "/portal/login/code", data={"csrf_token": csrf_of(page.text), "phone": self.phone, "next": "/portal"}
        )

    async def sign_in(self, gateway: SmsGateway) -> None:
        sent = await self.request_code()
        assert sent.status_code == 200, sent.text
        response = await self.http.post(
            "/portal/login",
            data={
                "csrf_token": csrf_of(sent.text),
                "phone": self.phone,
                "code": gateway.last_code(self.phone),
                "next": "/portal",
            },
        )
        assert response.status_code == 303, response.text
        assert "hub_session" in self.http.cookies

    async def page_csrf(self, path: str = "/portal") -> str:
        page = await self.http.get(path)
        assert page.status_code == 200, page.text
        return csrf_of(page.text)

    async def post(self, path: str, data: dict[str, Any] | None = None) -> httpx.Response:
        return await self.http.post(path, data={"csrf_token": await self.page_csrf(), **(data or {})})


def browser(app: Any, phone: str) -> MemberBrowser:
    # Each browser its own address, as members' phones have: the per-IP sign-in limit is not shared by the suite.
    address = f"198.18.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    client = httpx.AsyncClient(transport=transport, base_url=ISSUER, follow_redirects=False)
    return MemberBrowser(client, phone)


async def enrolled_member(partner: PartnerClient, permissions: list[str] | None = None) -> tuple[str, str]:
    """Enrol a new member at the partner; returns (phone, the partner's pairwise id)."""
    phone = new_phone()
    variables = enrolment(f"ext-{secrets.token_hex(4)}", phone)
    if permissions is not None:
        variables["input"]["consent"]["permissions"] = permissions
    result = await partner.gql(ENROLL, variables)
    assert result["data"]["enrollMember"]["errors"] == [], result
    return phone, result["data"]["enrollMember"]["member"]["id"]


@dataclass
class PartnerApp:
    """A partner's app registered for the authorization code grant (a confidential client with a redirect URI)."""

    partner_id: str
    partner_pk: int
    client_id: str
    client_secret: str


async def partner_app(hub: Hub, scopes: str = "member:read points:read consent:read") -> PartnerApp:
    async with hub.db.write() as conn:
        owner = await partners.create_partner(conn, name=f"App {secrets.token_hex(4)}", kind="gym", now=hub.clock.now())
        client = await partners.create_client(
            conn,
            partner_public_id=owner.public_id,
            scopes=frozenset(scopes.split()),
            redirect_uris=[REDIRECT_URI],
            name="Fitness app",
            now=hub.clock.now(),
        )
    assert client.client_secret is not None
    return PartnerApp(owner.public_id, owner.id, client.client_id, client.client_secret)
