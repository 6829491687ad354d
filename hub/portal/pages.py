"""What every portal page shares: rendering with the hub's labels and security headers, cookies, the session, and
the one door to a signed-in member's pages (`signed_in`).

Every form carries a CSRF token: the session's own once the member is signed in, and before that a double-submit
cookie. Cookies are HttpOnly, SameSite=Lax, and Secure whenever the hub is served over https. Pages are never cached
and never framed (the consent screen must not be clickjacked).
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from hub.members import signin
from hub.portal.labels import LABELS, permission_label, pick, translator
from hub.state import Hub

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

HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def client_ip(request: Request) -> str:
    # The socket's peer, or what a proxy named in HUB_TRUSTED_PROXIES reported (uvicorn applies only those).
    return request.client.host if request.client else "unknown"


def hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def lang_of(request: Request) -> str:
    return pick(request.query_params.get("lang") or request.cookies.get(LANG_COOKIE))


def words(request: Request) -> Callable[[str], str]:
    """The page's labels in the member's language."""
    return translator(lang_of(request))


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=hub_of(request).settings.secure_cookies,
        path="/",
    )


def page(
    request: Request,
    template: str,
    *,
    status: int = 200,
    session: signin.Session | None = None,
    csrf_token: str = "",
    **values: Any,
) -> HTMLResponse:
    lang = lang_of(request)
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
    response = templates.TemplateResponse(request, template, context, status_code=status, headers=HEADERS)
    if "lang" in request.query_params:
        set_cookie(request, response, LANG_COOKIE, lang, max_age=365 * 24 * 3600)
    return response


def message(request: Request, heading: str, text: str, *, status: int = 400, **values: Any) -> HTMLResponse:
    return page(request, "message.html", status=status, heading=heading, message=text, **values)


async def current_session(request: Request) -> signin.Session | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    hub = hub_of(request)
    async with hub.db.read() as conn:
        return await signin.session(conn, token, now=hub.clock.now())


def to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/portal/login?" + urlencode({"next": target}), status_code=303)


def safe_next(target: str | None) -> str:
    # Only paths on this hub: never an absolute or scheme-relative URL (no open redirect after sign-in).
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/portal"


async def read_form(request: Request) -> dict[str, Any]:
    form = await request.form()
    values: dict[str, Any] = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            values.setdefault(key, []).append(value)
    return {key: items if key == "permission" else items[0] for key, items in values.items()}


def csrf_ok(expected: str | None, form: dict[str, Any]) -> bool:
    given = form.get("csrf_token")
    return bool(expected) and isinstance(given, str) and secrets.compare_digest(given, str(expected))


def forbidden(request: Request) -> HTMLResponse:
    log.warning("a form without its CSRF token", extra={"security": "csrf"})
    return message(request, words(request)("error"), "CSRF check failed", status=403)


@dataclass(frozen=True)
class Visit:
    """A signed-in member's request: its session and, for a POST, its CSRF-checked form."""

    request: Request
    session: signin.Session
    form: dict[str, Any]

    @property
    def hub(self) -> Hub:
        return hub_of(self.request)

    @property
    def member_id(self) -> int:
        return self.session.member_id

    @property
    def now(self) -> datetime:
        return self.hub.clock.now()

    def t(self, key: str) -> str:
        return words(self.request)(key)

    def page(self, template: str, **values: Any) -> HTMLResponse:
        return page(self.request, template, session=self.session, **values)


Handler = Callable[[Visit], Awaitable[Response]]


def signed_in(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """The one door to a member's pages: no session goes to sign-in (and back here after), and a POST whose form
    lacks the session's CSRF token is refused before the handler runs."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        session = await current_session(request)
        if session is None:
            return to_login(request)
        form: dict[str, Any] = {}
        if request.method == "POST":
            form = await read_form(request)
            if not csrf_ok(session.csrf_token, form):
                return forbidden(request)
        return await handler(Visit(request, session, form))

    return endpoint
