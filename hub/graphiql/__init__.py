"""GraphiQL, served by the hub itself: no CDN, so it works on a pharmacy's closed network or a slow route abroad.

The built files come from an installed package (`graphene-django-graphiql-static`, pinned in pyproject.toml: only
its static files are used, never its Django code). Each file is pinned here by its SHA-384: the page names it
with `integrity`, so the browser checks it, and the hub checks it too at start and refuses to serve a file that
does not match (a different release of the package). The page keeps nothing in the browser's storage: the token
goes in a field of the page and lives in memory, and GraphiQL's own storage is in memory too.

Development only (`HUB_ENV=development`): in production `GET /graphql` is refused like any other GET.
"""

from __future__ import annotations

import base64
import hashlib
import html
import importlib.resources
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

PACKAGE = "graphene_django_graphiql_static"
SUBDIRECTORY = "static/graphene_django_graphiql_static"

# name → (media type, SRI hash) of the files the page loads, in order.
PINNED: dict[str, tuple[str, str]] = {
    "react.production.min.js": (
        "text/javascript",
        "sha384-7Er69WnAl0+tY5MWEvnQzWHeDFjgHSnlQfDDeWUvv8qlRXtzaF/pNo18Q2aoZNiO",
    ),
    "react-dom.production.min.js": (
        "text/javascript",
        "sha384-vj2XpC1SOa8PHrb0YlBqKN7CQzJYO72jz4CkDQ+ePL1pwOV4+dn05rPrbLGUuvCv",
    ),
    "graphiql.min.js": ("text/javascript", "sha384-D/IKSk3XqkadtnKEtZYmq7ogOIY6TFrKojcZiAhIqroSy4U+N1sXmMv0NdoHhzgr"),
    "graphiql.min.css": ("text/css", "sha384-d7FYWnzKaTlP7q6QjcR7cgBzQ7qg7I5ghGeuzwLjzmmLGfgi8fXpUaebuXTTzcVK"),
}
OURS = Path(__file__).parent / "hub-graphiql.js"  # the hub's own start-up script (this repository's code)


def sri(content: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(content).digest()).decode()


@dataclass(frozen=True)
class Asset:
    content: bytes
    media_type: str
    integrity: str


def load() -> dict[str, Asset]:
    """The pinned files as installed, each checked against its pin; raises if one is missing or differs."""
    folder = importlib.resources.files(PACKAGE).joinpath(SUBDIRECTORY)
    found = {}
    for name, (media_type, pinned) in PINNED.items():
        content = folder.joinpath(name).read_bytes()
        if sri(content) != pinned:
            raise RuntimeError(f"GraphiQL asset {name} does not match its pin: another release of {PACKAGE}?")
        found[name] = Asset(content, media_type, pinned)
    script = OURS.read_bytes()
    found[OURS.name] = Asset(script, "text/javascript", sri(script))
    return found


class GraphiQL:
    def __init__(self, endpoint: str = "/graphql") -> None:
        self.assets = load()
        tags = []
        for name, asset in self.assets.items():
            src = f"/graphiql/{name}"
            if asset.media_type == "text/css":
                tags.append(f'<link rel="stylesheet" href="{src}" integrity="{asset.integrity}">')
            else:
                tags.append(f'<script src="{src}" integrity="{asset.integrity}" defer></script>')
        self.body = PAGE.format(assets="\n    ".join(tags), endpoint=html.escape(endpoint, quote=True))

    def page(self) -> HTMLResponse:
        headers = {
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            # Nothing from elsewhere: scripts, styles, fonts and requests go to this hub only.
            "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        }
        return HTMLResponse(self.body, headers=headers)

    async def asset(self, request: Request) -> Response:
        found = self.assets.get(request.path_params["name"])
        if found is None:
            return Response(status_code=404)
        return Response(
            found.content,
            media_type=found.media_type,
            headers={"Cache-Control": "public, max-age=86400, immutable", "X-Content-Type-Options": "nosniff"},
        )


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
    <meta charset="utf-8">
    <title>hub · GraphiQL</title>
    {assets}
    <style>
      html, body {{ height: 100%; margin: 0; }}
      body {{ display: flex; flex-direction: column; font-family: system-ui, sans-serif; }}
      #bar {{ display: flex; gap: .5em; align-items: center; padding: .4em .8em; border-bottom: 1px solid #ddd; }}
      #bar input {{ flex: 1; font-family: monospace; }}
      #graphiql {{ flex: 1; min-height: 0; }}
    </style>
</head>
<body data-endpoint="{endpoint}">
    <div id="bar">
      <label for="token">Access token</label>
      <input id="token" type="password" autocomplete="off" spellcheck="false"
             placeholder="paste a token from /oauth/token: kept in this page's memory only, never stored">
    </div>
    <div id="graphiql">Loading GraphiQL…</div>
</body>
</html>
"""
