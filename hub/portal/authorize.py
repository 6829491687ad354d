"""The OAuth authorization endpoint and its consent screen, a portal page.

authlib validates the request (client, exact redirect URI, scope within the ceiling, PKCE S256) before anything
else; until the client and redirect URI are verified, errors are shown here, never redirected (no open redirect). A
member who is not signed in goes to sign-in and comes back. On "allow" the ticked permissions must be among those
requested; the member is linked to the partner (a pairwise id) and the consent in force gains them
(`consent.authorise_app`) before authlib issues the code.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InsecureTransportError
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from hub.auth.scopes import format_scopes, parse
from hub.auth.server import HubAuthorizationServer, MemberGrant, StarletteOAuth2Request
from hub.consent import service as consents
from hub.members import service as members
from hub.partners.models import partner
from hub.portal.pages import (
    csrf_ok,
    current_session,
    forbidden,
    hub_of,
    message,
    page,
    read_form,
    to_login,
    words,
)


def _authorize_params(request: Request) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key in params:  # RFC 6749 §3.1: parameters MUST NOT be included more than once
            return None
        params[key] = value
    return params


def _authorize_error(request: Request, text: str) -> HTMLResponse:
    # Without a verified client and redirect URI, errors are shown here, never redirected (no open redirect).
    return message(request, words(request)("error"), text)


async def authorize(request: Request) -> Response:
    params = _authorize_params(request)
    if params is None:
        return _authorize_error(request, "a parameter is repeated")
    try:
        oauth_request = StarletteOAuth2Request(request, params)
    except InsecureTransportError:
        return _authorize_error(request, "OAuth requests must use https")
    hub = hub_of(request)
    session = await current_session(request)
    form = await read_form(request) if request.method == "POST" else {}
    if request.method == "POST" and (session is None or not csrf_ok(session.csrf_token, form)):
        return forbidden(request)

    async with hub.db.write() as conn:

        def validate(sync_conn: Any) -> tuple[HubAuthorizationServer, Any]:
            server = HubAuthorizationServer(hub.settings, hub.keys, hub.clock, sync_conn)
            return server, server.get_consent_grant(request=oauth_request, end_user=None)

        try:
            server, grant = await conn.run_sync(validate)
        except OAuth2Error as error:
            if error.redirect_uri:  # the client and redirect URI checked out: the client hears of its mistake
                failed = error
                return await conn.run_sync(
                    lambda c: HubAuthorizationServer(hub.settings, hub.keys, hub.clock, c).handle_error_response(
                        oauth_request, failed
                    )
                )
            return _authorize_error(request, error.description or error.error)
        if session is None:
            return to_login(request)
        client = grant.client
        requested = parse(grant.request.payload.scope)
        if request.method == "GET":
            partner_name = await conn.scalar(select(partner.c.name).where(partner.c.id == client.partner_pk))
            return page(
                request,
                "authorize.html",
                session=session,
                scopes=sorted(requested),
                partner_name=partner_name,
                client_name=client.name,
                query=request.url.query,
            )
        chosen = frozenset(form.get("permission", []))
        if not chosen <= requested:
            return _authorize_error(request, "the form carried permissions the application did not ask for")
        if form.get("decision") != "allow" or not chosen:
            return await conn.run_sync(
                lambda c: server.create_authorization_response(request=oauth_request, grant_user=None, grant=grant)
            )
        now = hub.clock.now()
        pairwise_id = await members.link_for_consent(conn, client.partner_pk, session.member_id, now)
        granted, permissions = await consents.authorise_app(
            conn,
            member_id=session.member_id,
            partner_id=client.partner_pk,
            chosen=chosen,
            app_name=client.name,
            now=now,
        )
        user = MemberGrant(
            member_id=session.member_id,
            pairwise_id=pairwise_id,
            consent_pk=granted.pk,
            consent_public_id=granted.public_id,
            permissions=permissions,
            scope=format_scopes(chosen),
        )
        return await conn.run_sync(
            lambda c: server.create_authorization_response(request=oauth_request, grant_user=user, grant=grant)
        )
