from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from strawberry.dataloader import DataLoader
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
    retry_after: int | None = None  # set when the client's cost budget refused the operation: HTTP 429
    # Per-request loaders: a nested field asked of every member of a page is read once for the whole page.
    loaders: dict[str, DataLoader[Any, Any]] = field(default_factory=dict)

    def loader(self, name: str, load: Callable[[Sequence[Any]], Awaitable[Sequence[Any]]]) -> DataLoader[Any, Any]:
        found = self.loaders.get(name)
        if found is None:
            found = self.loaders[name] = DataLoader(load_fn=_shielded(load))
        return found

    def record_access(self, member_id: int, consent_pk: int, permission: str) -> None:
        self.accessed.setdefault((member_id, consent_pk), set()).add(permission)

    @property
    def partner_id(self) -> int:
        assert self.principal is not None, "resolvers behind a scope check always have a principal"
        return self.principal.partner.id


Info = _Info[Context, None]


def _shielded(load: Callable[[Sequence[Any]], Awaitable[Sequence[Any]]]) -> Callable[[Sequence[Any]], Awaitable[Any]]:
    """A batch read runs to its end even when every field waiting for it is cancelled (graphql-core cancels the
    siblings of a field whose error nulls their parent, and the DataLoader then cancels its batch): cancelled
    mid-read, a connection was dropped instead of returned to its pool (SQLite showed one a request)."""

    async def run(keys: Sequence[Any]) -> Any:
        return await asyncio.shield(load(keys))

    return run
