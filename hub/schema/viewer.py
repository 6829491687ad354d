from __future__ import annotations

import strawberry

from hub.schema.context import Info
from hub.schema.permissions import authenticated


@strawberry.type(name="Partner")
class PartnerType:
    id: strawberry.ID
    name: str
    kind: str


@strawberry.type
class Viewer:
    partner: PartnerType
    scopes: list[str] = strawberry.field(
        description="What this request may do: token scopes within the client's ceiling"
    )


@strawberry.type
class ViewerQueries:
    @strawberry.field(extensions=authenticated(), description="The calling partner and its effective scopes.")
    def viewer(self, info: Info) -> Viewer:
        principal = info.context.principal
        assert principal is not None
        partner = principal.partner
        return Viewer(
            partner=PartnerType(id=strawberry.ID(partner.public_id), name=partner.name, kind=partner.kind),
            scopes=sorted(principal.scopes),
        )
