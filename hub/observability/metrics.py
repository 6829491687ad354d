"""Prometheus metrics (prometheus_client). The hub's processes count in their own registry; with several
`hub serve` workers, PROMETHEUS_MULTIPROC_DIR (set by `hub serve --workers N`) makes `/metrics` add them up.

`/metrics` is for the operator, never for partners: it answers only with `Authorization: Bearer
$HUB_METRICS_TOKEN` (compared in constant time), or, with no token configured, only in development.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

if TYPE_CHECKING:
    from hub.db import Database

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter("hub_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
HTTP_LATENCY = Histogram("hub_http_request_duration_seconds", "Time to answer a request", ["route"], buckets=_LATENCY)
GRAPHQL_OPERATIONS = Counter(
    "hub_graphql_operations_total",
    "GraphQL operations executed, by outcome (ok, partial, error)",
    ["operation", "outcome"],
)
GRAPHQL_ERRORS = Counter("hub_graphql_errors_total", "GraphQL errors answered, by code", ["operation", "code"])
GRAPHQL_LATENCY = Histogram(
    "hub_graphql_operation_duration_seconds", "Time to execute an operation", ["operation"], buckets=_LATENCY
)
TOKENS_ISSUED = Counter("hub_oauth_tokens_issued_total", "Access tokens issued", ["grant_type"])
TOKENS_REFUSED = Counter("hub_oauth_token_refusals_total", "Token requests refused, by OAuth error", ["error"])
BEARER_REFUSED = Counter("hub_bearer_refusals_total", "API requests refused for their access token", ["reason"])
LEDGER_COMMANDS = Counter("hub_ledger_commands_total", "Ledger commands, by outcome", ["command", "outcome"])
WORKER_JOBS = Counter("hub_worker_job_items_total", "What the worker's periodic jobs did", ["job"])
WORKER_ROUNDS = Histogram(
    "hub_worker_round_duration_seconds", "Time of one round of the periodic jobs", buckets=_LATENCY
)
WEBHOOK_DELIVERIES = Counter("hub_webhook_deliveries_total", "Webhook delivery attempts, by outcome", ["outcome"])
WEBHOOK_LAG = Histogram(
    "hub_webhook_delivery_lag_seconds",
    "From the event's commit to its successful delivery",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0, 3600.0),
)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MAX_OPERATION_NAMES = 200  # distinct operation names a process labels; more are "other" (a label is a series)
_operations: set[str] = set()


def operation_label(name: str | None) -> str:
    """A client-chosen operation name, bounded: well-formed and among the first 200 seen, else a fixed word."""
    if not name:
        return "anonymous"
    if not _NAME.fullmatch(name):
        return "invalid"
    if name not in _operations:
        if len(_operations) >= MAX_OPERATION_NAMES:
            return "other"
        _operations.add(name)
    return name


class PoolCollector(Collector):
    """The database pools as they stand at each scrape: connections in use and idle, per pool."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("hub_db_pool_connections", "Database pool connections", labels=["pool", "state"])
        for name, engine in zip(("transactions", "reads"), self.db.engines, strict=False):
            pool = engine.sync_engine.pool
            checked_out = getattr(pool, "checkedout", lambda: 0)()
            idle = getattr(pool, "checkedin", lambda: 0)()
            family.add_metric([name, "in_use"], checked_out)
            family.add_metric([name, "idle"], idle)
        yield family


def registry(db: Database | None = None) -> CollectorRegistry:
    """What `/metrics` shows: this process's metrics, or every worker's when they share a multiprocess directory;
    and the pools of this process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        found = CollectorRegistry()
        MultiProcessCollector(found)
    else:
        from prometheus_client import REGISTRY

        found = CollectorRegistry()
        for collector in list(REGISTRY._collector_to_names):
            found.register(collector)
    if db is not None:
        found.register(PoolCollector(db))
    return found


class MetricsEndpoint:
    def __init__(self, db: Database, token: str | None, development: bool) -> None:
        self.registry = registry(db)
        self.token = token
        self.open = development and not token

    async def handle(self, request: Request) -> Response:
        if not self._allowed(request):
            # Not found rather than forbidden: the endpoint is none of a partner's business.
            return PlainTextResponse("not found", status_code=404)
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    def _allowed(self, request: Request) -> bool:
        if self.open:
            return True
        if not self.token:
            return False
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode(), self.token.encode())
