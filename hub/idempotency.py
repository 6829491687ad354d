"""Idempotency, written once for every command that takes an `idempotencyKey` (the ledger's, purchases, refunds,
activities, reward claims and redemptions, and the import, which stores the same request hashes).

- `check_key`: a key is 1 to 200 characters, checked before anything else.
- `fingerprint`: the hash stored with a key: the command's name and every input but the key, as canonical JSON.
- `replayed`: a key (or reference) found stored: the same request answers with the stored result, a different one
  is refused (`IDEMPOTENCY_CONFLICT`, or the caller's code, such as `DUPLICATE_REFERENCE`).
- `retrying`: one transaction for a command, run again when a concurrent twin claimed the same key or reference
  first (the next attempt finds it and replays), or PostgreSQL reports a serialization failure or deadlock.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import fields, is_dataclass
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db import Database
from hub.errors import DomainError

T = TypeVar("T")
MAX_KEY = 200
CONFLICT = "this idempotency key was used for a different request"


class ClaimLost(Exception):
    """The idempotency key (or reference) was claimed by a concurrent request first: roll back and look again."""


def check_key(key: str) -> None:
    if not 1 <= len(key) <= MAX_KEY:
        raise DomainError("INVALID_INPUT", f"idempotencyKey must be 1 to {MAX_KEY} characters", "idempotencyKey")


def _plain(value: Any) -> Any:
    """A command as JSON-ready data (what `dataclasses.asdict` gives, without its deep copies: imports hash
    millions of these)."""
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value


def fingerprint(cmd: Any) -> str:
    """The hash stored with an idempotency key: the command (its `COMMAND`) and every input but the key itself."""
    data = _plain(cmd)
    del data["idempotency_key"]
    canonical = json.dumps({"command": cmd.COMMAND, **data}, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def conflict(code: str = "IDEMPOTENCY_CONFLICT", message: str = CONFLICT, field: str = "idempotencyKey") -> DomainError:
    return DomainError(code, message, field)


def replayed(stored_hash: str | None, digest: str, **refusal: str) -> None:
    """A stored request under the same key: nothing to do if it was this request (the caller answers with what it
    stored), else the refusal (by default IDEMPOTENCY_CONFLICT on `idempotencyKey`)."""
    if stored_hash != digest:
        raise conflict(**refusal)


def retryable(exc: DBAPIError) -> bool:
    """PostgreSQL serialization failure or deadlock: the whole command may safely run again with its key."""
    return getattr(exc.orig, "sqlstate", None) in ("40001", "40P01")


async def pause(attempt: int) -> None:
    """A short random back-off before the next attempt, growing with each."""
    await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))


async def retrying(db: Database, work: Callable[[AsyncConnection], Awaitable[T]], attempts: int = 4) -> T:
    """`work` in one write transaction, run again when a concurrent twin won the race for its key or reference (an
    IntegrityError on their unique constraints, or ClaimLost), or on a retryable PostgreSQL error."""
    for attempt in range(attempts):
        try:
            async with db.write() as conn:
                return await work(conn)
        except (IntegrityError, ClaimLost):
            if attempt == attempts - 1:
                raise
        except DBAPIError as exc:
            if not retryable(exc) or attempt == attempts - 1:
                raise
        await pause(attempt)
    raise AssertionError("unreachable")
