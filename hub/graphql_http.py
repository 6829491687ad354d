"""GraphQL over HTTP: the bearer token is checked first (none or a bad one is a 401), then the client's request
rate, then a JSON POST is executed.

The hub serves `POST application/json` itself, the one transport partners use (queries via GET, batches,
multipart uploads and subscriptions are off), instead of through strawberry's general view, which handles every
transport and cost ~8 % of a redemption's CPU (bench/redeem.py). GET renders GraphiQL in development (the hub's
own page and pinned assets, hub/graphiql) and is otherwise refused with a JSON error.

The body is checked before GraphQL sees it: JSON nested at most 64 deep, and no text the hub refuses anywhere
(hub/text.py). In development an anonymous POST may introspect the schema (GraphiQL needs it); anything else
without a token is a 401.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLHTTPResponse, process_result
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from hub import text
from hub.auth.principal import Principal, authenticate
from hub.auth.rate_limits import RateLimited
from hub.auth.tokens import InvalidToken
from hub.consent.access_log import Access
from hub.graphiql import GraphiQL
from hub.observability import context as observed
from hub.observability import metrics
from hub.schema import build_schema
from hub.schema.context import Context
from hub.schema.limits import is_introspection
from hub.state import Hub

MAX_BODY_BYTES = 1 << 20  # a GraphQL document plus variables; a purchase with hundreds of lines is ~100 kB
_POST_OPERATIONS = frozenset({OperationType.QUERY, OperationType.MUTATION})
log = logging.getLogger("hub.graphql")


class BadRequest(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers

    def response(self) -> Response:
        return JSONResponse(
            {"errors": [{"message": self.message, "extensions": {"code": self.code}}]},
            status_code=self.status,
            headers=self.headers,
        )


def _unauthorised(error: str | None, description: str, status: int = 401) -> Response:
    """RFC 6750 §3: a request without credentials gets the challenge alone; a bad one names the error too."""
    challenge = 'Bearer realm="hub"'
    if error is not None:
        challenge += f', error="{error}", error_description="{description}"'
    body: dict[str, Any] = {
        "errors": [{"message": description, "extensions": {"code": (error or "unauthenticated").upper()}}]
    }
    if error is not None:
        body = {"error": error, "error_description": description, **body}
    return JSONResponse(body, status_code=status, headers={"WWW-Authenticate": challenge})


def _rate_limited(refusal: RateLimited) -> Response:
    return JSONResponse(
        {
            "errors": [
                {"message": str(refusal), "extensions": {"code": "RATE_LIMITED", "retryAfter": refusal.retry_after}}
            ]
        },
        status_code=429,
        headers={"Retry-After": str(refusal.retry_after)},
    )


def with_codes(result: ExecutionResult) -> GraphQLHTTPResponse:
    """The response body. Parse errors never reach the schema extensions; masked errors lost their code on purpose."""
    response = process_result(result)
    errors: list[dict[str, Any]] = response.get("errors") or []  # type: ignore[assignment]
    for error in errors:
        extensions = error.setdefault("extensions", {})
        if "code" not in extensions:
            syntax = str(error.get("message", "")).startswith("Syntax Error")
            extensions["code"] = "GRAPHQL_PARSE_FAILED" if syntax else "INTERNAL_SERVER_ERROR"
    return response


class GraphQLEndpoint:
    def __init__(self, hub: Hub, *, traced: bool = False) -> None:
        self.hub = hub
        self.schema = build_schema(hub.settings, traced=traced)
        self.graphiql = GraphiQL() if hub.settings.development else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if "access_token" in request.query_params:
            refusal = _unauthorised("invalid_request", "send the access token in the Authorization header", 400)
            await refusal(scope, receive, send)
            return
        principal = await self._principal(request)
        if isinstance(principal, Response):
            await principal(scope, receive, send)
            return
        if request.method == "GET":
            await self._get(request, principal, scope, receive, send)
            return
        try:
            if principal is not None:
                await self.hub.rate_limits.request(principal.client_id, principal.requests_per_minute)
            response = await self._execute(request, principal)
        except BadRequest as refusal:
            response = refusal.response()
        except RateLimited as refusal:
            response = _rate_limited(refusal)
        await response(scope, receive, send)

    async def _get(
        self, request: Request, principal: Principal | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if self.graphiql is not None and "query" not in request.query_params:
            await self.graphiql.page()(scope, receive, send)
            return
        refusal = BadRequest(
            405, "METHOD_NOT_ALLOWED", "send GraphQL requests as POST with an application/json body", {"Allow": "POST"}
        )
        await refusal.response()(scope, receive, send)

    async def _principal(self, request: Request) -> Principal | Response | None:
        header = request.headers.get("authorization")
        if header is None:
            return None  # anonymous: a 401, but for introspection in development (see _execute)
        kind, _, raw = header.partition(" ")
        if kind.lower() != "bearer" or not raw.strip():
            metrics.BEARER_REFUSED.labels("invalid_request").inc()
            return _unauthorised("invalid_request", "use 'Authorization: Bearer <access token>'")
        try:
            principal = await authenticate(
                self.hub.db,
                raw.strip(),
                settings=self.hub.settings,
                keys=self.hub.keys,
                token_states=self.hub.token_states,
                now=int(time.time()),  # token lifetimes are wall-clock time, like their iat/exp
            )
        except InvalidToken as exc:
            # A security event: a forged, stolen-and-revoked or expired token. The reason, never the token.
            metrics.BEARER_REFUSED.labels("invalid_token").inc()
            log.warning("refused an access token: %s", exc, extra={"security": "invalid_token"})
            return _unauthorised("invalid_token", str(exc))
        observed.note(client_id=principal.client_id)
        return principal

    async def _execute(self, request: Request, principal: Principal | None) -> Response:
        document = await _json_body(request)
        if principal is None and not (self.hub.settings.development and is_introspection(document["query"])):
            return _unauthorised(None, "authentication required: send 'Authorization: Bearer <access token>'")
        context = Context(hub=self.hub, principal=principal, now=self.hub.clock.now())
        started = time.perf_counter()
        try:
            result = await self.schema.execute(
                document["query"],
                variable_values=document["variables"],
                context_value=context,
                operation_name=document["operationName"],
                allowed_operation_types=_POST_OPERATIONS,
                operation_extensions=document["extensions"],
            )
        except MissingQueryError as exc:
            raise BadRequest(400, "BAD_REQUEST", "the request has no GraphQL query") from exc
        except CannotGetOperationTypeError as exc:
            raise BadRequest(400, "BAD_REQUEST", exc.as_http_error_reason()) from exc
        except InvalidOperationTypeError as exc:
            raise BadRequest(400, "BAD_REQUEST", exc.as_http_error_reason("POST")) from exc
        body = with_codes(result)
        operation = metrics.operation_label(context.operation_name or document["operationName"])
        observed.note(operation=operation)
        _count(operation, body, time.perf_counter() - started)
        if context.retry_after is not None:
            return JSONResponse(body, status_code=429, headers={"Retry-After": str(context.retry_after)})
        if not await self.log_access(context):
            return _unavailable("the hub could not record this read of member data, so it sends none of it; retry")
        return JSONResponse(body)

    async def log_access(self, context: Context) -> bool:
        """Write the access log for the member data the response carries; the response waits for the commit, so
        member data never leaves without its log entry (False: it could not be written)."""
        if not context.accessed or context.principal is None:
            return True
        partner_id = context.principal.partner.id
        accesses = [
            Access(member_id, partner_id, consent_pk, frozenset(permissions), context.now)
            for (member_id, consent_pk), permissions in context.accessed.items()
        ]
        try:
            await self.hub.access_log.record(accesses)
        except Exception:
            log.exception("could not write the access log")
            return False
        return True


_SERIES: dict[tuple[str, str], tuple[Any, Any]] = {}  # label lookups, once per (operation, outcome)


def _count(operation: str, body: GraphQLHTTPResponse, seconds: float) -> None:
    errors: list[dict[str, Any]] = body.get("errors") or []  # type: ignore[assignment]
    outcome = "ok" if not errors else "error" if body.get("data") is None else "partial"
    series = _SERIES.get((operation, outcome))
    if series is None:
        series = _SERIES[(operation, outcome)] = (
            metrics.GRAPHQL_OPERATIONS.labels(operation, outcome),
            metrics.GRAPHQL_LATENCY.labels(operation),
        )
    series[0].inc()
    series[1].observe(seconds)
    for code in {e["extensions"]["code"] for e in errors}:
        metrics.GRAPHQL_ERRORS.labels(operation, code).inc()


def _unavailable(message: str) -> JSONResponse:
    body = {"errors": [{"message": message, "extensions": {"code": "SERVICE_UNAVAILABLE"}}]}
    return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})


async def _json_body(request: Request) -> dict[str, Any]:
    """The request's `query`, `variables`, `operationName` and `extensions`, each checked for its JSON type."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise BadRequest(415, "UNSUPPORTED_MEDIA_TYPE", "send the GraphQL request as application/json")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BadRequest(413, "PAYLOAD_TOO_LARGE", f"the request body is larger than {MAX_BODY_BYTES} bytes")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise BadRequest(413, "PAYLOAD_TOO_LARGE", f"the request body is larger than {MAX_BODY_BYTES} bytes")
    except ClientDisconnect as exc:
        raise BadRequest(400, "BAD_REQUEST", "the client closed the request") from exc
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(400, "BAD_REQUEST", "the request body is not valid JSON") from exc
    _check_json(document)
    if not isinstance(document, dict):
        raise BadRequest(400, "BAD_REQUEST", "send one GraphQL request as a JSON object (batches are not supported)")
    expected: dict[str, type] = {"query": str, "variables": dict, "operationName": str, "extensions": dict}
    for key, kind in expected.items():
        value = document.get(key)
        if value is not None and not isinstance(value, kind):
            raise BadRequest(400, "BAD_REQUEST", f"'{key}' must be a JSON {'string' if kind is str else 'object'}")
    return {key: document.get(key) for key in expected}


def _check_json(document: Any) -> None:
    """Nesting at most `text.MAX_JSON_DEPTH` deep and only text the hub accepts, walked without recursion.

    `json.loads` itself gives up near Python's recursion limit; this bound is far below it, and the answer is
    a 400 with a code rather than a crash.
    """
    pending: list[tuple[Any, int, str]] = [(document, 0, "")]
    while pending:
        value, depth, path = pending.pop()
        if isinstance(value, str):
            problem = text.problem(value, len(value) if path == ".query" else text.MAX_TEXT)
            if problem is not None:
                raise BadRequest(400, "INVALID_INPUT", f"{path.lstrip('.') or 'the body'}: {problem}")
            continue
        if not isinstance(value, dict | list):
            continue
        if depth >= text.MAX_JSON_DEPTH:
            raise BadRequest(400, "BAD_REQUEST", f"the request body is nested more than {text.MAX_JSON_DEPTH} deep")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str):
                pending.append((key, depth + 1, f"{path} (a key)"))
                # The path goes into the answer: only keys that are themselves acceptable, and short, are named.
                name = key if len(key) <= 40 and text.problem(key) is None else "…"
                pending.append((item, depth + 1, f"{path}.{name}"))
            else:
                pending.append((item, depth + 1, f"{path}[{key}]"))
