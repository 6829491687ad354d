"""A process's cache of partner tokens' database state, dropped whenever PostgreSQL reports a change.

Re-reading a token's revocation, client and partner state was one statement per API request, and after the
redemption itself the largest part of a redemption's cost (bench/redeem.py: +44 % throughput without it). So each
process keeps the rows it read, and migration 0007's triggers NOTIFY `hub_token_state` on every change to those
columns; a listening connection per process clears the whole cache on each notification (changes are rare, and
clearing everything cannot miss a dependency). A revocation therefore reaches every process within the time
PostgreSQL takes to deliver a notification.

The cache is only used while the listener is connected: a lost listener empties it and every request reads the
database until the listener is back. A read that raced a notification is not stored (the generation counter), and
no entry lives longer than `max_age` whatever happens. Member-delegated tokens are never cached: their consent is
re-read on every request. SQLite (one process, no NOTIFY) does not cache at all, nor does a hub with
`HUB_TOKEN_CACHE_SECONDS=0`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from hub.db import backend

if TYPE_CHECKING:
    import asyncpg

CHANNEL = "hub_token_state"
RECONNECT_SECONDS = 5.0
MAX_ENTRIES = 10_000  # live partner tokens a process remembers; a client minting a token per call cannot grow it
log = logging.getLogger(__name__)


class TokenStates:
    def __init__(self, database_url: str, max_age: float = 60.0) -> None:
        self._dsn = (
            make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
            if backend(database_url) == "postgresql" and max_age > 0
            else None
        )
        self.max_age = max_age
        self._rows: dict[str, tuple[float, Any]] = {}
        self._generation = 0
        self._listener: asyncpg.Connection | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._next_attempt = 0.0

    @property
    def listening(self) -> bool:
        return self._listener is not None and not self._listener.is_closed()

    @property
    def generation(self) -> int:
        """Read before the database read, passed to `put` after it: a change in between voids the row."""
        return self._generation

    def get(self, jti: str) -> Any | None:
        if not self.listening:
            self._start_listening()
            return None
        entry = self._rows.get(jti)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, jti: str, row: Any, generation: int) -> None:
        if self.listening and generation == self._generation:
            if len(self._rows) >= MAX_ENTRIES:
                self._rows.clear()  # rare, and cheaper than tracking recency on every hit
            self._rows[jti] = (time.monotonic() + self.max_age, row)

    def changed(self, *_: object) -> None:
        self._generation += 1
        self._rows.clear()

    def _start_listening(self) -> None:
        if self._dsn is None or self._connecting is not None or time.monotonic() < self._next_attempt:
            return
        self._next_attempt = time.monotonic() + RECONNECT_SECONDS
        self._connecting = asyncio.get_running_loop().create_task(self._listen(self._dsn))

    async def _listen(self, dsn: str) -> None:
        try:
            import asyncpg  # the PostgreSQL extra: a hub on SQLite never gets here

            listener = await asyncpg.connect(dsn, timeout=RECONNECT_SECONDS)
            listener.add_termination_listener(self._lost)
            await listener.add_listener(CHANNEL, self.changed)
            self.changed()  # nothing read before the listener was in place may be stored
            self._listener = listener
        except Exception as exc:  # whatever failed, the answer is the same: no cache, requests read the database
            log.warning("token state cache off: cannot listen on %s (%r)", CHANNEL, exc)
        finally:
            self._connecting = None

    def _lost(self, _connection: object) -> None:
        log.warning("token state cache off: the listening connection closed")
        self._listener = None
        self.changed()

    async def close(self) -> None:
        if self._connecting is not None:
            await self._connecting
        listener, self._listener = self._listener, None
        if listener is not None and not listener.is_closed():
            listener.remove_termination_listener(self._lost)
            await listener.close()
        self.changed()
