"""Bulk import of a chain that joins with its members and their purchase history.

Points, growth values and tiers come out exactly as if every row had been sent through GraphQL, in file order
(`tests/test_import.py` compares the two, purchase by purchase). Rows are
committed in batches; a bad row is rejected (written to the reject file with its line number and reason) without
touching its neighbours. Rows go through `members.bulk` and `purchases.bulk`, which apply the rules of
`members.enrol` and `purchases.record` to a whole batch at once (and are tested equal to them). The job's last committed
line is stored in the same transaction as the batch, so an interrupted import resumes after it; purchases carry
the idempotency key `import:<reference>`, so nothing is counted twice even if a batch is replayed.

CSV columns (UTF-8, header row required):

members:   external_id, phone, name, birthday (YYYY-MM-DD), permissions (space-separated scopes the member
           consented to), policy_version, consent_expires_at (ISO 8601; required for health permissions)
purchases: reference, external_id, occurred_at (ISO 8601 with offset), store_id, sku, category, amount (yuan),
           quantity, prescription (true/false), insurer_paid (true/false) — one row per line; consecutive rows
           with the same reference are one purchase
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.consent.service import Evidence
from hub.db import among
from hub.errors import DomainError
from hub.members import bulk as members_bulk
from hub.members import service as members
from hub.members.models import member_link
from hub.partners.service import require_partner
from hub.purchases import bulk
from hub.purchases import service as purchases
from hub.purchases.models import import_job
from hub.state import Hub

MEMBER_COLUMNS = ("external_id", "phone", "name", "birthday", "permissions", "policy_version", "consent_expires_at")
PURCHASE_COLUMNS = (
    "reference",
    "external_id",
    "occurred_at",
    "store_id",
    "sku",
    "category",
    "amount",
    "quantity",
    "prescription",
    "insurer_paid",
)
REQUIRED = {
    "members": {"external_id", "phone", "permissions"},
    "purchases": {"reference", "external_id", "occurred_at", "sku", "amount"},
}


@dataclass
class Report:
    kind: str
    total_lines: int
    resumed_after: int
    accepted: int = 0
    rejected: int = 0
    provisional: int = 0  # members under a phone the hub knew: linked only once its owner confirms
    rejects_file: str = ""
    last_line: int = 0
    encoding: str = "utf-8"


@dataclass
class _Item:
    """One unit of work: a member row, or all the rows of one purchase."""

    first_line: int
    last_line: int
    rows: list[dict[str, str]] = field(default_factory=list)


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# What `--encoding` accepts, and what Python calls it. GB18030 extends GBK (what Excel writes on a Chinese Windows
# PC) and GB2312; UTF-8 files may start with a byte-order mark (Excel's "CSV UTF-8").
ENCODINGS = {"utf-8": "utf-8-sig", "gb18030": "gb18030", "gbk": "gb18030", "gb2312": "gb18030"}


def encoding_of(path: Path, given: str | None = None) -> str:
    """The file's text encoding: the one given, else UTF-8 if the whole file is UTF-8, else GB18030. Every line
    must decode; if none fits, the error names the first line that does not (under UTF-8, or the one given)."""
    if given is not None and given.lower() not in ENCODINGS:
        raise DomainError("INVALID_INPUT", f"encoding must be one of {', '.join(ENCODINGS)}", "encoding")
    candidates = [given.lower()] if given else ["utf-8", "gb18030"]
    failures = []
    for name in candidates:
        line = _undecodable_line(path, ENCODINGS[name])
        if line is None:
            return name
        failures.append((name, line))
    name, line = failures[0]
    tried = " or ".join(n.upper() for n, _ in failures)
    raise DomainError(
        "INVALID_ENCODING",
        f"{path.name}: line {line} is not {name.upper()} text (tried {tried}); save the file as UTF-8 or give "
        "--encoding",
        "file",
    )


def _undecodable_line(path: Path, codec: str) -> int | None:
    # Line by line: in UTF-8 and GB18030 a newline byte is never part of another character.
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                raw.decode(codec if number == 1 else codec.removesuffix("-sig"))
            except UnicodeDecodeError:
                return number
    return None


def _items(path: Path, kind: str, encoding: str) -> Iterator[_Item]:
    with path.open(newline="", encoding=ENCODINGS[encoding]) as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or [])
        known = set(MEMBER_COLUMNS if kind == "members" else PURCHASE_COLUMNS)
        if not REQUIRED[kind] <= columns or columns - known:
            missing, unknown = sorted(REQUIRED[kind] - columns), sorted(columns - known)
            raise DomainError(
                "INVALID_INPUT",
                f"{path.name}: header must name the columns {', '.join(known)}"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; unknown {', '.join(unknown)}" if unknown else ""),
                "file",
            )
        current: _Item | None = None
        for row in reader:
            line = reader.line_num
            if kind == "members":
                yield _Item(line, line, [row])
                continue
            if current is not None and row.get("reference") == current.rows[0].get("reference"):
                current.rows.append(row)
                current.last_line = line
                continue
            if current is not None:
                yield current
            current = _Item(line, line, [row])
        if current is not None:
            yield current


def count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return max(0, sum(1 for _ in handle) - 1)


def _flag(value: str | None, name: str) -> bool:
    text = (value or "").strip().lower()
    if text in ("", "false", "0", "no"):
        return False
    if text in ("true", "1", "yes"):
        return True
    raise DomainError("INVALID_INPUT", f"{name} must be true or false, got {value!r}", name)


def _when(value: str | None, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat((value or "").strip())
    except ValueError:
        raise DomainError("INVALID_INPUT", f"{name} must be an ISO 8601 time, got {value!r}", name) from None
    if moment.tzinfo is None:
        raise DomainError("INVALID_INPUT", f"{name} needs a UTC offset, got {value!r}", name)
    return moment


def _member(row: dict[str, str]) -> members.Enrolment:
    """A member row as the enrolment the API would have received."""
    birthday = None
    if (row.get("birthday") or "").strip():
        try:
            birthday = date.fromisoformat(row["birthday"].strip())
        except ValueError:
            raise DomainError(
                "INVALID_INPUT", f"birthday must be YYYY-MM-DD, got {row['birthday']!r}", "birthday"
            ) from None
    expires = (row.get("consent_expires_at") or "").strip()
    return members.Enrolment(
        external_id=(row.get("external_id") or "").strip(),
        phone=row.get("phone") or "",
        name=(row.get("name") or "").strip() or None,
        birthday=birthday,
        permissions=(row.get("permissions") or "").split(),
        evidence=Evidence(
            policy_version=(row.get("policy_version") or "").strip() or "import",
            channel="IMPORT",
            actor="import",
        ),
        consent_expires_at=_when(expires, "consent_expires_at") if expires else None,
    )


def _purchase(rows: list[dict[str, str]], pairwise: dict[str, str]) -> purchases.RecordPurchase:
    """The rows of one purchase as the command the API would have received."""
    first = rows[0]
    external_id = (first.get("external_id") or "").strip()
    if external_id not in pairwise:
        raise DomainError("MEMBER_NOT_FOUND", f"no member with external_id {external_id!r}", "external_id")
    if any((row.get("external_id") or "").strip() != external_id for row in rows):
        raise DomainError("INVALID_INPUT", "the rows of one reference name different members", "external_id")
    lines = []
    for row in rows:
        try:
            quantity = int((row.get("quantity") or "1").strip())
        except ValueError:
            raise DomainError(
                "INVALID_INPUT", f"quantity must be a whole number, got {row['quantity']!r}", "quantity"
            ) from None
        lines.append(
            purchases.LineInput(
                sku=(row.get("sku") or "").strip(),
                category=(row.get("category") or "").strip() or "general",
                amount=row.get("amount") or "",
                quantity=quantity,
                prescription=_flag(row.get("prescription"), "prescription"),
                insurer_paid=_flag(row.get("insurer_paid"), "insurer_paid"),
            )
        )
    reference = (first.get("reference") or "").strip()
    return purchases.RecordPurchase(
        member_id=pairwise[external_id],
        reference=reference,
        occurred_at=_when(first.get("occurred_at"), "occurred_at"),
        store_id=(first.get("store_id") or "").strip() or None,
        lines=tuple(lines),
        idempotency_key=f"import:{reference}",
    )


async def _job(conn: AsyncConnection, partner_id: int, kind: str, digest: str, now: datetime) -> Any:
    found = (
        await conn.execute(
            select(import_job).where(
                import_job.c.partner_id == partner_id, import_job.c.kind == kind, import_job.c.file_hash == digest
            )
        )
    ).one_or_none()
    if found is not None:
        return found
    await conn.execute(insert(import_job).values(partner_id=partner_id, kind=kind, file_hash=digest, created_at=now))
    return await _job(conn, partner_id, kind, digest, now)


async def run(
    hub: Hub,
    *,
    kind: str,
    partner_public_id: str,
    path: Path,
    rejects: Path,
    batch: int | None = None,
    progress: Callable[[int], None] | None = None,
    encoding: str | None = None,
) -> Report:
    """Import `path` (in `encoding`, or the one it is found to be in); `progress` is told how many lines each
    committed batch covered."""
    if kind not in REQUIRED:
        raise DomainError("INVALID_INPUT", "kind must be members or purchases", "kind")
    text_encoding = encoding_of(path, encoding)
    batch = batch or 5000
    digest = file_hash(path)
    async with hub.db.write() as conn:
        owner = await require_partner(conn, partner_public_id)
        job = await _job(conn, owner.id, kind, digest, hub.clock.now())
    report = Report(
        kind, count_lines(path), resumed_after=job.last_line, rejects_file=str(rejects), encoding=text_encoding
    )
    report.accepted, report.rejected, report.last_line = job.accepted, job.rejected, job.last_line
    report.provisional = job.provisional
    if job.finished_at is not None:
        return report
    if progress and job.last_line:
        progress(job.last_line - 1)  # lines already done (the header is line 1)
    mode = "a" if job.last_line else "w"
    with rejects.open(mode, newline="", encoding="utf-8") as reject_handle:
        writer = csv.writer(reject_handle)
        if mode == "w":
            writer.writerow(["line", "code", "reason", *(MEMBER_COLUMNS if kind == "members" else PURCHASE_COLUMNS)])
        pending: list[_Item] = []
        for item in _items(path, kind, text_encoding):
            if item.last_line <= job.last_line:
                continue
            pending.append(item)
            if len(pending) >= batch:
                await _commit(hub, owner.id, kind, job.id, pending, writer, report, progress)
                reject_handle.flush()
                pending = []
        if pending:
            await _commit(hub, owner.id, kind, job.id, pending, writer, report, progress)
    async with hub.db.write() as conn:
        await conn.execute(update(import_job).where(import_job.c.id == job.id).values(finished_at=hub.clock.now()))
    return report


async def _commit(
    hub: Hub,
    partner_id: int,
    kind: str,
    job_id: int,
    items: list[_Item],
    writer: Any,
    report: Report,
    progress: Callable[[int], None] | None,
) -> None:
    rejected: list[tuple[_Item, DomainError]] = []
    provisional = 0
    now = hub.clock.now()
    async with hub.db.write() as conn:
        pairwise: dict[str, str] = {}
        if kind == "purchases":
            wanted = {(item.rows[0].get("external_id") or "").strip() for item in items}
            rows = await conn.execute(
                select(member_link.c.external_id, member_link.c.pairwise_id).where(
                    member_link.c.partner_id == partner_id,
                    among(conn.dialect.name, member_link.c.external_id, wanted),
                )
            )
            pairwise = {r.external_id: r.pairwise_id for r in rows}
        if kind == "members":
            enrolments: list[tuple[_Item, members.Enrolment]] = []
            for item in items:
                try:
                    enrolments.append((item, _member(item.rows[0])))
                except DomainError as error:
                    rejected.append((item, error))
            failed, provisional = await members_bulk.enrol_many(
                conn,
                partner_id,
                [e for _, e in enrolments],
                now=now,
                region=hub.settings.default_phone_region,
            )
            rejected += [(enrolments[i][0], error) for i, error in failed.items()]
            rejected.sort(key=lambda r: r[0].first_line)
        else:
            parsed: list[tuple[_Item, purchases.RecordPurchase]] = []
            for item in items:
                try:
                    parsed.append((item, _purchase(item.rows, pairwise)))
                except DomainError as error:
                    rejected.append((item, error))
            failed = await bulk.record_many(
                conn,
                partner_id,
                [cmd for _, cmd in parsed],
                now=now,
                programme=hub.settings.programme,
                policy=hub.settings.points_policy,
            )
            rejected += [(parsed[i][0], error) for i, error in failed.items()]
            rejected.sort(key=lambda r: r[0].first_line)
        accepted = len(items) - len(rejected)
        await conn.execute(
            update(import_job)
            .where(import_job.c.id == job_id)
            .values(
                last_line=items[-1].last_line,
                accepted=import_job.c.accepted + accepted,
                rejected=import_job.c.rejected + len(rejected),
                provisional=import_job.c.provisional + provisional,
            )
        )
    columns = MEMBER_COLUMNS if kind == "members" else PURCHASE_COLUMNS
    for item, problem in rejected:
        for offset, row in enumerate(item.rows):
            writer.writerow(
                [item.first_line + offset, problem.code, problem.message, *(row.get(c, "") for c in columns)]
            )
    report.accepted += accepted
    report.rejected += len(rejected)
    report.provisional += provisional
    if progress:
        progress(items[-1].last_line - max(report.last_line, 1))
    report.last_line = items[-1].last_line
