from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from strawberry.types import Info as _Info

from hub.auth.principal import Principal
from hub.state import Hub


@dataclass
class Context:
    hub: Hub
    principal: Principal | None
    now: datetime  # one instant per request: every check in it sees the same time
    # Member data this request read, by (member, consent) → permissions used; logged before the response leaves.
    accessed: dict[tuple[int, int], set[str]] = field(default_factory=dict)
    cost: int | None = None  # of the operation, once measured (schema/limits.py)
    operation_name: str | None = None  # the executed operation's, once the document is parsed
    retry_after: int | None = None  # set when the client's cost budget refused the operation: HTTP 429
    # Nested member fields read for every member the request hands out (schema/batches.py): by the read's kind
    # and arguments, then by member id.
    batches: dict[tuple[Hashable, ...], dict[int, Any]] = field(default_factory=dict)

    def record_access(self, member_id: int, consent_pk: int, permission: str) -> None:
        self.accessed.setdefault((member_id, consent_pk), set()).add(permission)

    @property
    def partner_id(self) -> int:
        assert self.principal is not None, "resolvers behind a scope check always have a principal"
        return self.principal.partner.id


Info = _Info[Context, None]
