"""A partner's webhook receiver as a real HTTP server on 127.0.0.1, and helpers to drive the hub's delivery."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook

from hub.state import Hub
from hub.webhooks import delivery, transport
from tests.conftest import PartnerClient


@dataclass
class Received:
    headers: dict[str, str]
    body: str

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]

    def verify(self, secret: str) -> dict[str, Any]:
        """As a partner verifies: the standardwebhooks library, the raw body and the three headers."""
        return Webhook(secret).verify(self.body, self.headers)  # type: ignore[no-any-return]


@dataclass
class Receiver:
    """Answers with `respond(received) -> (status, headers, body)`; 200 by default. Keeps what it was sent."""

    respond: Callable[[Received], tuple[int, dict[str, str], bytes]] = lambda r: (200, {}, b"ok")
    port: int = 0  # 0: any free port
    got: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                received = Received({k.lower(): v for k, v in self.headers.items()}, body)
                receiver.got.append(received)
                status, headers, content = receiver.respond(received)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of_type(self, event_type: str) -> list[Received]:
        return [r for r in self.got if r.json["type"] == event_type]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


CREATE = """mutation($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { endpoint { id url eventTypes enabled } secret errors { field code } }
}"""
ENDPOINTS = """query($first: Int!, $status: WebhookDeliveryStatus) { webhookEndpoints { id enabled disabledReason
  deliveries(first: $first, status: $status) { edges { cursor node { id eventId eventType attempt status
  responseStatus durationMs error nextAttemptAt at } } pageInfo { hasNextPage endCursor } } } }"""


async def endpoint(partner: PartnerClient, url: str, event_types: list[str]) -> tuple[str, str]:
    """Register an endpoint; returns its id and signing secret."""
    created = await partner.gql(CREATE, {"input": {"url": url, "eventTypes": event_types}})
    payload = created["data"]["createWebhookEndpoint"]
    assert payload["errors"] == [], payload
    return payload["endpoint"]["id"], payload["secret"]


async def deliver(hub: Hub, rounds: int = 50) -> int:
    """Fan out every event waiting and send every delivery due now, as `hub worker` does; how many were sent."""
    sent = 0
    async with transport.new_client(allow_private=True) as client:
        dispatcher = delivery.Dispatcher(hub.db, hub.webhook_key, client, allow_private=True)
        for _ in range(rounds):
            now = hub.clock.now()
            while await delivery.fan_out(hub.db, hub.webhook_key, now):
                pass
            batch = await dispatcher.dispatch(now)
            sent += batch
            if not batch:
                break
    return sent


def wait_for(check: Callable[[], bool], seconds: float = 5.0) -> float:
    """Poll until `check()`; returns how long it took (fails the test past `seconds`)."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > seconds:
            raise AssertionError("timed out")
        time.sleep(0.01)
    return time.monotonic() - started
