"""Member sign-in: phone number, then a one-time code sent by SMS; then a portal session.

The code is six digits, so it is guarded by limits rather than entropy: it lives five minutes, dies after five
wrong guesses, a phone (or an IP address) can ask for only so many codes in a quarter of an hour, and ten wrong
codes in a row lock the phone's codes for an hour. Enrolment confirmations (claims.py) use the same codes and
limits. An unknown
phone gets the same answer as a known one and no SMS, so the form does not tell who is a member.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.errors import DomainError
from hub.ids import secret_hash
from hub.members.models import member, member_session, phone_guard, signin_code
from hub.members.phone import normalise

CODE_TTL = timedelta(minutes=5)
MAX_ATTEMPTS = 5
WINDOW = timedelta(minutes=15)
CODES_PER_PHONE = 5
CODES_PER_IP = 20
SESSION_TTL = timedelta(hours=1)
LOCK_AFTER = 10
LOCK_FOR = timedelta(hours=1)


@dataclass(frozen=True)
class CodeToSend:
    phone: str
    code: str


@dataclass(frozen=True)
class Session:
    member_id: int
    csrf_token: str


def _code_hash(phone: str, code: str) -> str:
    return secret_hash(f"{phone}:{code}")


async def _locked(conn: AsyncConnection, phone: str, now: datetime) -> bool:
    until = await conn.scalar(select(phone_guard.c.locked_until).where(phone_guard.c.phone == phone))
    return until is not None and until > now


async def issue_code(
    conn: AsyncConnection,
    phone: str,
    *,
    now: datetime,
    ip: str | None = None,
    claim_id: int | None = None,
    ttl: timedelta = CODE_TTL,
) -> str:
    """A new one-time code for a normalised phone, within the limits every code shares (per phone, per IP, the
    lockout); RATE_LIMITED or PHONE_LOCKED otherwise. The row is written whether or not the phone is a member's,
    so the limits apply to probing as well."""
    since = now - WINDOW
    if await _locked(conn, phone, now):
        raise DomainError("PHONE_LOCKED", "too many wrong codes for this phone; try again in an hour", "phone")
    # Sign-in and enrolment codes have a quota each, so partners enrolling a phone cannot keep its owner out.
    purpose = signin_code.c.claim_id.is_(None) if claim_id is None else signin_code.c.claim_id.is_not(None)
    by_phone = await conn.scalar(
        select(func.count()).where(signin_code.c.phone == phone, purpose, signin_code.c.created_at > since)
    )
    by_ip = (
        0
        if ip is None
        else await conn.scalar(select(func.count()).where(signin_code.c.ip == ip, signin_code.c.created_at > since))
    )
    if (by_phone or 0) >= CODES_PER_PHONE or (by_ip or 0) >= CODES_PER_IP:
        raise DomainError("RATE_LIMITED", "too many codes requested; try again in 15 minutes", "phone")
    code = f"{secrets.randbelow(1_000_000):06d}"
    await conn.execute(
        insert(signin_code).values(
            phone=phone,
            code_hash=_code_hash(phone, code),
            ip=ip or "",
            claim_id=claim_id,
            created_at=now,
            expires_at=now + ttl,
        )
    )
    return code


async def check_code(
    conn: AsyncConnection, phone: str, code: str, *, now: datetime, claim_id: int | None = None
) -> bool:
    """Spend the phone's latest live code (of the claim, or a sign-in code) if `code` is it.

    Returns rather than raises on a wrong code: the counted attempt must commit with the transaction. Every wrong
    code also counts against the phone; `LOCK_AFTER` in a row lock its codes for `LOCK_FOR`.
    """
    if await _locked(conn, phone, now):
        return False
    purpose = signin_code.c.claim_id.is_(None) if claim_id is None else signin_code.c.claim_id == claim_id
    latest = (
        await conn.execute(
            select(signin_code.c.id, signin_code.c.code_hash, signin_code.c.attempts)
            .where(
                signin_code.c.phone == phone, purpose, signin_code.c.used_at.is_(None), signin_code.c.expires_at > now
            )
            .order_by(signin_code.c.id.desc())
            .limit(1)
            .with_for_update()
        )
    ).one_or_none()
    if latest is None or latest.attempts >= MAX_ATTEMPTS:
        return False
    if not secrets.compare_digest(latest.code_hash, _code_hash(phone, code.strip())):
        await conn.execute(
            update(signin_code).where(signin_code.c.id == latest.id).values(attempts=signin_code.c.attempts + 1)
        )
        await _count_failure(conn, phone, now)
        return False
    await conn.execute(update(signin_code).where(signin_code.c.id == latest.id).values(used_at=now))
    await conn.execute(update(phone_guard).where(phone_guard.c.phone == phone).values(failures=0))
    return True


async def _count_failure(conn: AsyncConnection, phone: str, now: datetime) -> None:
    failures = await conn.scalar(select(phone_guard.c.failures).where(phone_guard.c.phone == phone).with_for_update())
    if failures is None:
        await conn.execute(insert(phone_guard).values(phone=phone, failures=1))
        return
    if failures + 1 >= LOCK_AFTER:
        values: dict[str, object] = {"failures": 0, "locked_until": now + LOCK_FOR, "locked_at": now}
    else:
        values = {"failures": failures + 1}
    await conn.execute(update(phone_guard).where(phone_guard.c.phone == phone).values(**values))


_LOCKED_AT = select(phone_guard.c.locked_at).join(member, member.c.phone == phone_guard.c.phone)


async def lockout_notice(conn: AsyncConnection, member_id: int) -> datetime | None:
    """When the member's phone was last locked by wrong codes, if the member has not been told yet."""
    return await conn.scalar(_LOCKED_AT.where(member.c.id == member_id))


async def clear_lockout_notice(conn: AsyncConnection, member_id: int) -> None:
    """The member has been told."""
    phone = select(member.c.phone).where(member.c.id == member_id).scalar_subquery()
    await conn.execute(update(phone_guard).where(phone_guard.c.phone == phone).values(locked_at=None))


async def request_code(
    conn: AsyncConnection, raw_phone: str, *, ip: str, now: datetime, region: str
) -> CodeToSend | None:
    """Issue a sign-in code for the phone if it belongs to an active member; None (and nothing to send) otherwise."""
    phone = normalise(raw_phone, region)
    code = await issue_code(conn, phone, now=now, ip=ip)
    known = await conn.scalar(select(member.c.id).where(member.c.phone == phone, member.c.status == "active"))
    return CodeToSend(phone, code) if known is not None else None


async def verify_code(conn: AsyncConnection, raw_phone: str, code: str, *, now: datetime, region: str) -> int | None:
    """The member id for a correct, live sign-in code (which is then spent); None for anything else."""
    try:
        phone = normalise(raw_phone, region)
    except DomainError:
        return None
    if not await check_code(conn, phone, code, now=now):
        return None
    member_id = await conn.scalar(select(member.c.id).where(member.c.phone == phone, member.c.status == "active"))
    return None if member_id is None else int(member_id)


async def open_session(conn: AsyncConnection, member_id: int, *, now: datetime) -> tuple[str, Session]:
    """A new session; the returned token goes into the cookie and is stored only as a hash."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    await conn.execute(
        insert(member_session).values(
            token_hash=secret_hash(token),
            member_id=member_id,
            csrf_token=csrf,
            created_at=now,
            expires_at=now + SESSION_TTL,
        )
    )
    return token, Session(member_id, csrf)


async def session(conn: AsyncConnection, token: str, *, now: datetime) -> Session | None:
    row = (
        await conn.execute(
            select(member_session.c.member_id, member_session.c.csrf_token)
            .join(member, member.c.id == member_session.c.member_id)
            .where(
                member_session.c.token_hash == secret_hash(token),
                member_session.c.revoked_at.is_(None),
                member_session.c.expires_at > now,
                member.c.status == "active",
            )
        )
    ).one_or_none()
    return None if row is None else Session(row.member_id, row.csrf_token)


async def close_session(conn: AsyncConnection, token: str, *, now: datetime) -> None:
    await conn.execute(
        update(member_session)
        .where(member_session.c.token_hash == secret_hash(token), member_session.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
