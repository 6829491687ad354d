"""One ASGI layer around the whole app: a request id (the caller's `X-Request-ID` if it is a sane one, else a new
one, echoed in the answer), the HTTP metrics by route, and one log line per request.

The line says: method, path (never the query string: it may carry codes or tokens), status, duration, request id,
and, for GraphQL, the client and the operation (the endpoint notes them). Probes and scrapes log at debug."""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.observability import metrics
from hub.observability.context import RequestInfo, current

log = logging.getLogger("hub.request")
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
_QUIET = {"/healthz", "/readyz", "/metrics"}
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Request ids: random per process, counted within it (unique across processes, no system call per request).
_PREFIX = secrets.token_hex(4)
_COUNT = itertools.count(1)


class Observed:
    def __init__(self, app: ASGIApp, routes: Callable[[Any], str]) -> None:
        self.app = app
        self.route_of = routes  # the matched endpoint → its route template (a bounded metrics label)
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}  # label lookups, once a combination

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        info = RequestInfo(request_id)
        token = current.set(info)
        status = 500
        started = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - started
            route = self.route_of(scope.get("endpoint"))
            method = scope["method"] if scope["method"] in _METHODS else "other"  # a label: bounded, like route
            key = (method, route, status)
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = (
                    metrics.HTTP_REQUESTS.labels(method, route, str(status)),
                    metrics.HTTP_LATENCY.labels(route),
                )
            series[0].inc()
            series[1].observe(seconds)
            path = scope["path"]
            log.log(
                logging.DEBUG if path in _QUIET else logging.INFO,
                "request",
                extra={
                    "method": method,
                    "path": path if route != "unmatched" else "(unmatched)",  # no arbitrary text from outside
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                    "client_id": info.client_id,
                    "operation": info.operation,
                },
            )
            current.reset(token)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if _REQUEST_ID.fullmatch(value):
                return value.decode()
            break
    return f"{_PREFIX}{next(_COUNT):08x}"
