"""The portal in a real browser: Debian's Chromium driven by Playwright against a hub process on 127.0.0.1.

Skipped, saying so, where no Chromium is installed; `.ci/run` installs it and sets HUB_REQUIRE_BROWSER=1, which
turns the skip into a failure. Screenshots go to $HUB_SCREENSHOTS (docs/screenshots when refreshing the docs).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest

from hub.demo import DEMO_MEMBER_PHONE
from hub.partners import service as partners
from hub.state import Hub
from tests.conftest import ROOT, SmsGateway, live_server
from tests.portal_helpers import enrolled_member
from tests.test_cli import hub_cli
from tests.test_live_server import _free_port
from tests.test_purchases import buy, line
from tests.webhook_helpers import CREATE, Receiver

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REQUIRED = os.environ.get("HUB_REQUIRE_BROWSER") == "1"
_missing = not Path(CHROMIUM).exists()
if _missing and REQUIRED:
    raise RuntimeError(f"HUB_REQUIRE_BROWSER=1 but no Chromium at {CHROMIUM} (apt-get install chromium)")
pytestmark = pytest.mark.skipif(
    _missing, reason=f"browser tests skipped: no Chromium at {CHROMIUM} (Debian package 'chromium')"
)

MEMBER = "query($id: ID!) { member(id: $id) { name } }"


@pytest.fixture(scope="module")
def live(database_url: str, sms_gateway: SmsGateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {
        "HUB_DATABASE_URL": database_url,
        "HUB_KEYS_DIR": str(tmp_path_factory.mktemp("live-keys")),
        "HUB_SMS_GATEWAY_URL": sms_gateway.url,
    }
    with live_server(env, _free_port()) as base:
        yield base


@pytest.fixture(scope="module")
def callback() -> Iterator[str]:
    """The partner app's redirect URI: a real local server that just says thanks."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<p>app received the answer</p>")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/callback"
    server.shutdown()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = os.environ.get("HUB_SCREENSHOTS")
    path = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        context = await chromium.new_context(locale="en-GB", viewport={"width": 1000, "height": 800})
        yield await context.new_page()
        await chromium.close()


async def sign_in(page: Any, base: str, phone: str, gateway: SmsGateway, shots: Path | None = None) -> None:
    if not page.url.startswith(f"{base}/portal/login"):
        await page.goto(f"{base}/portal/login?lang=en")
    await page.fill("input[name=phone]", phone)
    await page.click("button[value=send]")
    await page.wait_for_selector("input[name=code]")
    if shots:
        await page.screenshot(path=str(shots / "01-sign-in.png"), full_page=True)
    await page.fill("input[name=code]", gateway.last_code(phone))
    await page.click("form[action='/portal/login'] button")
    await page.wait_for_load_state()


async def test_member_journey_in_the_browser(
    live: str, page: Any, make_partner: Any, sms_gateway: SmsGateway, shots: Path, hub: Hub
) -> None:
    pharmacy = await make_partner()
    permissions = ["member:read", "points:read", "points:earn", "purchases:write", "consent:read"]
    phone, member_id = await enrolled_member(pharmacy, permissions)
    bought = await buy(pharmacy, member_id, [line("5600.00")], hub.clock.now() - timedelta(days=30))
    assert bought["errors"] == []

    await page.goto(f"{live}/portal/login?lang=en")
    await sign_in(page, live, phone, sms_gateway, shots)
    assert await page.text_content("[data-testid=available]") == "5600"
    assert await page.text_content("[data-testid=tier]") == "银卡"
    await page.screenshot(path=str(shots / "02-home.png"), full_page=True)
    await page.click("text=中文")
    assert await page.text_content("h1") == "积分"
    await page.screenshot(path=str(shots / "02-home-zh.png"), full_page=True)
    await page.click("text=English")

    expires = (hub.clock.now() + timedelta(days=365)).isoformat()
    asked = await pharmacy.gql(
        "mutation($input: RequestConsentInput!) "
        "{ requestConsent(input: $input) { consentRequest { id } errors { code } } }",
        {
            "input": {
                "memberId": member_id,
                "permissions": ["purchases:read"],
                "purposes": ["Medication reminders"],
                "expiresAt": expires,
            }
        },
    )
    request_id = asked["data"]["requestConsent"]["consentRequest"]["id"]
    await page.goto(f"{live}/portal/consents")
    await page.screenshot(path=str(shots / "03-consents-and-requests.png"), full_page=True)
    await page.click(f"[data-request='{request_id}'] button[value=approve]")
    assert "Saved" in await page.text_content("[role=status]")

    assert (await pharmacy.gql(MEMBER, {"id": member_id}))["data"]["member"]["name"] == "王芳"
    await page.goto(f"{live}/portal/access-log")
    log = await page.text_content("table")
    assert "Read member profiles" in (log or "")
    await page.screenshot(path=str(shots / "04-access-log.png"), full_page=True)

    await page.goto(f"{live}/portal/privacy")
    await page.screenshot(path=str(shots / "05-export-and-erase.png"), full_page=True)
    async with page.expect_download() as download_info:
        await page.click("form[action='/portal/export'] button")
    download = await download_info.value
    exported = json.loads(await asyncio.to_thread(Path(await download.path()).read_text))
    assert exported["profile"]["phone"] == phone and exported["points"]["available"] == 5600

    await page.goto(f"{live}/portal/consents")
    await page.locator(".consent").first.locator("button.danger").click()
    assert "Saved" in await page.text_content("[role=status]")
    # Revoking in the portal: the partner's very next request no longer sees the member.
    assert (await pharmacy.gql(MEMBER, {"id": member_id}))["data"]["member"] is None
    await page.screenshot(path=str(shots / "06-after-revoking.png"), full_page=True)


async def test_partner_app_authorisation_in_the_browser(
    live: str, page: Any, callback: str, make_partner: Any, sms_gateway: SmsGateway, shots: Path, hub: Hub
) -> None:
    phone, _ = await enrolled_member(await make_partner())
    async with hub.db.write() as conn:
        gym = await partners.create_partner(conn, name=f"Gym {secrets.token_hex(3)}", kind="gym", now=hub.clock.now())
        app_client = await partners.create_client(
            conn,
            partner_public_id=gym.public_id,
            scopes=frozenset({"member:read", "points:read"}),
            redirect_uris=[callback],
            name="Gym app",
            now=hub.clock.now(),
        )
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": app_client.client_id,
            "redirect_uri": callback,
            "scope": "member:read points:read",
            "state": "s1",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "lang": "en",
        }
    )
    await page.goto(f"{live}/oauth/authorize?{query}")
    await sign_in(page, live, phone, sms_gateway)  # the sign-in page sends the member back to the consent screen
    await page.wait_for_selector("input[value='points:read']")
    await page.screenshot(path=str(shots / "07-consent-screen.png"), full_page=True)
    await page.uncheck("input[value='points:read']")
    await page.click("button[value=allow]")
    await page.wait_for_url(f"{callback}?*")
    answer = parse_qs(urlsplit(page.url).query)
    assert answer["state"] == ["s1"]
    async with httpx.AsyncClient() as client:
        token = await client.post(
            f"{live}/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": answer["code"][0],
                "redirect_uri": callback,
                "code_verifier": verifier,
            },
            auth=(app_client.client_id, app_client.client_secret or ""),
        )
        assert token.status_code == 200, token.text
        assert token.json()["scope"] == "member:read"
        me = await client.post(
            f"{live}/graphql",
            json={"query": "{ me { name } }"},
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        )
    assert me.json()["data"]["me"]["name"] == "王芳"


async def test_erasing_in_the_browser(
    live: str, page: Any, make_partner: Any, sms_gateway: SmsGateway, shots: Path
) -> None:
    pharmacy = await make_partner()
    phone, member_id = await enrolled_member(pharmacy)
    await page.goto(f"{live}/portal/login?lang=en")
    await sign_in(page, live, phone, sms_gateway)
    await page.goto(f"{live}/portal/privacy")
    await page.check("input[name=confirm]")
    await page.click("form[action='/portal/erase'] button")
    assert "erased" in (await page.text_content("main") or "")
    await page.screenshot(path=str(shots / "08-erased.png"), full_page=True)
    assert (await pharmacy.gql(MEMBER, {"id": member_id}))["data"]["member"] is None


async def test_linking_a_partners_enrolment_in_the_browser(
    live: str, page: Any, make_partner: Any, sms_gateway: SmsGateway, shots: Path
) -> None:
    from tests.conftest import ENROLL, enrolment
    from tests.points_helpers import EARN, POINTS, call

    pharmacy = await make_partner()
    gym = await make_partner(kind="gym")
    phone, at_pharmacy = await enrolled_member(pharmacy, ["member:read", "points:read", "points:earn"])
    assert (await call(pharmacy, EARN, memberId=at_pharmacy, points=300))["errors"] == []
    consent = {"permissions": ["member:read", "points:read"], "policyVersion": "2026-01", "channel": "POS"}
    at_gym = (await gym.gql(ENROLL, enrolment("G-LINK", phone, consent=consent)))["data"]["enrollMember"]
    assert at_gym["linkedExisting"] is False  # the gym learns nothing from the phone
    gym_id = at_gym["member"]["id"]
    assert (await gym.gql(POINTS, {"id": gym_id}))["data"]["member"]["points"]["available"] == 0

    await page.goto(f"{live}/portal/login?lang=en")
    await sign_in(page, live, phone, sms_gateway)
    assert "Memberships waiting for you to link" in (await page.text_content("main") or await page.content())
    await page.goto(f"{live}/portal/consents")
    await page.wait_for_selector("[data-claim]")
    await page.screenshot(path=str(shots / "09-link-an-enrolment.png"), full_page=True)
    await page.click("[data-claim] button[value=approve]")
    assert "Saved" in await page.text_content("[role=status]")
    assert "approved in the portal" in (await page.text_content(".merge") or "")
    assert (await gym.gql(POINTS, {"id": gym_id}))["data"]["member"]["points"]["available"] == 300


async def test_graphiql_runs_a_query_with_no_network_but_the_hub(
    database_url: str, page: Any, make_partner: Any, shots: Path, tmp_path: Path
) -> None:
    """GraphiQL's files come from the hub itself: with every request to anywhere else refused, the page loads and
    runs a query, and leaves neither the token nor anything else in the browser's storage."""
    env = {"HUB_DATABASE_URL": database_url, "HUB_KEYS_DIR": str(tmp_path / "keys"), "HUB_ENV": "development"}
    partner = await make_partner()
    with live_server(env, _free_port()) as base:
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                f"{base}/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(partner.client_id, partner.client_secret),
            )
        token = answer.json()["access_token"]
        elsewhere: list[str] = []

        async def only_the_hub(route: Any) -> None:
            if route.request.url.startswith(base + "/"):
                await route.continue_()
            else:
                elsewhere.append(route.request.url)
                await route.abort()

        await page.context.route("**/*", only_the_hub)
        await page.goto(f"{base}/graphql")
        await page.wait_for_selector(".graphiql-container", timeout=20_000)
        await page.fill("#token", token)
        await page.click(".graphiql-execute-button")
        # Locators, not evaluated scripts: the page's Content-Security-Policy allows no eval, Playwright's included.
        answer_pane = page.locator(".result-window").filter(has_text="pharmacy_chain")
        await answer_pane.wait_for(timeout=20_000)
        result = await answer_pane.text_content()
        await page.screenshot(path=str(shots / "10-graphiql-offline.png"), full_page=True)
        stored = await page.context.storage_state()
    assert elsewhere == [], elsewhere
    assert "member:read" in (result or "")
    assert stored["origins"] == [], stored  # nothing in localStorage for the hub (or anyone)


AT_RISK = "member.at_risk"
AT_RISK_AND_REPORT = """query($from: Date!, $to: Date!) {
  atRiskMembers(first: 5) { edges { node { id retention { pAlive segment atRisk } } } }
  retentionReport(from: $from, to: $to) { cohorts { month size retained } activeMembers repurchaseRate }
}"""


async def test_the_demo_coalitions_retention_from_outside(
    fresh_database_url: str, page: Any, sms_gateway: SmsGateway, shots: Path, tmp_path: Path
) -> None:
    """What an operator, the demo pharmacy and the demo member each see of retention on a freshly seeded demo:
    at-risk members and the report over GraphQL, `member.at_risk` at the pharmacy's endpoint once the worker runs,
    the report drawn as a PNG, and the member's own segment in the portal."""
    assert hub_cli(fresh_database_url, tmp_path, "db", "upgrade").returncode == 0
    seeded = hub_cli(fresh_database_url, tmp_path, "demo", "seed", "--members", "120", "--json")
    assert seeded.returncode == 0, seeded.stderr
    pharmacy = next(c for c in json.loads(seeded.stdout)["clients"] if c["kind"] == "pharmacy_chain")
    env = {
        "HUB_DATABASE_URL": fresh_database_url,
        "HUB_KEYS_DIR": str(tmp_path),
        "HUB_SMS_GATEWAY_URL": sms_gateway.url,
        "HUB_WEBHOOK_ALLOW_PRIVATE": "true",
    }
    receiver = Receiver()
    try:
        with live_server(env, _free_port()) as base:
            async with httpx.AsyncClient(base_url=base) as http:
                issued = await http.post(
                    "/oauth/token",
                    data={"grant_type": "client_credentials"},
                    auth=(pharmacy["client_id"], pharmacy["client_secret"]),
                )
                bearer = {"Authorization": f"Bearer {issued.json()['access_token']}"}
                today = date.today()
                asked = await http.post(
                    "/graphql",
                    json={
                        "query": AT_RISK_AND_REPORT,
                        "variables": {"from": (today - timedelta(days=365)).isoformat(), "to": today.isoformat()},
                    },
                    headers=bearer,
                )
                data = asked.json()["data"]
                created = await http.post(
                    "/graphql",
                    json={"query": CREATE, "variables": {"input": {"url": receiver.url, "eventTypes": [AT_RISK]}}},
                    headers=bearer,
                )
                assert created.json()["data"]["createWebhookEndpoint"]["errors"] == []
            at_risk = [e["node"] for e in data["atRiskMembers"]["edges"]]
            assert at_risk and all(n["retention"]["atRisk"] for n in at_risk)
            assert data["retentionReport"]["activeMembers"] > 0
            assert any(c["size"] for c in data["retentionReport"]["cohorts"])

            # The scores made at seeding announced the members at risk; a worker, started as an operator does,
            # delivers them behind the demo's other events.
            told = deliver_with_a_worker(env, receiver, "member.at_risk")
            assert told and all(r.json["data"]["memberId"].startswith("mbr_") for r in told)
            assert all(0 <= r.json["data"]["pAlive"] <= 1 and r.json["data"]["segment"] for r in told)

            chart = tmp_path / "retention.png"
            drawn = hub_cli(
                fresh_database_url, tmp_path, "analytics", "report", "--partner", pharmacy["partner_id"],
                "--from", (today - timedelta(days=365)).isoformat(), "--to", today.isoformat(),
                "--format", "png", "--output", str(chart),
            )  # fmt: skip
            assert drawn.returncode == 0, drawn.stderr
            assert chart.read_bytes().startswith(b"\x89PNG") and chart.stat().st_size > 10_000

            await sign_in(page, base, DEMO_MEMBER_PHONE, sms_gateway)
            segment = await page.text_content("[data-testid=profiling] [data-testid=segment]")
            await page.screenshot(path=str(shots / "11-retention-in-the-portal.png"), full_page=True)
        assert segment and segment.strip()
    finally:
        receiver.close()


def deliver_with_a_worker(env: dict[str, str], receiver: Receiver, event_type: str) -> list[Any]:
    """`hub worker` as a process until `event_type` reached the receiver (or a minute passed)."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "worker", "--interval", "60"],
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            if receiver.of_type(event_type):
                time.sleep(1)  # the rest of the batch
                break
            time.sleep(0.1)
    finally:
        worker.terminate()
        worker.wait(timeout=20)
    return receiver.of_type(event_type)


WALKTHROUGH_TILL = {
    "member": 'query { memberByExternalId(externalId: "DEMO-PH-MEMBER") { id tier { level name } } }',
    "catalogue": "{ rewards(first: 50) { edges { node { id name kind sponsorId } } } }",
    "claim": """mutation($input: ClaimRewardInput!) { claimReward(input: $input) {
      claim { id code status } errors { field message code } } }""",
    "quote": """mutation($input: QuoteBasketInput!) { quoteBasket(input: $input) {
      quote { id tier { reason } coupons { claimId amount } maxPointsToRedeem pointsToRedeem pointsValue amountToPay
              pointsEarned } errors { field message code } } }""",
    "pay": """mutation($input: RedeemPointsInput!) { redeemPoints(input: $input) {
      transaction { id points } errors { field message code } } }""",
    "redeem": """mutation($input: RedeemRewardClaimInput!) { redeemRewardClaim(input: $input) {
      claim { id status redeemedValue } errors { field message code } } }""",
    "record": """mutation($input: RecordPurchaseInput!) { recordPurchase(input: $input) {
      purchase { pointsEarned amount } errors { field message code } } }""",
    "settlement": """query($period: String!) { settlementStatement(period: $period) {
      lines { issuer { name } redeemer { name } basis points value } receivable payable } }""",
}


async def test_the_demo_rewards_walkthrough_from_outside(
    fresh_database_url: str, page: Any, sms_gateway: SmsGateway, shots: Path, tmp_path: Path
) -> None:
    """The issue's walkthrough on a freshly seeded demo: the pharmacy creates a 金卡-first limited gift; the demo
    member (金卡) claims it and the gym's health check in the portal, in Chromium; the till claims the coupon for
    them, quotes a basket with it and points as cash, pays, redeems the three claims and records the purchase; the
    month's settlement shows the gym owing the pharmacy, in GraphQL and `hub settle`, and `hub ledger verify` holds."""
    assert hub_cli(fresh_database_url, tmp_path, "db", "upgrade").returncode == 0
    seeded = hub_cli(fresh_database_url, tmp_path, "demo", "seed", "--members", "20", "--json")
    assert seeded.returncode == 0, seeded.stderr
    pharmacy = next(c for c in json.loads(seeded.stdout)["clients"] if c["kind"] == "pharmacy_chain")
    env = {
        "HUB_DATABASE_URL": fresh_database_url,
        "HUB_KEYS_DIR": str(tmp_path),
        "HUB_SMS_GATEWAY_URL": sms_gateway.url,
        "HUB_ENV": "development",  # GraphiQL, as `make run` serves it
    }
    with live_server(env, _free_port()) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            issued = await http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(pharmacy["client_id"], pharmacy["client_secret"]),
            )
            bearer = {"Authorization": f"Bearer {issued.json()['access_token']}"}

            async def gql(query: str, **variables: Any) -> dict[str, Any]:
                answer = await http.post("/graphql", json={"query": query, "variables": variables}, headers=bearer)
                data = answer.json()
                assert "errors" not in data, data
                found: dict[str, Any] = next(iter(data["data"].values()))
                assert not (isinstance(found, dict) and found.get("errors")), found
                return found

            # The pharmacy creates the gift in GraphiQL, the hub's own page, as the README shows.
            now = datetime.now(UTC)
            windows = (
                f'[{{ minTier: 3, opensAt: "{(now - timedelta(minutes=1)).isoformat()}" }}, '
                f'{{ minTier: 0, opensAt: "{(now + timedelta(days=2)).isoformat()}" }}]'
            )
            await page.goto(f"{base}/graphql")
            await page.wait_for_selector(".graphiql-container", timeout=20_000)
            await page.fill("#token", issued.json()["access_token"])
            await page.click(".graphiql-query-editor .CodeMirror")
            await page.keyboard.press("Control+A")
            await page.keyboard.press("Delete")
            await page.keyboard.insert_text(
                'mutation { createReward(input: { kind: GIFT, name: "金卡 thermos", pointsCost: 800, '
                f'faceValue: "45.00", stock: 30, memberLimit: 1, windows: {windows} }}) '
                "{ reward { id name stockLeft } errors { code } } }"
            )
            await page.keyboard.press("Shift+Control+P")  # GraphiQL's prettify, for the screenshot
            await page.keyboard.press("Escape")  # and no completion menu over it
            await page.click(".graphiql-execute-button")
            created = page.locator(".result-window").filter(has_text="rwd_")
            await created.wait_for(timeout=20_000)
            await page.screenshot(path=str(shots / "12-a-reward-created-in-graphiql.png"), full_page=True)
            found = re.search(r'"id": "(rwd_[^"]+)"', await created.text_content() or "")
            assert found, await created.text_content()
            gift = found.group(1)
            member = await gql(WALKTHROUGH_TILL["member"])
            assert member["tier"] == {"level": 3, "name": "金卡"}

            await sign_in(page, base, DEMO_MEMBER_PHONE, sms_gateway)
            await page.goto(f"{base}/portal/rewards?lang=en")
            check = page.locator("[data-reward]").filter(has_text="Body composition check")
            for reward in (f"[data-reward='{gift}']", check):
                locator = page.locator(reward) if isinstance(reward, str) else reward
                await locator.locator("button").click()
                await page.wait_for_load_state()
            codes_shown = await page.locator("tr.claim code").all_text_contents()
            await page.screenshot(path=str(shots / "13-rewards-in-the-portal.png"), full_page=True)
            assert len(codes_shown) == 2 and all(len(c) == 13 for c in codes_shown)

            catalogue = (await gql(WALKTHROUGH_TILL["catalogue"]))["edges"]
            coupon = next(e["node"]["id"] for e in catalogue if e["node"]["kind"] == "COUPON")
            claimed = await gql(
                WALKTHROUGH_TILL["claim"],
                input={"memberId": member["id"], "rewardId": coupon, "idempotencyKey": "walk-coupon"},
            )
            basket = {
                "memberId": member["id"],
                "storeId": "DEMO-STORE-1",
                "lines": [
                    {"sku": "VIT-D", "category": "vitamins", "amount": "128.00"},
                    {"sku": "RX-9", "category": "rx", "amount": "66.00", "prescription": True},
                ],
                "couponCodes": [claimed["claim"]["code"]],
            }
            first = (await gql(WALKTHROUGH_TILL["quote"], input=basket))["quote"]
            quote = (
                await gql(WALKTHROUGH_TILL["quote"], input={**basket, "pointsToRedeem": first["maxPointsToRedeem"]})
            )["quote"]
            assert "7折" in quote["tier"]["reason"] and quote["coupons"][0]["amount"] == "20.00"
            await gql(
                WALKTHROUGH_TILL["pay"],
                input={
                    "memberId": member["id"],
                    "points": quote["pointsToRedeem"],
                    "quoteId": quote["id"],
                    "idempotencyKey": "walk-pay",
                },
            )
            for code, key in [
                (claimed["claim"]["code"], "walk-c"),
                *((c, f"walk-{i}") for i, c in enumerate(codes_shown)),
            ]:
                redeemed = await gql(
                    WALKTHROUGH_TILL["redeem"],
                    input={
                        "code": code,
                        "orderReference": "WALK-1",
                        "idempotencyKey": key,
                        **({"quoteId": quote["id"]} if key == "walk-c" else {}),
                    },
                )
                assert redeemed["claim"]["status"] == "REDEEMED"
            recorded = await gql(
                WALKTHROUGH_TILL["record"],
                input={
                    "memberId": member["id"],
                    "reference": "WALK-1",
                    "occurredAt": now.isoformat(),
                    "storeId": "DEMO-STORE-1",
                    "lines": basket["lines"],
                    "quoteId": quote["id"],
                    "idempotencyKey": "walk-record",
                },
            )
            assert recorded["purchase"]["pointsEarned"] == quote["pointsEarned"]
            assert recorded["purchase"]["amount"] == quote["amountToPay"]

            period = now.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
            statement = await gql(WALKTHROUGH_TILL["settlement"], period=period)
        sponsor = [x for x in statement["lines"] if x["basis"] == "REWARD_SPONSOR"]
        assert [(x["issuer"]["name"], x["redeemer"]["name"], x["value"]) for x in sponsor] == [
            ("Leap Fitness", "Kangjian Pharmacy", "55.00")
        ]  # the gym's 60-yuan check paid with 500 of the pharmacy's own points (5 yuan): the gym owes the rest
        settled = hub_cli(fresh_database_url, tmp_path, "settle", "--period", period, "--format", "csv")
        assert settled.returncode == 0 and "REWARD_SPONSOR" in settled.stdout, settled.stderr
        verified = hub_cli(fresh_database_url, tmp_path, "ledger", "verify")
        assert verified.returncode == 0, verified.stdout
