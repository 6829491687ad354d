"""The member portal: sign-in, home (points, tier, what waits for the member), consents (revoke, narrow, decide a
partner's request, link or refuse an enrolment, merge another record), rewards (claim, see codes, give back), who
read my data, export and erasure.

Every page after sign-in goes through `pages.signed_in` (session, and CSRF for a POST); every change is one
transaction. The consent screen of the OAuth flow is in authorize.py.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from hub.consent import access_log as access_logs
from hub.consent import requests as consent_requests
from hub.consent import service as consents
from hub.errors import DomainError
from hub.idempotency import retrying
from hub.members import claims, privacy, signin
from hub.points import queries as points
from hub.portal import authorize
from hub.portal.pages import (
    HEADERS,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Visit,
    client_ip,
    csrf_ok,
    forbidden,
    hub_of,
    message,
    page,
    read_form,
    safe_next,
    set_cookie,
    signed_in,
    words,
)
from hub.programme.earning import yuan
from hub.retention import queries as retention
from hub.rewards import catalogue
from hub.rewards import claims as reward_claims
from hub.tiers import service as tiers

log = logging.getLogger("hub.portal")


# -- sign-in (before a session: a double-submit CSRF cookie) -----------------------------------------------------
async def login_page(request: Request) -> Response:
    csrf = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = page(
        request,
        "login.html",
        csrf_token=csrf,
        next=safe_next(request.query_params.get("next")),
        phone="",
        code_step=False,
    )
    set_cookie(request, response, LOGIN_CSRF_COOKIE, csrf)
    return response


def _code_refusal(error: DomainError) -> tuple[str, int]:
    """The label and status for a refused code request."""
    key = {"RATE_LIMITED": "rate_limited", "PHONE_LOCKED": "phone_locked"}.get(error.code, "invalid_phone")
    return key, 400 if key == "invalid_phone" else 429


async def send_code(request: Request) -> Response:
    form = await read_form(request)
    csrf = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not csrf_ok(csrf, form):
        return forbidden(request)
    hub, t = hub_of(request), words(request)
    phone = str(form.get("phone", ""))
    login: dict[str, Any] = {"csrf_token": csrf or "", "next": safe_next(form.get("next")), "phone": phone}
    try:
        async with hub.db.write() as conn:
            to_send = await signin.request_code(
                conn, phone, ip=client_ip(request), now=hub.clock.now(), region=hub.settings.default_phone_region
            )
    except DomainError as error:
        key, status = _code_refusal(error)
        if status == 429:  # a phone or an address asking too often, or a phone locked after wrong codes
            log.warning("refused a sign-in code request: %s", error.code, extra={"security": error.code})
        return page(request, "login.html", status=status, code_step=False, error=t(key), **login)
    if to_send is not None:  # outside the transaction: no network call while holding the database
        try:
            await hub.sms.send(
                to_send.phone, f"【hub】{to_send.code} is your sign-in code (5 minutes). 验证码5分钟内有效。"
            )
        except Exception:
            log.exception("could not send a sign-in code")
            return page(request, "login.html", status=503, code_step=False, error=t("sms_failed"), **login)
    return page(request, "login.html", code_step=True, notice=t("code_sent"), **login)


async def login(request: Request) -> Response:
    form = await read_form(request)
    csrf = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not csrf_ok(csrf, form):
        return forbidden(request)
    hub = hub_of(request)
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
        log.warning("a wrong or expired sign-in code", extra={"security": "invalid_code"})
        return page(
            request,
            "login.html",
            status=400,
            csrf_token=csrf or "",
            next=safe_next(form.get("next")),
            phone=str(form.get("phone", "")),
            code_step=True,
            error=words(request)("invalid_code"),
        )
    token, _ = opened
    response = RedirectResponse(safe_next(form.get("next")), status_code=303)
    set_cookie(request, response, SESSION_COOKIE, token, max_age=int(signin.SESSION_TTL.total_seconds()))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@signed_in
async def logout(visit: Visit) -> Response:
    async with visit.hub.db.write() as conn:
        await signin.close_session(conn, visit.request.cookies[SESSION_COOKIE], now=visit.now)
    response = RedirectResponse("/portal/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- pages --------------------------------------------------------------------------------------------------------
@signed_in
async def home(visit: Visit) -> Response:
    hub, member_id, now = visit.hub, visit.member_id, visit.now
    version = hub.settings.programme.at(now)
    async with hub.db.read() as conn:
        balances = await points.balances(conn, member_id)
        requests = await consent_requests.pending_requests(conn, member_id)
        pending_claims = await claims.pending_for(conn, member_id)
        state = await tiers.state(conn, member_id)
        progress = await tiers.progress(conn, member_id, state, version, now, hub.settings.points_policy.zone)
        locked_at = await signin.lockout_notice(conn, member_id)
        profiles = await retention.of_member(conn, member_id)
    if locked_at is not None:  # told once, at the next visit
        async with hub.db.write() as conn:
            await signin.clear_lockout_notice(conn, member_id)
    return visit.page(
        "home.html",
        balances=balances,
        requests=requests,
        claims=pending_claims,
        locked_at=locked_at,
        level=version.tiers.by_number(state.level),
        progress=progress,
        profiles=profiles,
        yuan=yuan,
    )


@signed_in
async def consents_page(visit: Visit) -> Response:
    return await _consents(visit)


async def _consents(visit: Visit, merge_phone: str | None = None, status: int = 200, **extra: Any) -> Response:
    hub, member_id = visit.hub, visit.member_id
    async with hub.db.read() as conn:
        mine = await consents.of_member(conn, member_id, visit.now)
        requests = await consent_requests.pending_requests(conn, member_id)
        pending_claims = await claims.pending_for(conn, member_id)
        merges = await claims.merges_of(conn, member_id)
    return visit.page(
        "consents.html",
        status=status,
        consents=mine,
        requests=requests,
        claims=pending_claims,
        merges=merges,
        merge_phone=merge_phone,
        **extra,
    )


Change = Callable[[AsyncConnection, Visit], Awaitable[None]]


def member_change(change: Change) -> Callable[[Request], Awaitable[Response]]:
    """A change the member makes on the consents page, in one transaction; back to that page once it is saved."""

    @signed_in
    async def endpoint(visit: Visit) -> Response:
        try:
            async with visit.hub.db.write() as conn:
                await change(conn, visit)
        except DomainError as error:
            return message(visit.request, visit.t("error"), error.message, session=visit.session)
        return RedirectResponse("/portal/consents?notice=saved", status_code=303)

    return endpoint


@member_change
async def revoke(conn: AsyncConnection, visit: Visit) -> None:
    public_id = visit.request.path_params["consent_id"]
    await consents.revoke(conn, visit.member_id, public_id, now=visit.now, actor="member")


@member_change
async def narrow(conn: AsyncConnection, visit: Visit) -> None:
    public_id = visit.request.path_params["consent_id"]
    keep = frozenset(visit.form.get("permission", []))
    await consents.narrow(conn, visit.member_id, public_id, keep, now=visit.now, actor="member")


@member_change
async def decide(conn: AsyncConnection, visit: Visit) -> None:
    public_id = visit.request.path_params["request_id"]
    approve = visit.form.get("decision") == "approve"
    await consent_requests.decide(conn, visit.member_id, public_id, approve=approve, now=visit.now, actor="member")


@member_change
async def decide_claim(conn: AsyncConnection, visit: Visit) -> None:
    """The phone's owner links a partner's enrolment to their membership, or refuses it."""
    await claims.decide(
        conn,
        visit.member_id,
        visit.request.path_params["claim_id"],
        approve=visit.form.get("decision") == "approve",
        now=visit.now,
        programme=claims.Programme.of(visit.hub.settings, visit.now),
    )


@signed_in
async def merge_code(visit: Visit) -> Response:
    """The member names another record of theirs by its phone: a code goes there (if it is a member's)."""
    hub = visit.hub
    phone = str(visit.form.get("phone", ""))
    try:
        async with hub.db.write() as conn:
            to_send = await claims.request_own_merge(
                conn,
                visit.member_id,
                phone,
                ip=client_ip(visit.request),
                now=visit.now,
                region=hub.settings.default_phone_region,
            )
    except DomainError as error:
        key, status = _code_refusal(error)
        return await _consents(visit, status=status, error=visit.t(key))
    if to_send is not None:
        try:
            await hub.sms.send(to_send.phone, f"【hub】{to_send.code}: merge this membership into another (5 minutes). "
                               "验证码5分钟内有效，用于合并会员记录。")  # fmt: skip
        except Exception:
            log.exception("could not send a merge code")
            return await _consents(visit, status=503, error=visit.t("sms_failed"))
    return await _consents(visit, merge_phone=phone, notice=visit.t("code_sent"))


@signed_in
async def merge(visit: Visit) -> Response:
    hub = visit.hub
    phone = str(visit.form.get("phone", ""))
    async with hub.db.write() as conn:
        merged = await claims.confirm_own_merge(
            conn,
            visit.member_id,
            phone,
            str(visit.form.get("code", "")),
            now=visit.now,
            region=hub.settings.default_phone_region,
            programme=claims.Programme.of(hub.settings, visit.now),
        )
    if not merged:
        return await _consents(visit, merge_phone=phone, status=400, error=visit.t("invalid_code"))
    return RedirectResponse("/portal/consents?notice=merged", status_code=303)


@signed_in
async def rewards_page(visit: Visit) -> Response:
    return await _rewards(visit)


async def _rewards(visit: Visit, status: int = 200, **extra: Any) -> Response:
    """What the member may claim now (and why not the rest), and their own claims with their codes."""
    hub, member_id, now = visit.hub, visit.member_id, visit.now
    zone = hub.settings.points_policy.zone
    async with hub.db.read() as conn:
        level = (await tiers.state(conn, member_id)).level
        offers = await catalogue.page(conn, now, zone, first=catalogue.MAX_PAGE, after=None, member_id=member_id)
        balances = await points.balances(conn, member_id)
        mine = await reward_claims.claims_of(conn, hub.reward_key, [member_id], now, first=50, claimant_id=None)
    opens = {o.reward.public_id: catalogue.opens_for(o.reward, level) for o in offers.offers}
    return visit.page(
        "rewards.html",
        status=status,
        offers=offers.offers,
        opens={k: v.astimezone(zone).strftime("%Y-%m-%d %H:%M") for k, v in opens.items() if v is not None},
        available=balances.available,
        claims=mine[member_id],
        attempt=secrets.token_urlsafe(16),  # a double-submitted form claims once
        yuan=yuan,
        **extra,
    )


@signed_in
async def claim_reward(visit: Visit) -> Response:
    """The member claims for themself: no partner in between, so no partner's consent; the sponsor holds the points."""
    hub = visit.hub
    cmd = reward_claims.ClaimReward(
        visit.request.path_params["reward_id"], 1, str(visit.form.get("idempotency_key") or secrets.token_urlsafe(16))
    )
    try:
        await retrying(
            hub.db,
            lambda conn: reward_claims.claim(
                conn, hub.reward_key, cmd, member_id=visit.member_id, claimant_id=None, now=visit.now,
                zone=hub.settings.points_policy.zone,
            ),
        )  # fmt: skip
    except DomainError as error:
        label = visit.t(error.code)
        return await _rewards(visit, status=409, error=error.message if label == error.code else label)
    return RedirectResponse("/portal/rewards?notice=claimed", status_code=303)


@signed_in
async def give_back(visit: Visit) -> Response:
    hub = visit.hub
    cmd = reward_claims.VoidClaim(visit.request.path_params["claim_id"], "portal")
    try:
        await retrying(
            hub.db,
            lambda conn: reward_claims.void(
                conn, hub.reward_key, cmd, claimant_id=None, member_id=visit.member_id, now=visit.now
            ),
        )
    except DomainError as error:
        return await _rewards(visit, status=409, error=error.message)
    return RedirectResponse("/portal/rewards?notice=saved", status_code=303)


@signed_in
async def access_log_page(visit: Visit) -> Response:
    async with visit.hub.db.read() as conn:
        entries = await access_logs.for_member(conn, visit.member_id)
    return visit.page("access_log.html", entries=entries)


@signed_in
async def privacy_page(visit: Visit) -> Response:
    return visit.page("privacy.html")


@signed_in
async def export(visit: Visit) -> Response:
    async with visit.hub.db.read() as conn:
        document = await privacy.export(conn, visit.member_id, visit.now)
    return Response(
        json.dumps(document, ensure_ascii=False, indent=2),
        media_type="application/json",
        headers={**HEADERS, "Content-Disposition": 'attachment; filename="my-hub-data.json"'},
    )


@signed_in
async def erase(visit: Visit) -> Response:
    if visit.form.get("confirm") != "yes":
        return visit.page("privacy.html", status=400, error=visit.t("erase_confirm"))
    async with visit.hub.db.write() as conn:
        await privacy.erase(conn, visit.member_id, now=visit.now)
    response = message(visit.request, visit.t("erase"), visit.t("erased"), status=200)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


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
    Route("/portal/rewards", rewards_page, methods=["GET"]),
    Route("/portal/rewards/{reward_id}/claim", claim_reward, methods=["POST"]),
    Route("/portal/reward-claims/{claim_id}/void", give_back, methods=["POST"]),
    Route("/portal/access-log", access_log_page, methods=["GET"]),
    Route("/portal/privacy", privacy_page, methods=["GET"]),
    Route("/portal/export", export, methods=["POST"]),
    Route("/portal/erase", erase, methods=["POST"]),
    Route("/oauth/authorize", authorize.authorize, methods=["GET", "POST"]),
]
