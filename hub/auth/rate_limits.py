"""Per-client rate limits: requests and query cost per minute, counted by `limits`.

Counted per OAuth client, in this process by default and in Redis when `HUB_REDIS_URL` is set, so that every hub
process behind a load balancer shares one count. Fixed one-minute windows: one counter per client and limit, one
increment a hit (in Redis, one round trip), and the `Retry-After` is exactly when the window ends. A client may
burst twice its rate across a window's edge; the limits are a ceiling against runaway clients, not a meter.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import storage_from_string

log = logging.getLogger("hub.rate_limits")


class RateLimited(Exception):
    def __init__(self, what: str, limit: int, retry_after: int) -> None:
        super().__init__(f"rate limit reached: {limit} {what} per minute for this client; retry in {retry_after} s")
        self.what, self.limit, self.retry_after = what, limit, retry_after


class RateLimits:
    def __init__(self, redis_url: str | None, requests_per_minute: int, cost_per_minute: int) -> None:
        uri = "async+memory://" if redis_url is None else "async+" + redis_url
        self.storage = storage_from_string(uri)
        self.limiter = FixedWindowRateLimiter(self.storage)
        self.requests_per_minute, self.cost_per_minute = requests_per_minute, cost_per_minute
        self._items: dict[int, RateLimitItem] = {}

    def _item(self, per_minute: int) -> RateLimitItem:
        item = self._items.get(per_minute)
        if item is None:
            item = self._items[per_minute] = RateLimitItemPerMinute(per_minute, namespace="hub")
        return item

    async def request(self, client_id: str, per_minute: int | None) -> None:
        """Count one request of the client; RateLimited when it is over its limit (0 everywhere: no limit)."""
        limit = per_minute or self.requests_per_minute
        if limit:
            await self._hit("requests", client_id, limit, 1)

    async def cost(self, client_id: str, cost: int, per_minute: int | None) -> None:
        """Count a query's cost against the client's budget; RateLimited when it would exceed it."""
        limit = per_minute or self.cost_per_minute
        if cost > 0 and limit:
            await self._hit("cost", client_id, limit, cost)

    async def _hit(self, what: str, client_id: str, limit: int, amount: int) -> None:
        item = self._item(limit)
        if await self.limiter.hit(item, what, client_id, cost=amount):
            return
        stats = await self.limiter.get_window_stats(item, what, client_id)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(what, limit, retry_after)
