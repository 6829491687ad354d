"""GraphiQL's files: served by the hub in development, each checked against its pinned SHA-384 (the browser test
in test_browser.py runs a query in it with no network but the hub)."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import pytest

from hub import graphiql
from hub.app import create_app


async def test_graphiql_and_its_assets_in_development_only(settings: Any, clock: Any) -> None:
    for env, page_status in (("development", 200), ("production", 405)):
        app = create_app(dataclasses.replace(settings, env=env), clock=clock)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=settings.issuer) as client:
            page = await client.get("/graphql", headers={"Accept": "text/html"})
            assert page.status_code == page_status
            asset = await client.get("/graphiql/graphiql.min.js")
            if env == "production":
                assert asset.status_code == 404
                continue
            assert "unpkg" not in page.text and "cdn" not in page.text.lower()
            for name, (_, pinned) in graphiql.PINNED.items():
                assert (
                    f'src="/graphiql/{name}" integrity="{pinned}"' in page.text
                    or f'href="/graphiql/{name}"' in page.text
                )
            assert asset.status_code == 200 and graphiql.sri(asset.content) == graphiql.PINNED["graphiql.min.js"][1]
            assert (await client.get("/graphiql/../../etc/passwd")).status_code == 404
            assert "connect-src 'self'" in page.headers["content-security-policy"]


def test_an_asset_that_does_not_match_its_pin_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    pins = dict(graphiql.PINNED)
    pins["graphiql.min.js"] = ("text/javascript", "sha384-" + "A" * 64)
    monkeypatch.setattr(graphiql, "PINNED", pins)
    with pytest.raises(RuntimeError, match="does not match its pin"):
        graphiql.load()
