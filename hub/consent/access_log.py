"""The access log: every read of member data by a partner, written before the data leaves the hub.

Writing one row per request in its own transaction would double the cost of a read. Instead requests hand their
rows to a group-commit writer: while one INSERT is in flight, the rows of every request that arrives meanwhile
wait and go together in the next, as one statement (a page of a hundred members is one INSERT, not a hundred).
Each request still waits until its rows are committed, so a response with member data is never sent without its
log entry (and if the log cannot be written, the data is not sent).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, BigInteger, DateTime, Text, bindparam, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.consent.models import access_log, consent
from hub.db import Database
from hub.members.models import member
from hub.partners.models import partner


@dataclass(frozen=True)
class Access:
    member_id: int
    partner_id: int
    consent_id: int
    categories: frozenset[str]
    occurred_at: datetime


class AccessLog:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._waiting: list[tuple[list[Access], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, accesses: list[Access]) -> None:
        """Return once the rows are committed; raise if they could not be."""
        if not accesses:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((accesses, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        await done

    async def _write_all(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            rows = [
                {
                    "member_id": a.member_id,
                    "partner_id": a.partner_id,
                    "consent_id": a.consent_id,
                    "categories": " ".join(sorted(a.categories)),
                    "occurred_at": a.occurred_at,
                }
                for accesses, _ in batch
                for a in accesses
            ]
            try:
                await self._insert(rows)
            except Exception as exc:  # every waiting request learns of the failure
                for _, done in batch:
                    done.set_exception(exc)
                continue
            for _, done in batch:
                done.set_result(None)

    async def _insert(self, rows: list[dict[str, Any]]) -> None:
        """The rows in one INSERT statement, atomic by itself (no BEGIN and COMMIT round trips). SQLite takes them
        in chunks, in one transaction, when more requests wait than one statement can carry."""
        if self.db.backend == "postgresql":
            async with self.db.single_statement() as conn:
                await conn.execute(_UNNESTED, {name: [r[column] for r in rows] for name, column in _ARRAYS})
        elif len(rows) <= SQLITE_CHUNK:
            async with self.db.single_statement() as conn:
                await conn.execute(insert(access_log).values(rows))
        else:
            async with self.db.write() as conn:
                for start in range(0, len(rows), SQLITE_CHUNK):
                    await conn.execute(insert(access_log).values(rows[start : start + SQLITE_CHUNK]))


SQLITE_CHUNK = 1000  # rows per statement on SQLite: within its bound on parameters (5 a row)

_ARRAYS = [
    ("member_ids", "member_id"),
    ("partner_ids", "partner_id"),
    ("consent_ids", "consent_id"),
    ("categories", "categories"),
    ("occurred_ats", "occurred_at"),
]
# PostgreSQL: the rows as five arrays, unnested into one INSERT: one statement text whatever the row count, so one
# prepared statement, and five parameters instead of five a row.
_UNNESTED = insert(access_log).from_select(
    ["member_id", "partner_id", "consent_id", "categories", "occurred_at"],
    select(
        func.unnest(bindparam("member_ids", type_=ARRAY(BigInteger))),
        func.unnest(bindparam("partner_ids", type_=ARRAY(BigInteger))),
        func.unnest(bindparam("consent_ids", type_=ARRAY(BigInteger))),
        func.unnest(bindparam("categories", type_=ARRAY(Text))),
        func.unnest(bindparam("occurred_ats", type_=ARRAY(DateTime(timezone=True)))),
    ),
)


@dataclass(frozen=True)
class LoggedAccess:
    partner_name: str
    categories: list[str]
    consent_public_id: str
    occurred_at: datetime
    via: str | None = None  # "webhook:<event type>" when a webhook delivery disclosed it


async def for_member(conn: AsyncConnection, member_id: int, *, limit: int = 200) -> list[LoggedAccess]:
    """The member's own view: who read what, when, under which consent (newest first), including what partners
    read of records since merged into theirs (the log is append-only, so those rows keep their member)."""
    merged = select(member.c.id).where(member.c.merged_into == member_id)
    rows = await conn.execute(
        select(partner.c.name, access_log.c.categories, consent.c.public_id, access_log.c.occurred_at, access_log.c.via)
        .join(partner, partner.c.id == access_log.c.partner_id)
        .join(consent, consent.c.id == access_log.c.consent_id)
        .where(or_(access_log.c.member_id == member_id, access_log.c.member_id.in_(merged)))
        .order_by(access_log.c.id.desc())
        .limit(limit)
    )
    return [LoggedAccess(r.name, r.categories.split(), r.public_id, r.occurred_at, r.via) for r in rows]
