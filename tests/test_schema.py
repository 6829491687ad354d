"""The schema as a whole: every root field is guarded, limits hold, errors carry codes, the SDL is published."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import httpx
import pytest
from graphql import build_ast_schema, find_breaking_changes, parse
from strawberry.permission import PermissionExtension
from strawberry.utils.str_converters import to_camel_case

from hub.config import Settings
from hub.schema import Mutation, Query, build_schema, client_sdl
from hub.schema.members import NESTED, Member
from tests.conftest import ROOT, PartnerClient

FEDERATION_FIELDS = {"_service", "_entities"}  # _entities checks scope and consent in resolve_reference


def test_every_root_field_declares_a_permission() -> None:
    for root in (Query, Mutation):
        for field in root.__strawberry_definition__.fields:  # type: ignore[attr-defined]
            guarded = any(isinstance(ext, PermissionExtension) for ext in field.extensions)
            assert guarded, f"{root.__name__}.{field.python_name} has no permission"


def test_every_field_of_a_member_declares_what_it_discloses() -> None:
    """A Member field is the partner's own identifiers, a value `handing_out` sets under a declared permission or
    scope, or a resolver wrapped by `consented`: nothing reaches member data undeclared."""
    identifiers = {"id", "external_id", "member_since", "view"}  # view: private, never in the schema
    for field in Member.__strawberry_definition__.fields:  # type: ignore[attr-defined]
        name = field.python_name
        if name in identifiers:
            continue
        nested = NESTED.get(field.graphql_name or name) or NESTED.get(to_camel_case(name))
        if field.base_resolver is None:
            assert nested is not None and nested.value is not None, f"Member.{name} is set by nobody"
            assert nested.permission or nested.scope, f"Member.{name} declares no permission"
        else:
            assert getattr(field.base_resolver.wrapped_func, "permission", None), f"Member.{name} is not consented"


def test_published_sdl_is_committed() -> None:
    sdl = client_sdl(build_schema(Settings()))
    committed = (ROOT / "docs" / "schema.graphql").read_text()
    assert committed == sdl + "\n", "run `hub schema print > docs/schema.graphql` and commit it"


async def test_generic_tools_load_the_published_sdl(http: httpx.AsyncClient) -> None:
    """What `gql` and graphql-core do with an SDL (the issue found both refused the federation one)."""
    from gql import Client, gql
    from graphql import build_schema as load

    sdl = (await http.get("/schema.graphql")).text
    assert load(sdl).get_type("Member") is not None
    client = Client(schema=sdl)
    client.validate(gql("query($id: ID!) { member(id: $id) { points { available } pageInfo: __typename } }"))


def test_no_breaking_change_since_the_previous_commit_that_is_not_in_the_changelog() -> None:
    base = os.environ.get("HUB_SCHEMA_BASE", "HEAD~1")
    shown = subprocess.run(  # noqa: S603
        ["git", "show", f"{base}:docs/schema.graphql"],  # noqa: S607
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if shown.returncode != 0:
        pytest.skip(f"no docs/schema.graphql at {base} (not a git checkout, or the first commit)")
    # The previous SDL may be the federation print of older commits: its applied directives are not defined.
    before = build_ast_schema(parse(shown.stdout), assume_valid_sdl=True)
    now = build_ast_schema(parse((ROOT / "docs" / "schema.graphql").read_text()))
    listed = (ROOT / "docs" / "schema-changes.md").read_text()
    unlisted = [c.description for c in find_breaking_changes(before, now) if f"`{c.description}`" not in listed]
    assert not unlisted, f"breaking changes since {base} not in docs/schema-changes.md: {unlisted}"


def test_the_breaking_change_check_finds_a_removed_field() -> None:
    sdl = (ROOT / "docs" / "schema.graphql").read_text()
    renamed = sdl.replace("  settlementStatement(", "  renamedStatement(")
    changes = find_breaking_changes(build_ast_schema(parse(sdl)), build_ast_schema(parse(renamed)))
    assert "Field Query.settlementStatement was removed." in [c.description for c in changes]


async def test_sdl_endpoint(http: httpx.AsyncClient) -> None:
    response = await http.get("/schema.graphql")
    assert response.status_code == 200 and "enrollMember" in response.text


async def test_alias_and_token_limits(make_partner: Any) -> None:
    partner: PartnerClient = await make_partner()
    aliases = "{ " + " ".join(f"a{i}: viewer {{ scopes }}" for i in range(40)) + " }"
    tokens = "{ viewer { " + "scopes " * 2500 + "} }"
    for query, code in ((aliases, "GRAPHQL_VALIDATION_FAILED"), (tokens, "GRAPHQL_PARSE_FAILED")):
        result = await partner.gql(query)
        assert result["data"] is None
        assert result["errors"][0]["extensions"]["code"] == code, result
    nested = "{ members(first: 1) { edges { node { id } } } }"
    assert "errors" not in await partner.gql(nested)


async def test_depth_limit(settings: Settings, make_partner: Any) -> None:
    """Today's schema has no cycles (its deepest selection is 3 levels below the root): shown with a lower limit."""
    from dataclasses import replace

    from hub.app import create_app

    partner: PartnerClient = await make_partner()
    token = await partner.token()
    app = create_app(replace(settings, graphql_max_depth=2))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as client:
        response = await client.post(
            "/graphql",
            json={"query": "query DepthProbe { members { edges { node { id } } } }"},
            headers={"Authorization": f"Bearer {token}"},
        )
    await app.state.hub.close()
    assert response.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "nested more than 2 levels deep" in response.json()["errors"][0]["message"]


async def test_malformed_http_requests_are_refused_with_a_code(make_partner: Any) -> None:
    partner: PartnerClient = await make_partner()
    auth = {"Authorization": f"Bearer {await partner.token()}"}
    json_type = {**auth, "Content-Type": "application/json"}
    cases: list[tuple[dict[str, Any], int, str]] = [
        (
            {"content": b"query=%7Bviewer%7Bscopes%7D%7D", "headers": {**auth, "Content-Type": "text/plain"}},
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        ({"content": b"{not json", "headers": json_type}, 400, "BAD_REQUEST"),
        ({"json": [{"query": "{ viewer { scopes } }"}], "headers": auth}, 400, "BAD_REQUEST"),
        ({"json": {"query": "{ viewer { scopes } }", "variables": [1]}, "headers": auth}, 400, "BAD_REQUEST"),
        ({"json": {"query": 7}, "headers": auth}, 400, "BAD_REQUEST"),
        ({"json": {"variables": {}}, "headers": auth}, 400, "BAD_REQUEST"),
        (
            {"json": {"query": "query A { viewer { scopes } }", "operationName": "B"}, "headers": auth},
            400,
            "BAD_REQUEST",
        ),
        ({"json": {"query": "subscription { x }"}, "headers": auth}, 400, "BAD_REQUEST"),
        ({"content": b" " * (1 << 20) + b"{}", "headers": json_type}, 413, "PAYLOAD_TOO_LARGE"),
    ]
    for request, status, code in cases:
        response = await partner.http.post("/graphql", **request)
        assert response.status_code == status, (request, response.text)
        assert response.json()["errors"][0]["extensions"]["code"] == code, response.text
    fine = await partner.http.post("/graphql", json={"query": "{ viewer { scopes } }"}, headers=json_type)
    assert fine.status_code == 200 and fine.headers["content-type"] == "application/json"


async def test_parse_and_validation_errors_have_codes(make_partner: Any) -> None:
    partner: PartnerClient = await make_partner()
    syntax = await partner.http.post(
        "/graphql", json={"query": "{ viewer { scopes "}, headers={"Authorization": f"Bearer {await partner.token()}"}
    )
    assert syntax.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    unknown = await partner.gql("{ viewer { nope } }")
    assert unknown["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_graphiql_only_in_development(settings: Settings) -> None:
    from dataclasses import replace

    from hub.app import create_app

    for env, expect in (("development", 200), ("production", 404)):
        app = create_app(replace(settings, env=env))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
            page = await client.get("/graphql", headers={"Accept": "text/html"})
        await app.state.hub.close()
        assert (page.status_code == 200 and "graphiql" in page.text.lower()) == (expect == 200), env


async def test_production_masks_unexpected_errors(tmp_path: Any, settings: Settings) -> None:
    """A resolver failing for a reason nobody planned (here: a database without tables) must not leak detail."""
    from dataclasses import replace

    from hub.auth.principal import Principal
    from hub.clock import Clock
    from hub.partners.service import Partner
    from hub.schema.context import Context
    from hub.state import Hub

    broken = replace(settings, database_url=f"sqlite:///{tmp_path / 'empty.sqlite3'}", env="production")
    hub = Hub.create(broken)
    principal = Principal(
        partner=Partner(id=1, public_id="ptn_x", name="x", kind="gym", status="active"),
        client_pk=1,
        client_id="hub_ci_x",
        jti="j",
        scopes=frozenset({"member:read"}),
    )
    context = Context(hub=hub, principal=principal, now=Clock().now())
    for env, leaks in (("production", False), ("development", True)):
        schema = build_schema(replace(broken, env=env))
        result = await schema.execute('{ member(id: "mbr_x") { id } }', context_value=context)
        assert result.errors is not None
        assert ("no such table" in result.errors[0].message) is leaks
    await hub.close()
