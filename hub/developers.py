"""`/developers`: the page the OAuth metadata names as `service_documentation`, made from what this hub serves
(its addresses, scope catalogue and webhook events), so it cannot drift from them."""

from __future__ import annotations

from pathlib import Path

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from hub.auth.scopes import PARTNER_SCOPES
from hub.portal.labels import PERMISSIONS_ZH
from hub.state import Hub
from hub.webhooks.catalogue import SUBSCRIBABLE

_template = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
).get_template("developers.html")

# The codes every GraphQL error may carry (a mutation's payload adds its own domain codes, listed in the SDL).
ERROR_CODES = {
    "UNAUTHENTICATED": "no token, or one that is not valid",
    "INSUFFICIENT_SCOPE": "the token lacks the scope the field needs (requiredScope names it)",
    "CONSENT_REQUIRED": "the member's consent to you does not include the permission (permission names it)",
    "PARTNER_TOKEN_REQUIRED": "a member-delegated token reaches only `me`",
    "MEMBER_TOKEN_REQUIRED": "`me` needs a member-delegated token",
    "QUERY_COST_EXCEEDED": "the operation costs more than the maximum (extensions.cost says how much)",
    "RATE_LIMITED": "too many requests or too much cost this minute (HTTP 429 with Retry-After)",
    "GRAPHQL_PARSE_FAILED": "the document is not GraphQL",
    "GRAPHQL_VALIDATION_FAILED": "the document or its variables do not fit the schema",
    "INVALID_INPUT": "a value the hub refuses (the message and field say which)",
    "SERVICE_UNAVAILABLE": "the hub could not record the read in the member's access log: nothing was sent; retry",
    "INTERNAL_SERVER_ERROR": "a fault of the hub's (nothing about it is disclosed)",
}


async def developers(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    page = _template.render(
        issuer=hub.settings.issuer,
        development=hub.settings.development,
        scopes=PARTNER_SCOPES,
        scope_labels=PERMISSIONS_ZH,
        events=list(SUBSCRIBABLE.values()),
        errors=ERROR_CODES,
    )
    return HTMLResponse(page, headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"})
