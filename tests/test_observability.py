"""What the operator sees: /metrics read by Prometheus' own text parser, /readyz, one JSON log line per request
(parsed as JSON, from a real `hub serve`), security events at warning, no tracebacks for clients' mistakes, no
secrets in the log, and OpenTelemetry spans exported to a real OTLP/HTTP receiver."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub.app import create_app
from tests.conftest import ROOT, PartnerClient
from tests.points_helpers import EARN, call, enrol_member
from tests.test_live_server import _free_port


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, by (name, labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(settings: Any, clock: Any) -> httpx.Response:
    """/metrics as the operator's Prometheus reads it (the counters are the process's, whichever app serves them)."""
    operator = create_app(dataclasses.replace(settings, metrics_token="op-token"), clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=operator), base_url=settings.issuer) as client:
        return await client.get("/metrics", headers={"Authorization": "Bearer op-token"})


async def test_metrics_count_what_partners_do(
    settings: Any, clock: Any, http: httpx.AsyncClient, make_partner: Any
) -> None:
    before = samples((await scrape(settings, clock)).text)
    partner: PartnerClient = await make_partner()
    member = await enrol_member(partner)
    await call(partner, EARN, memberId=member, points=5)
    named = await partner.gql("query PosLookup($id: ID!) { member(id: $id) { id } }", {"id": member})
    assert named["data"]["member"]["id"] == member
    await partner.gql("query Refused { settlementStatement(period: 5) { net } }")  # not valid: period is a String
    refused = await http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(partner.client_id, "no"))
    assert refused.status_code == 401
    bad = await http.post(
        "/graphql", json={"query": "{ viewer { scopes } }"}, headers={"Authorization": "Bearer x.y.z"}
    )
    assert bad.status_code == 401

    response = await scrape(settings, clock)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    after = samples(response.text)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("hub_graphql_operations_total", operation="PosLookup", outcome="ok") == 1
    assert grew("hub_graphql_errors_total", operation="Refused", code="GRAPHQL_VALIDATION_FAILED") == 1
    assert grew("hub_graphql_operation_duration_seconds_count", operation="PosLookup") == 1
    assert grew("hub_oauth_tokens_issued_total", grant_type="client_credentials") >= 1
    assert grew("hub_oauth_token_refusals_total", error="invalid_client") == 1
    assert grew("hub_bearer_refusals_total", reason="invalid_token") == 1
    assert grew("hub_ledger_commands_total", command="earn", outcome="ok") == 1
    assert grew("hub_http_requests_total", method="POST", route="/graphql", status="200") >= 3
    assert grew("hub_http_request_duration_seconds_count", route="/oauth/token") >= 2
    assert ("hub_db_pool_connections", (("pool", "transactions"), ("state", "idle"))) in after


async def test_metrics_are_for_the_operator_only(settings: Any, clock: Any) -> None:
    for token, headers, status in (
        (None, {}, 404),  # production with no token configured: no metrics at all
        ("op-secret-1", {}, 404),
        ("op-secret-1", {"Authorization": "Bearer wrong"}, 404),
        ("op-secret-1", {"Authorization": "Bearer op-secret-1"}, 200),
    ):
        production = dataclasses.replace(settings, env="production", metrics_token=token)
        app = create_app(production, clock=clock)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=settings.issuer) as client:
            assert (await client.get("/metrics", headers=headers)).status_code == status


async def test_ready_only_when_the_database_answers(settings: Any, clock: Any, tmp_path: Path) -> None:
    for url, status in ((settings.database_url, 200), (f"sqlite:///{tmp_path}/no/such/dir/hub.sqlite3", 503)):
        app = create_app(dataclasses.replace(settings, database_url=url), clock=clock)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=settings.issuer) as client:
            answer = await client.get("/readyz")
            assert answer.status_code == status, answer.text
            assert (await client.get("/healthz")).status_code == 200  # alive either way


@contextmanager
def served(env: dict[str, str], log: Path) -> Iterator[str]:
    """`hub serve` as a real process, its stderr (the log) into a file."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with log.open("w") as sink:
        server = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "hub.cli", "serve", "--port", str(port)],
            env={**os.environ, "HUB_ISSUER": base, **env},
            cwd=ROOT,
            stdout=sink,
            stderr=sink,
        )
        try:
            for _ in range(150):
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            yield base
        finally:
            server.terminate()
            server.wait(timeout=20)


async def test_one_json_line_a_request_and_security_events_at_warning(
    database_url: str, make_partner: Any, tmp_path: Path
) -> None:
    partner: PartnerClient = await make_partner()
    log = tmp_path / "hub.log"
    env = {"HUB_DATABASE_URL": database_url, "HUB_KEYS_DIR": str(tmp_path / "keys"), "HUB_LOG_FORMAT": "json"}
    with served(env, log) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            secret = (partner.client_id, partner.client_secret)
            token = (await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=secret)).json()
            bearer = token["access_token"]
            ids = [f"pos-{i}" for i in range(10)]
            for request_id in ids:
                answer = await client.post(
                    "/graphql",
                    json={"query": "query Viewer { viewer { scopes } }", "operationName": "Viewer"},
                    headers={"Authorization": f"Bearer {bearer}", "X-Request-ID": request_id},
                )
                assert answer.status_code == 200 and answer.headers["x-request-id"] == request_id
            wrong = await client.post(
                "/oauth/token", data={"grant_type": "client_credentials"}, auth=(partner.client_id, "x")
            )
            assert wrong.status_code == 401 and re.fullmatch(r"[0-9a-f]{16}", wrong.headers["x-request-id"])
            anonymous = await client.post("/graphql", json={"query": "{ viewer { scopes } }"})
            assert anonymous.status_code == 401
            forged = await client.post(
                "/graphql", json={"query": "{ viewer { scopes } }"}, headers={"Authorization": "Bearer not.a.token"}
            )
            assert forged.status_code == 401
    text = log.read_text()
    assert all(line.startswith("{") for line in text.splitlines() if line.strip()), text[:3000]
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    requests = [line for line in lines if line["message"] == "request"]
    graphql = [r for r in requests if r.get("request_id") in ids]
    assert len(graphql) == 10, requests
    for line in graphql:
        assert line["method"] == "POST" and line["path"] == "/graphql" and line["status"] == 200
        assert line["client_id"] == partner.client_id and line["operation"] == "Viewer"
        assert isinstance(line["duration_ms"], float) and line["level"] == "INFO"
    warnings = [line for line in lines if line["level"] == "WARNING"]
    assert {w.get("security") for w in warnings} >= {"invalid_client", "invalid_token"}, warnings
    assert "Traceback" not in text and "exc_info" not in text
    for secret_text in (partner.client_secret, bearer, "not.a.token"):
        assert secret_text not in text


@pytest.fixture
def otlp_receiver() -> Iterator[tuple[str, list[bytes]]]:
    """A real OTLP/HTTP endpoint: keeps the bodies POSTed to /v1/traces."""
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path == "/v1/traces":
                received.append(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()


async def test_traces_go_to_the_otlp_endpoint_the_environment_names(
    database_url: str, make_partner: Any, tmp_path: Path, otlp_receiver: tuple[str, list[bytes]]
) -> None:
    endpoint, received = otlp_receiver
    partner: PartnerClient = await make_partner()
    env = {
        "HUB_DATABASE_URL": database_url,
        "HUB_KEYS_DIR": str(tmp_path / "keys"),
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_SERVICE_NAME": "hub-under-test",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    with served(env, tmp_path / "hub.log") as base:
        async with httpx.AsyncClient(base_url=base) as client:
            secret = (partner.client_id, partner.client_secret)
            token = (await client.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=secret)).json()
            answer = await client.post(
                "/graphql",
                json={"query": "query Traced { viewer { scopes } }"},
                headers={"Authorization": f"Bearer {token['access_token']}"},
            )
            assert answer.status_code == 200
        for _ in range(50):  # the spans arrive in batches, every 100 ms
            if all(needle in b"".join(received) for needle in (b"Traced", b"SELECT")):
                break
            await asyncio.sleep(0.1)
    spans = b"".join(received)
    assert b"hub-under-test" in spans  # the resource's service.name
    assert b"POST /graphql" in spans  # the request (ASGI)
    assert b"Traced" in spans  # the operation (strawberry)
    assert b"SELECT" in spans  # a statement (SQLAlchemy)
