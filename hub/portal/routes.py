"""Portal pages and the OAuth authorization endpoint (whose consent screen is a portal page).

Every form carries a CSRF token: the session's own once the member is signed in, and before that a
double-submit cookie. Cookies are HttpOnly, SameSite=Lax, and Secure whenever the hub is served over https.
Pages are never cached and never framed (the consent screen must not be clickjacked).
"""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InsecureTransportError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from hub.auth.scopes import format_scopes, parse
from hub.auth.server import HubAuthorizationServer, MemberGrant, StarletteOAuth2Request
from hub.consent import access_log as access_logs
from hub.consent import requests as consent_requests
from hub.consent import service as consents
from hub.errors import DomainError
from hub.members import claims, privacy, signin
from hub.members import service as members
from hub.partners.models import partner
from hub.points import queries as points
from hub.portal.labels import LABELS, permission_label, pick, translator
from hub.programme.earning import yuan
from hub.state import Hub
from hub.tiers import service as tiers

log = logging.getLogger("hub.portal")

SESSION_COOKIE = "hub_session"
LOGIN_CSRF_COOKIE = "hub_login_csrf"
LANG_COOKIE = "hub_lang"

_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
templates = Jinja2Templates(env=_environment)

_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def _client_ip(request: Request) -> str:
    # The socket's peer, or what a proxy named in HUB_TRUSTED_PROXIES reported (uvicorn applies only those).
    return request.client.host if request.client else "unknown"


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def _lang(request: Request) -> str:
    return pick(request.query_params.get("lang") or request.cookies.get(LANG_COOKIE))


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=_hub(request).settings.secure_cookies,
        path="/",
    )


def _page(
    request: Request,
    template: str,
    *,
    status: int = 200,
    session: signin.Session | None = None,
    csrf_token: str = "",
    **values: Any,
) -> HTMLResponse:
    lang = _lang(request)
    context = {
        "lang": lang,
        "t": translator(lang),
        "label": lambda permission: permission_label(permission, lang),
        "signed_in": session is not None,
        # Language links keep the page's own parameters (the consent screen's OAuth request among them).
        "lang_links": {
            code: "?"
            + urlencode([*((k, v) for k, v in request.query_params.multi_items() if k != "lang"), ("lang", code)])
            for code in ("zh", "en")
        },
        "csrf_token": session.csrf_token if session else csrf_token,
        # Only the hub's own messages: a link cannot put words of its choosing on the page.
        "notice": translator(lang)(notice) if (notice := request.query_params.get("notice")) in LABELS else None,
        "error": None,
        **values,
    }
    response = templates.TemplateResponse(request, template, context, status_code=status, headers=_HEADERS)
    if "lang" in request.query_params:
        _set_cookie(request, response, LANG_COOKIE, lang, max_age=365 * 24 * 3600)
    return response


async def _current(request: Request) -> signin.Session | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    hub = _hub(request)
    async with hub.db.read() as conn:
        return await signin.session(conn, token, now=hub.clock.now())


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/portal/login?" + urlencode({"next": target}), status_code=303)


def _safe_next(target: str | None) -> str:
    # Only paths on this hub: never an absolute or scheme-relative URL (no open redirect after sign-in).
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/portal"


async def _form(request: Request) -> dict[str, Any]:
    form = await request.form()
    values: dict[str, Any] = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            values.setdefault(key, []).append(value)
    return {key: items if key == "permission" else items[0] for key, items in values.items()}


def _csrf_ok(expected: str | None, form: dict[str, Any]) -> bool:
    given = form.get("csrf_token")
    return bool(expected) and isinstance(given, str) and secrets.compare_digest(given, str(expected))


def _forbidden(request: Request) -> HTMLResponse:
    t = translator(_lang(request))
    return _page(request, "message.html", status=403, heading=t("error"), message="CSRF check failed")


# -- sign-in ------------------------------------------------------------------------------------------------------
async def login_page(request: Request) -> Response:
    csrf = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = _page(
        request,
        "login.html",
        csrf_token=csrf,
        next=_safe_next(request.query_params.get("next")),
        phone="",
        code_step=False,
    )
    _set_cookie(request, response, LOGIN_CSRF_COOKIE, csrf)
    return response


async def send_code(request: Request) -> Response:
    form = await _form(request)
    csrf = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not _csrf_ok(csrf, form):
        return _forbidden(request)
    hub, t = _hub(request), translator(_lang(request))
    phone = str(form.get("phone", ""))
    page: dict[str, Any] = {"next": _safe_next(form.get("next")), "phone": phone}
    try:
        async with hub.db.write() as conn:
            to_send = await signin.request_code(
                conn,
                phone,
                ip=_client_ip(request),
                now=hub.clock.now(),
                region=hub.settings.default_phone_region,
            )
    except DomainError as error:
        key, status = _code_refusal(error)
        return _page(
            request,
            "login.html",
            status=status,
            csrf_token=csrf or "",
            code_step=False,
            error=t(key),
            **page,
        )
    if to_send is not None:  # outside the transaction: no network call while holding the database
        try:
            await hub.sms.send(
                to_send.phone, f"【hub】{to_send.code} is your sign-in code (5 minutes). 验证码5分钟内有效。"
            )
        except Exception:
            log.exception("could not send a sign-in code")
            return _page(
                request, "login.html", status=503, csrf_token=csrf or "", code_step=False, error=t("sms_failed"), **page
            )
    return _page(request, "login.html", csrf_token=csrf or "", code_step=True, notice=t("code_sent"), **page)


async def login(request: Request) -> Response:
    form = await _form(request)
    csrf = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not _csrf_ok(csrf, form):
        return _forbidden(request)
    hub, t = _hub(request), translator(_lang(request))
    now = hub.clock.now()
    async with hub.db.write() as conn:
        member_id = await signin.verify_code(
            conn,
            str(form.get("phone", "")),
            str(form.get("code", "")),
            now=now,
            region=hub.settings.default_phone_region,
        )
        opened = None if member_id is None else await signin.open_session(conn, member_id, now=now)
    if opened is None:
        return _page(
            request,
            "login.html",
            status=400,
            csrf_token=csrf or "",
            next=_safe_next(form.get("next")),
            phone=str(form.get("phone", "")),
            code_step=True,
            error=t("invalid_code"),
        )
    token, _ = opened
    response = RedirectResponse(_safe_next(form.get("next")), status_code=303)
    _set_cookie(request, response, SESSION_COOKIE, token, max_age=int(signin.SESSION_TTL.total_seconds()))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


async def logout(request: Request) -> Response:
    session = await _current(request)
    form = await _form(request)
    if session is None or not _csrf_ok(session.csrf_token, form):
        return _forbidden(request)
    hub = _hub(request)
    async with hub.db.write() as conn:
        await signin.close_session(conn, request.cookies[SESSION_COOKIE], now=hub.clock.now())
    response = RedirectResponse("/portal/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- pages ----------------------------------------------------------------------------------------------------------
async def home(request: Request) -> Response:
    session = await _current(request)
    if session is None:
        return _to_login(request)
    hub = _hub(request)
    now = hub.clock.now()
    version = hub.settings.programme.at(now)
    async with hub.db.read() as conn:
        balances = await points.balances(conn, session.member_id)
        requests = await consent_requests.pending_requests(conn, session.member_id)
        pending_claims = await claims.pending_for(conn, session.member_id)
        state = await tiers.state(conn, session.member_id)
        progress = await tiers.progress(conn, session.member_id, state, version, now, hub.settings.points_policy.zone)
        locked_at = await signin.lockout_notice(conn, session.member_id)
    if locked_at is not None:  # told once, at the next visit
        async with hub.db.write() as conn:
            await signin.clear_lockout_notice(conn, session.member_id)
    return _page(
        request,
        "home.html",
        session=session,
        balances=balances,
        requests=requests,
        claims=pending_claims,
        locked_at=locked_at,
        level=version.tiers.by_number(state.level),
        progress=progress,
        yuan=yuan,
    )


async def consents_page(request: Request) -> Response:
    session = await _current(request)
    if session is None:
        return _to_login(request)
    return await _consents(request, session)


async def _consents(
    request: Request, session: signin.Session, merge_phone: str | None = None, status: int = 200, **extra: Any
) -> Response:
    hub = _hub(request)
    async with hub.db.read() as conn:
        mine = await consents.of_member(conn, session.member_id, hub.clock.now())
        requests = await consent_requests.pending_requests(conn, session.member_id)
        pending_claims = await claims.pending_for(conn, session.member_id)
        merges = await claims.merges_of(conn, session.member_id)
    return _page(
        request,
        "consents.html",
        status=status,
        session=session,
        consents=mine,
        requests=requests,
        claims=pending_claims,
        merges=merges,
        merge_phone=merge_phone,
        **extra,
    )


async def _signed_in_form(request: Request) -> tuple[signin.Session, dict[str, Any]] | Response:
    """The session and the posted form of a signed-in member's CSRF-checked request, or the page refusing it."""
    session = await _current(request)
    if session is None:
        return _to_login(request)
    form = await _form(request)
    if not _csrf_ok(session.csrf_token, form):
        return _forbidden(request)
    return session, form


def _code_refusal(error: DomainError) -> tuple[str, int]:
    """The label and status for a refused code request."""
    key = {"RATE_LIMITED": "rate_limited", "PHONE_LOCKED": "phone_locked"}.get(error.code, "invalid_phone")
    return key, 400 if key == "invalid_phone" else 429


async def _member_action(request: Request, action: Any) -> Response:
    """A signed-in, CSRF-checked change made in one transaction; back to the consents page."""
    checked = await _signed_in_form(request)
    if isinstance(checked, Response):
        return checked
    session, form = checked
    hub = _hub(request)
    try:
        async with hub.db.write() as conn:
            await action(conn, session, form, hub.clock.now())
    except DomainError as error:
        t = translator(_lang(request))
        return _page(request, "message.html", status=400, session=session, heading=t("error"), message=error.message)
    return RedirectResponse("/portal/consents?notice=saved", status_code=303)


async def revoke(request: Request) -> Response:
    public_id = request.path_params["consent_id"]

    async def action(conn: AsyncConnection, session: signin.Session, form: dict[str, Any], now: Any) -> None:
        await consents.revoke(conn, session.member_id, public_id, now=now, actor="member")

    return await _member_action(request, action)


async def narrow(request: Request) -> Response:
    public_id = request.path_params["consent_id"]

    async def action(conn: AsyncConnection, session: signin.Session, form: dict[str, Any], now: Any) -> None:
        keep = frozenset(form.get("permission", []))
        await consents.narrow(conn, session.member_id, public_id, keep, now=now, actor="member")

    return await _member_action(request, action)


async def decide(request: Request) -> Response:
    public_id = request.path_params["request_id"]

    async def action(conn: AsyncConnection, session: signin.Session, form: dict[str, Any], now: Any) -> None:
        approve = form.get("decision") == "approve"
        await consent_requests.decide(conn, session.member_id, public_id, approve=approve, now=now, actor="member")

    return await _member_action(request, action)


async def decide_claim(request: Request) -> Response:
    """The phone's owner links a partner's enrolment to their membership, or refuses it."""
    claim_id = request.path_params["claim_id"]
    settings = _hub(request).settings

    async def action(conn: AsyncConnection, session: signin.Session, form: dict[str, Any], now: Any) -> None:
        approve = form.get("decision") == "approve"
        await claims.decide(
            conn,
            session.member_id,
            claim_id,
            approve=approve,
            now=now,
            programme=claims.Programme.of(settings, now),
        )

    return await _member_action(request, action)


async def merge_code(request: Request) -> Response:
    """The member names another record of theirs by its phone: a code goes there (if it is a member's)."""
    checked = await _signed_in_form(request)
    if isinstance(checked, Response):
        return checked
    session, form = checked
    hub, t = _hub(request), translator(_lang(request))
    phone = str(form.get("phone", ""))
    try:
        async with hub.db.write() as conn:
            to_send = await claims.request_own_merge(
                conn,
                session.member_id,
                phone,
                ip=_client_ip(request),
                now=hub.clock.now(),
                region=hub.settings.default_phone_region,
            )
    except DomainError as error:
        key, status = _code_refusal(error)
        return await _consents(request, session, status=status, error=t(key))
    if to_send is not None:
        try:
            await hub.sms.send(to_send.phone, f"【hub】{to_send.code}: merge this membership into another (5 minutes). "
                               "验证码5分钟内有效，用于合并会员记录。")  # fmt: skip
        except Exception:
            log.exception("could not send a merge code")
            return await _consents(request, session, status=503, error=t("sms_failed"))
    return await _consents(request, session, merge_phone=phone, notice=t("code_sent"))


async def merge(request: Request) -> Response:
    checked = await _signed_in_form(request)
    if isinstance(checked, Response):
        return checked
    session, form = checked
    hub, t = _hub(request), translator(_lang(request))
    phone = str(form.get("phone", ""))
    async with hub.db.write() as conn:
        merged = await claims.confirm_own_merge(
            conn,
            session.member_id,
            phone,
            str(form.get("code", "")),
            now=hub.clock.now(),
            region=hub.settings.default_phone_region,
            programme=claims.Programme.of(hub.settings, hub.clock.now()),
        )
    if not merged:
        return await _consents(request, session, merge_phone=phone, status=400, error=t("invalid_code"))
    return RedirectResponse("/portal/consents?notice=merged", status_code=303)


async def access_log_page(request: Request) -> Response:
    session = await _current(request)
    if session is None:
        return _to_login(request)
    async with _hub(request).db.read() as conn:
        entries = await access_logs.for_member(conn, session.member_id)
    return _page(request, "access_log.html", session=session, entries=entries)


async def privacy_page(request: Request) -> Response:
    session = await _current(request)
    if session is None:
        return _to_login(request)
    return _page(request, "privacy.html", session=session)


async def export(request: Request) -> Response:
    session = await _current(request)
    if session is None:
        return _to_login(request)
    if not _csrf_ok(session.csrf_token, await _form(request)):
        return _forbidden(request)
    hub = _hub(request)
    async with hub.db.read() as conn:
        document = await privacy.export(conn, session.member_id, hub.clock.now())
    return Response(
        json.dumps(document, ensure_ascii=False, indent=2),
        media_type="application/json",
        headers={**_HEADERS, "Content-Disposition": 'attachment; filename="my-hub-data.json"'},
    )


async def erase(request: Request) -> Response:
    session = await _current(request)
    if session is None:
        return _to_login(request)
    form = await _form(request)
    if not _csrf_ok(session.csrf_token, form):
        return _forbidden(request)
    t = translator(_lang(request))
    if form.get("confirm") != "yes":
        return _page(request, "privacy.html", status=400, session=session, error=t("erase_confirm"))
    hub = _hub(request)
    async with hub.db.write() as conn:
        await privacy.erase(conn, session.member_id, now=hub.clock.now())
    response = _page(request, "message.html", heading=t("erase"), message=t("erased"))
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- the OAuth authorization endpoint -------------------------------------------------------------------------------
def _authorize_params(request: Request) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key in params:  # RFC 6749 §3.1: parameters MUST NOT be included more than once
            return None
        params[key] = value
    return params


def _authorize_error(request: Request, message: str) -> HTMLResponse:
    # Without a verified client and redirect URI, errors are shown here, never redirected (no open redirect).
    t = translator(_lang(request))
    return _page(request, "message.html", status=400, heading=t("error"), message=message)


async def authorize(request: Request) -> Response:
    params = _authorize_params(request)
    if params is None:
        return _authorize_error(request, "a parameter is repeated")
    try:
        oauth_request = StarletteOAuth2Request(request, params)
    except InsecureTransportError:
        return _authorize_error(request, "OAuth requests must use https")
    hub = _hub(request)
    session = await _current(request)
    form = await _form(request) if request.method == "POST" else {}
    if request.method == "POST" and (session is None or not _csrf_ok(session.csrf_token, form)):
        return _forbidden(request)

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
            return _to_login(request)
        client = grant.client
        requested = parse(grant.request.payload.scope)
        if request.method == "GET":
            partner_name = await conn.scalar(select(partner.c.name).where(partner.c.id == client.partner_pk))
            return _page(
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


routes = [
    Route("/portal", home, methods=["GET"]),
    Route("/portal/login", login_page, methods=["GET"]),
    Route("/portal/login/code", send_code, methods=["POST"]),
    Route("/portal/login", login, methods=["POST"]),
    Route("/portal/logout", logout, methods=["POST"]),
    Route("/portal/consents", consents_page, methods=["GET"]),
    Route("/portal/consents/{consent_id}/revoke", revoke, methods=["POST"]),
    Route("/portal/consents/{consent_id}/narrow", narrow, methods=["POST"]),
    Route("/portal/requests/{request_id}", decide, methods=["POST"]),
    Route("/portal/claims/{claim_id:int}", decide_claim, methods=["POST"]),
    Route("/portal/merge/code", merge_code, methods=["POST"]),
    Route("/portal/merge", merge, methods=["POST"]),
    Route("/portal/access-log", access_log_page, methods=["GET"]),
    Route("/portal/privacy", privacy_page, methods=["GET"]),
    Route("/portal/export", export, methods=["POST"]),
    Route("/portal/erase", erase, methods=["POST"]),
    Route("/oauth/authorize", authorize, methods=["GET", "POST"]),
]
