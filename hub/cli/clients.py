"""`hub client`: partners' OAuth clients: create, list, rate limits, disable and enable, rotate a secret."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from hub.cli.output import JsonOption, Output
from hub.config import Settings
from hub.partners import service
from hub.state import Hub

NAME = "client"
app = typer.Typer(help="OAuth clients of partners.", no_args_is_help=True)
ClientOption = Annotated[str, typer.Option(help="The client's id (hub_ci_...)")]


@app.command("create")
def create(
    partner: Annotated[str, typer.Option(help="The partner's id (ptn_...)")],
    scopes: Annotated[str, typer.Option(help="Space-separated scopes: the client's ceiling")],
    auth_method: Annotated[
        str, typer.Option(help="client_secret_basic, client_secret_post or private_key_jwt")
    ] = "client_secret_basic",
    jwks: Annotated[
        Path | None, typer.Option(help="JWK Set file of the client's public keys (private_key_jwt)")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A label for the client")] = None,
    redirect_uri: Annotated[
        list[str] | None, typer.Option(help="Redirect URI for the authorization code grant (repeatable)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an OAuth client for a partner. The secret is printed once and stored only as a hash."""
    out = Output(as_json)
    try:
        key_set = json.loads(jwks.read_text()) if jwks else None
    except (OSError, ValueError) as exc:
        out.fail("INVALID_INPUT", f"cannot read the JWK Set {jwks}: {exc}")

    async def work(hub: Hub) -> service.NewClient:
        async with hub.db.write() as conn:
            return await service.create_client(
                conn,
                partner_public_id=partner,
                scopes=frozenset(scopes.split()),
                auth_method=auth_method,
                jwks=key_set,
                name=name,
                redirect_uris=redirect_uri,
                now=hub.clock.now(),
            )

    created = out.run(work)
    data = {
        "client_id": created.client_id,
        "client_secret": created.client_secret,
        "partner_id": created.partner_public_id,
        "scopes": " ".join(sorted(created.scopes)),
        "auth_method": created.auth_method,
        "redirect_uris": redirect_uri or [],
    }
    out.emit(data, "client created: the secret is shown only now")


@app.command("list")
def list_(
    partner: Annotated[str | None, typer.Option(help="Only this partner's clients (ptn_...)")] = None,
    as_json: JsonOption = False,
) -> None:
    """List clients: their partner, scopes, authentication, status and how many secrets are live."""
    out = Output(as_json)

    async def work(hub: Hub) -> list[service.ClientView]:
        async with hub.db.read() as conn:
            return await service.list_clients(conn, partner_public_id=partner, now=hub.clock.now())

    rows = [
        {
            "client_id": c.client_id, "partner_id": c.partner_public_id, "name": c.name, "scopes": c.scopes,
            "auth_method": c.auth_method, "status": c.status, "live_secrets": c.secrets,
            "created_at": c.created_at.isoformat(),
        }
        for c in out.run(work)
    ]  # fmt: skip
    columns = ["client_id", "partner_id", "name", "auth_method", "status", "live_secrets", "scopes"]
    out.rows("clients", rows, columns, "clients")


def _status(client: str, status: str, as_json: bool, title: str) -> None:
    out = Output(as_json)

    async def work(hub: Hub) -> None:
        async with hub.db.write() as conn:
            await service.set_client_status(conn, client, status)

    out.run(work)
    out.emit({"client_id": client, "status": status}, title)


@app.command("disable")
def disable(client: ClientOption, as_json: JsonOption = False) -> None:
    """Disable a client: no new tokens, and the tokens it holds are refused from the next request."""
    _status(client, "disabled", as_json, "client disabled")


@app.command("enable")
def enable(client: ClientOption, as_json: JsonOption = False) -> None:
    """Enable a disabled client again."""
    _status(client, "active", as_json, "client enabled")


@app.command("rotate-secret")
def rotate_secret(
    client: ClientOption,
    grace_hours: Annotated[
        float, typer.Option(help="Hours the old secret keeps working, to deploy the new one (0: it stops now)")
    ] = 0,
    revoke_tokens: Annotated[
        bool, typer.Option("--revoke-tokens", help="Also end every token the client holds (the secret leaked)")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Give a client a new secret, printed once and stored only as a hash."""
    out = Output(as_json)

    async def work(hub: Hub) -> str:
        async with hub.db.write() as conn:
            return await service.rotate_client_secret(
                conn, client, now=hub.clock.now(), grace=timedelta(hours=grace_hours), revoke_tokens=revoke_tokens
            )

    secret = out.run(work)
    data = {
        "client_id": client,
        "client_secret": secret,
        "old_secrets_valid_for_hours": grace_hours,
        "tokens_revoked": revoke_tokens,
    }
    out.emit(data, "new secret: shown only now")


@app.command("limits")
def limits(
    client: ClientOption,
    requests_per_minute: Annotated[
        int | None, typer.Option(help="Requests a minute (0: the hub's default, HUB_RATE_LIMIT_REQUESTS)")
    ] = None,
    cost_per_minute: Annotated[
        int | None, typer.Option(help="Query cost a minute (0: the hub's default, HUB_RATE_LIMIT_COST)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show or set a client's rate limits; a request over them is answered 429 with Retry-After."""
    out = Output(as_json)

    async def work(hub: Hub) -> tuple[service.ClientLimits, Settings]:
        async with hub.db.write() as conn:
            found = await service.set_client_limits(
                conn, client_id=client, requests_per_minute=requests_per_minute, cost_per_minute=cost_per_minute
            )
        return found, hub.settings

    found, settings = out.run(work)
    data = {
        "client_id": found.client_id,
        "requests_per_minute": found.requests_per_minute or settings.rate_limit_requests,
        "cost_per_minute": found.cost_per_minute or settings.rate_limit_cost,
        "own_limits": found.requests_per_minute is not None or found.cost_per_minute is not None,
    }
    out.emit(data, "client limits")
