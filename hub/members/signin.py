"""Member sign-in: phone number, then a one-time code sent by SMS; then a portal session.

The code is six digits, so it is guarded by limits rather than entropy: it lives five minutes, dies after five
wrong guesses, and a phone (or an IP address) can ask for only so many codes in a quarter of an hour. An unknown
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
from hub.members.models import member, member_session, signin_code
from hub.members.phone import normalise

CODE_TTL = timedelta(minutes=5)
MAX_ATTEMPTS = 5
WINDOW = timedelta(minutes=15)
CODES_PER_PHONE = 5
CODES_PER_IP = 20
SESSION_TTL = timedelta(hours=1)


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


async def request_code(
    conn: AsyncConnection, raw_phone: str, *, ip: str, now: datetime, region: str
) -> CodeToSend | None:
    """Issue a code for the phone if it belongs to an active member; None (and nothing to send) otherwise."""
    phone = normalise(raw_phone, region)
    since = now - WINDOW
    by_phone = await conn.scalar(
        select(func.count()).where(signin_code.c.phone == phone, signin_code.c.created_at > since)
    )
    by_ip = await conn.scalar(select(func.count()).where(signin_code.c.ip == ip, signin_code.c.created_at > since))
    if (by_phone or 0) >= CODES_PER_PHONE or (by_ip or 0) >= CODES_PER_IP:
        raise DomainError("RATE_LIMITED", "too many codes requested; try again in 15 minutes", "phone")
    code = f"{secrets.randbelow(1_000_000):06d}"
    # The row is written for unknown phones too: the limits then apply to probing as well.
    await conn.execute(
        insert(signin_code).values(
            phone=phone, code_hash=_code_hash(phone, code), ip=ip, created_at=now, expires_at=now + CODE_TTL
        )
    )
    known = await conn.scalar(select(member.c.id).where(member.c.phone == phone, member.c.status == "active"))
    return CodeToSend(phone, code) if known is not None else None


async def verify_code(conn: AsyncConnection, raw_phone: str, code: str, *, now: datetime, region: str) -> int | None:
    """The member id for a correct, live code (which is then spent); None for anything else.

    Returns rather than raises on a wrong code: the counted attempt must commit with the transaction.
    """
    try:
        phone = normalise(raw_phone, region)
    except DomainError:
        return None
    latest = (
        await conn.execute(
            select(signin_code.c.id, signin_code.c.code_hash, signin_code.c.attempts)
            .where(signin_code.c.phone == phone, signin_code.c.used_at.is_(None), signin_code.c.expires_at > now)
            .order_by(signin_code.c.id.desc())
            .limit(1)
            .with_for_update()
        )
    ).one_or_none()
    if latest is None or latest.attempts >= MAX_ATTEMPTS:
        return None
    if not secrets.compare_digest(latest.code_hash, _code_hash(phone, code.strip())):
        await conn.execute(
            update(signin_code).where(signin_code.c.id == latest.id).values(attempts=signin_code.c.attempts + 1)
        )
        return None
    member_id = await conn.scalar(select(member.c.id).where(member.c.phone == phone, member.c.status == "active"))
    if member_id is None:
        return None
    await conn.execute(update(signin_code).where(signin_code.c.id == latest.id).values(used_at=now))
    return int(member_id)


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
