"""`hub partner`: partners (pharmacy chains, insurers, gyms), their terms and prepaid funds, suspension."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated

import typer

from hub.cli.output import JsonOption, Output
from hub.partners import service
from hub.state import Hub

NAME = "partner"
app = typer.Typer(help="Partners (pharmacy chains, insurers, gyms, ...).", no_args_is_help=True)
PartnerOption = Annotated[str, typer.Option(help="The partner's id (ptn_...)")]


def _record(p: service.Partner) -> dict[str, str]:
    return {"id": p.public_id, "name": p.name, "kind": p.kind, "status": p.status}


@app.command("create")
def create(
    name: Annotated[str, typer.Option(help="The partner's name")],
    kind: Annotated[str, typer.Option(help="pharmacy_chain, insurer, gym, clinic or other")],
    as_json: JsonOption = False,
) -> None:
    """Create a partner."""
    out = Output(as_json)

    async def work(hub: Hub) -> service.Partner:
        async with hub.db.write() as conn:
            return await service.create_partner(conn, name=name, kind=kind, now=hub.clock.now())

    out.emit(_record(out.run(work)), "partner created")


@app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """List partners."""
    out = Output(as_json)

    async def work(hub: Hub) -> list[service.Partner]:
        async with hub.db.read() as conn:
            return await service.list_partners(conn)

    out.rows("partners", [_record(p) for p in out.run(work)], ["id", "name", "kind", "status"], "partners")


def _status(partner: str, status: str, as_json: bool, title: str) -> None:
    out = Output(as_json)

    async def work(hub: Hub) -> service.Partner:
        async with hub.db.write() as conn:
            return await service.set_partner_status(conn, partner, status)

    out.emit(_record(out.run(work)), title)


@app.command("suspend")
def suspend(partner: PartnerOption, as_json: JsonOption = False) -> None:
    """Suspend a partner: its clients get no tokens, and the tokens they hold are refused from the next request."""
    _status(partner, "suspended", as_json, "partner suspended")


@app.command("resume")
def resume(partner: PartnerOption, as_json: JsonOption = False) -> None:
    """Resume a suspended partner."""
    _status(partner, "active", as_json, "partner resumed")


@app.command("terms")
def terms(
    partner: PartnerOption,
    point_value: Annotated[str | None, typer.Option(help="Yuan one of its points is worth, e.g. 0.01")] = None,
    billing: Annotated[str | None, typer.Option(help="prepaid or postpaid")] = None,
    activity_kinds: Annotated[
        str | None, typer.Option(help='Health activities it may record, e.g. "GYM_VISIT WORKOUT" ("" for none)')
    ] = None,
    at_risk_threshold: Annotated[
        float | None, typer.Option(help="Announce a member as at risk (member.at_risk) once P(alive) falls below this")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Set a partner's point value, billing (prepaid partners must be funded before they can issue), the
    health-activity kinds its contract covers and its at-risk threshold."""
    out = Output(as_json)
    try:
        value = Decimal(point_value) if point_value is not None else None
    except InvalidOperation:
        out.fail("INVALID_INPUT", f"{point_value!r} is not a number")

    async def work(hub: Hub) -> service.Terms:
        async with hub.db.write() as conn:
            return await service.set_terms(
                conn,
                partner_public_id=partner,
                point_value=value,
                billing=billing,
                activity_kinds=activity_kinds.split() if activity_kinds is not None else None,
                at_risk_threshold=at_risk_threshold,
                now=hub.clock.now(),
            )

    found = out.run(work)
    data = {
        "partner_id": partner,
        "point_value": str(found.point_value),
        "billing": found.billing,
        "activity_kinds": list(found.activity_kinds),
        "at_risk_threshold": found.at_risk_threshold,
    }
    out.emit(data, "terms")


@app.command("fund")
def fund(
    partner: PartnerOption,
    points: Annotated[int, typer.Option(help="Points the partner has paid for")],
    as_json: JsonOption = False,
) -> None:
    """Top up a prepaid partner's points (record a payment received)."""
    from hub.points import ledger, queries

    out = Output(as_json)

    async def work(hub: Hub) -> int:
        async with hub.db.write() as conn:
            owner = await service.require_partner(conn, partner)
            await ledger.fund(conn, owner.id, points, hub.clock.now())
            return await queries.prepaid_balance(conn, owner.id)

    balance = out.run(work)
    out.emit({"partner_id": partner, "funded_points": points, "prepaid_balance": balance}, "partner funded")
