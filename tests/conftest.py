"""Test harness: a fresh database built by the migrations, the real app, real HTTP through httpx.

By default the suite runs on a new SQLite file. With HUB_DATABASE_URL pointing at a PostgreSQL server, it creates
a fresh database on that server for the run (and drops it afterwards), so `.ci/run` can run the same suite twice.
"""

from __future__ import annotations

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
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hub import migrate
from hub.app import create_app
from hub.clock import FrozenClock
from hub.config import Settings
from hub.members.phone import normalise
from hub.partners import service as partners
from hub.state import Hub

ISSUER = "http://127.0.0.1:8000"


def _postgres_database(server_url: str) -> Iterator[str]:
    url = make_url(server_url)
    name = f"hub_test_{secrets.token_hex(4)}"
    admin = create_engine(url.set(drivername="postgresql+psycopg", database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("HUB_DATABASE_URL", "")
    if configured.startswith("postgresql"):
        for url in _postgres_database(configured):
            migrate.upgrade(url)
            yield url
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'hub.sqlite3'}"
        migrate.upgrade(url)
        yield url


@pytest.fixture
def fresh_database_url(tmp_path: Path) -> Iterator[str]:
    """An empty database of the same kind as the suite's, for tests that need one to themselves."""
    configured = os.environ.get("HUB_DATABASE_URL", "")
    if configured.startswith("postgresql"):
        yield from _postgres_database(configured)
    else:
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"


class SmsGateway:
    """A real HTTP server on 127.0.0.1 standing in for the operator's SMS gateway: it keeps what it was sent."""

    def __init__(self) -> None:
        self.messages: list[dict[str, str]] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                gateway.messages.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def last_code(self, phone: str) -> str:
        for message in reversed(self.messages):
            if message["to"] == phone:
                found = re.search(r"\b(\d{6})\b", message["text"])
                assert found, message
                return found.group(1)
        raise AssertionError(f"no SMS was sent to {phone}")


@pytest.fixture(scope="session")
def sms_gateway() -> Iterator[SmsGateway]:
    gateway = SmsGateway()
    yield gateway
    gateway.server.shutdown()


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory, sms_gateway: SmsGateway) -> Settings:
    return Settings(
        database_url=database_url,
        issuer=ISSUER,
        keys_dir=tmp_path_factory.mktemp("keys"),
        sms_gateway_url=sms_gateway.url,
        webhook_allow_private=True,  # the tests' webhook receivers listen on 127.0.0.1
    )


@pytest.fixture(scope="session")
def clock() -> FrozenClock:
    """Business time for the whole run: it stands still unless a test moves it (tokens keep wall-clock time)."""
    return FrozenClock(datetime.now(UTC))


@pytest.fixture(scope="session")
async def app(settings: Settings, clock: FrozenClock) -> AsyncIterator[Any]:
    application = create_app(settings, clock=clock)
    yield application
    await application.state.hub.close()


@pytest.fixture(scope="session")
def hub(app: Any) -> Hub:
    return app.state.hub  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
async def http(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as client:
        yield client


@dataclass
class PartnerClient:
    """A partner with one OAuth client, and helpers to call the hub as it."""

    http: httpx.AsyncClient
    partner_id: str
    partner_pk: int
    client_id: str
    client_secret: str
    scopes: frozenset[str]
    sms: SmsGateway
    cached_token: str | None = None

    async def token(self, scope: str | None = None) -> str:
        data = {"grant_type": "client_credentials"}
        if scope is not None:
            data["scope"] = scope
        response = await self.http.post("/oauth/token", data=data, auth=(self.client_id, self.client_secret))
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    async def gql(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> dict[str, Any]:
        if token is None and self.cached_token is None:
            self.cached_token = await self.token()
        bearer = token or self.cached_token
        response = await self.http.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {bearer}"},
        )
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def confirm(self, member_id: str, phone: str) -> dict[str, Any]:
        """Confirm an enrolment with the code the member got by SMS, as a till does when the member wants their
        coalition membership linked. Returns confirmEnrollment's payload."""
        code = self.sms.last_code(normalise(phone, "CN"))
        confirmed = await self.gql(CONFIRM, {"input": {"memberId": member_id, "code": code}})
        assert confirmed["data"]["confirmEnrollment"]["errors"] == [], confirmed
        return confirmed["data"]["confirmEnrollment"]  # type: ignore[no-any-return]


ALL_PARTNER_SCOPES = (
    "member:read member:enroll points:read points:earn points:redeem points:reverse purchases:write "
    "purchases:read consent:read consent:request settlement:read webhooks:manage activity:write points:grant"
)


@pytest.fixture(scope="session")
def make_partner(hub: Hub, http: httpx.AsyncClient, sms_gateway: SmsGateway) -> Any:
    async def make(
        kind: str = "pharmacy_chain", scopes: str = ALL_PARTNER_SCOPES, auth_method: str = "client_secret_basic"
    ) -> PartnerClient:
        async with hub.db.write() as conn:
            partner = await partners.create_partner(
                conn, name=f"Partner {secrets.token_hex(4)}", kind=kind, now=hub.clock.now()
            )
            client = await partners.create_client(
                conn,
                partner_public_id=partner.public_id,
                scopes=frozenset(scopes.split()),
                auth_method=auth_method,
                now=hub.clock.now(),
            )
        assert client.client_secret is not None
        return PartnerClient(
            http, partner.public_id, partner.id, client.client_id, client.client_secret, client.scopes, sms_gateway
        )

    return make


@pytest.fixture(autouse=True)
def every_error_code_is_in_its_payload(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A domain error whose code a mutation's payload enum lacks is a bug, masked in production: any test that
    provokes one fails, whatever it asserted (hub/schema/errors.py logs it)."""
    yield
    unmapped = [r.getMessage() for r in caplog.records if r.name == "hub.schema.errors"]
    assert not unmapped, f"error codes missing from their payload's enum: {unmapped}"


def pytest_report_header(config: pytest.Config) -> str:
    url = os.environ.get("HUB_DATABASE_URL", "")
    chromium = shutil.which("chromium")
    return (
        f"hub database: {'PostgreSQL (fresh database per run)' if url.startswith('postgresql') else 'SQLite file'}; "
        f"browser tests: {f'Chromium at {chromium}' if chromium else 'SKIPPED, no chromium on PATH'}"
    )


ENROLL = """
mutation Enroll($input: EnrollMemberInput!) {
  enrollMember(input: $input) {
    member { id externalId name birthday memberSince }
    linkedExisting
    errors { field message code }
  }
}
"""


def enrolment(external_id: str, phone: str, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "externalId": external_id,
        "phone": phone,
        "name": "王芳",
        "birthday": "1980-05-17",
        "consent": {"permissions": ["member:read", "points:read"], "policyVersion": "2026-01", "channel": "POS"},
    }
    data.update(overrides)
    return {"input": data}


CONFIRM = """
mutation Confirm($input: ConfirmEnrollmentInput!) {
  confirmEnrollment(input: $input) {
    member { id externalId name birthday memberSince }
    linkedExisting
    errors { field message code }
  }
}
"""


async def enrol_confirmed(partner: PartnerClient, external_id: str, phone: str, **overrides: Any) -> dict[str, Any]:
    """Enrol, then confirm with the code sent to the phone. Returns confirmEnrollment's payload."""
    enrolled = await partner.gql(ENROLL, enrolment(external_id, phone, **overrides))
    payload = enrolled["data"]["enrollMember"]
    assert payload["errors"] == [], payload
    return await partner.confirm(payload["member"]["id"], phone)


def new_phone() -> str:
    return f"+86139{secrets.randbelow(10**8):08d}"


ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def live_server(env: dict[str, str], port: int) -> Iterator[str]:
    """`hub serve` as a real process on 127.0.0.1:`port`, until the block ends; yields its base URL."""
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "hub.cli", "serve", "--port", str(port)],
        env={**os.environ, "HUB_ISSUER": base, **env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise RuntimeError("hub did not start")
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)
