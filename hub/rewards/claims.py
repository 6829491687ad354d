"""Claims: reserve, issue, redeem, void, expire and reverse, each one transaction.

A claim reserves three things, each by a guarded update whose 0 rows abort the whole claim (the check-then-act bug
of Saleor #544 and Vendure #4660 cannot happen): the points (a ledger hold, `balance >= points`), the member's
usage in the period (`used + n <= limit`) and the reward's stock (`stock_left >= n`). Rows are locked in one order
everywhere, member account → usage → reward, so no two commands wait on each other crosswise, and the reward's row,
which every claimant of a flash sale queues on, is taken last and held only until the commit. A claim's state
changes only by a guarded update from the states it may leave, so of a redemption and an expiry racing, one wins.

Lifecycle: ISSUED (claimed with a code, to redeem later) or RESERVED (claimed at a till against a quote) →
REDEEMED → REVERSED (the order was refunded); ISSUED/RESERVED → VOIDED or EXPIRED. Voiding, expiry and reversal
give the points back to the lots they came from and the units back to the stock and the member's limit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.errors import DomainError
from hub.events import outbox
from hub.idempotency import check_key, fingerprint, replayed
from hub.ids import new_id
from hub.partners.models import partner, partner_terms
from hub.points import ledger
from hub.points.models import point_hold, point_lot
from hub.points.settlement import DEFAULT_POINT_VALUE
from hub.rewards import catalogue, settlement
from hub.rewards.catalogue import MAX_QUANTITY, Reward
from hub.rewards.codes import RewardKey, display, parse
from hub.rewards.models import reward, reward_claim, reward_settlement, reward_usage
from hub.tiers import service as tiers

TILL_HOLD = timedelta(minutes=15)  # a claim made against a quote is redeemed in the same checkout, or released
ACTIVE = ("RESERVED", "ISSUED")


@dataclass(frozen=True)
class Claim:
    public_id: str
    reward_public_id: str
    reward_name: str
    kind: str
    status: str
    quantity: int
    points: int
    value: int  # fen
    code: str  # as `codes.display` shows it; for the member and the claiming partner only
    code_last4: str
    expires_at: datetime
    created_at: datetime
    member_id: int
    claimant_id: int | None
    redeemed_quantity: int
    redeemed_value: int
    order_reference: str | None


_CLAIM_VIEW = select(
    reward_claim, reward.c.public_id.label("reward_public_id"), reward.c.name.label("reward_name"), reward.c.kind
).join(reward, reward.c.id == reward_claim.c.reward_id)


def view_of(row: Any, key: RewardKey, now: datetime) -> Claim:
    """A claim as read at `now`: an active claim past its expiry shows as EXPIRED before the worker gets to it."""
    return Claim(
        public_id=row.public_id,
        reward_public_id=row.reward_public_id,
        reward_name=row.reward_name,
        kind=row.kind,
        status="EXPIRED" if row.status in ACTIVE and row.expires_at <= now else row.status,
        quantity=row.quantity,
        points=row.points,
        value=row.value,
        code=display(key.code_of(row.public_id)),
        code_last4=row.code_last4,
        expires_at=row.expires_at,
        created_at=row.created_at,
        member_id=row.member_id,
        claimant_id=row.claimant_id,
        redeemed_quantity=row.redeemed_quantity,
        redeemed_value=row.redeemed_value,
        order_reference=row.order_reference,
    )


async def _load(conn: AsyncConnection, key: RewardKey, now: datetime, **where: Any) -> Claim | None:
    query = _CLAIM_VIEW
    for name, value in where.items():
        query = query.where(reward_claim.c[name] == value)
    row = (await conn.execute(query)).one_or_none()
    return None if row is None else view_of(row, key, now)


# -- the reservation's three guarded updates ----------------------------------------------------------------------
async def _take_stock(conn: AsyncConnection, found: Reward, quantity: int) -> None:
    if found.stock_total is None:
        return
    taken = await conn.execute(
        update(reward)
        .where(reward.c.id == found.id, reward.c.status == "ACTIVE", reward.c.stock_left >= quantity)
        .values(stock_left=reward.c.stock_left - quantity)
    )
    if taken.rowcount != 1:
        raise DomainError("OUT_OF_STOCK", catalogue.REFUSALS["OUT_OF_STOCK"], "quantity")


async def _count_use(conn: AsyncConnection, found: Reward, member_id: int, period: str, quantity: int) -> None:
    insert_ = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    limit = found.member_limit
    if limit is not None and quantity > limit:
        raise DomainError("MEMBER_LIMIT_REACHED", catalogue.REFUSALS["MEMBER_LIMIT_REACHED"], "quantity")
    stmt = insert_(reward_usage).values(reward_id=found.id, member_id=member_id, period=period, used=quantity)
    guarded = stmt.on_conflict_do_update(
        index_elements=[reward_usage.c.reward_id, reward_usage.c.member_id, reward_usage.c.period],
        set_={"used": reward_usage.c.used + quantity},
        where=(reward_usage.c.used + quantity <= limit) if limit is not None else None,
    ).returning(reward_usage.c.used)
    if (await conn.execute(guarded)).one_or_none() is None:
        raise DomainError("MEMBER_LIMIT_REACHED", catalogue.REFUSALS["MEMBER_LIMIT_REACHED"], "quantity")


async def _give_back(conn: AsyncConnection, row: Any, units: int) -> None:
    """Return units of a claim to the reward's stock and the member's limit (void, expiry, reversal, the part of a
    claim not redeemed)."""
    if units <= 0:
        return
    await conn.execute(
        update(reward)
        .where(reward.c.id == row.reward_id, reward.c.stock_left.is_not(None))
        .values(stock_left=reward.c.stock_left + units)
    )
    await conn.execute(
        update(reward_usage)
        .where(
            reward_usage.c.reward_id == row.reward_id,
            reward_usage.c.member_id == row.member_id,
            reward_usage.c.period == row.period,
        )
        .values(used=reward_usage.c.used - units)
    )


# -- claim --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClaimReward:
    COMMAND: ClassVar[str] = "claimReward"
    reward_id: str
    quantity: int
    idempotency_key: str
    quote_id: str | None = None


async def claim(
    conn: AsyncConnection,
    key: RewardKey,
    cmd: ClaimReward,
    *,
    member_id: int,
    claimant_id: int | None,
    now: datetime,
    zone: ZoneInfo,
    quote_pk: int | None = None,
) -> Claim:
    """Claim for a member the caller resolved under its consent rule (a partner: `points:redeem`; the member
    in the portal: themself). `claimant_id` None is the member's own claim; `quote_pk`, the caller's unexpired
    quote for this member (`quote.quoted`), makes it a till's claim for that checkout."""
    check_key(cmd.idempotency_key)
    if not 1 <= cmd.quantity <= MAX_QUANTITY:
        raise DomainError("INVALID_INPUT", f"quantity must be 1 to {MAX_QUANTITY}", "quantity")
    digest = fingerprint(cmd)
    replay = await _replay(conn, key, claimant_id, member_id, cmd.idempotency_key, digest, now)
    if replay is not None:
        return replay

    found = await catalogue.active_reward(conn, cmd.reward_id)
    level = (await tiers.state(conn, member_id)).level
    period = catalogue.period_of(found.limit_period, now, zone)
    used = (await catalogue.used_of(conn, member_id, [found], now, zone)).get(found.id, 0)
    refused = catalogue.refusal(found, level, used, cmd.quantity, now)
    if refused is not None:
        code, message = refused
        raise DomainError(code, message, "quantity" if code in ("OUT_OF_STOCK", "MEMBER_LIMIT_REACHED") else "rewardId")

    # The member's points first, then their usage, the reward's stock last: every path takes member account →
    # usage → reward, and the hot row (one reward, every claimant) is held only from here to the commit.
    public_id = new_id("clm", 12)
    points = found.points_cost * cmd.quantity
    expires_at = now + (TILL_HOLD if quote_pk else timedelta(days=found.claim_valid_days))
    hold_pk = None
    if points:
        holder = claimant_id if claimant_id is not None else found.sponsor_id
        _hold, hold_pk = await ledger.place_hold(
            conn, holder, member_id, points, f"reward {public_id}", expires_at, now
        )
    await _count_use(conn, found, member_id, period, cmd.quantity)
    body = key.code_of(public_id)
    status = "RESERVED" if quote_pk else "ISSUED"
    await conn.execute(
        insert(reward_claim).values(
            public_id=public_id,
            reward_id=found.id,
            member_id=member_id,
            claimant_id=claimant_id,
            status=status,
            quantity=cmd.quantity,
            points=points,
            value=found.face_value * cmd.quantity,
            tier_level=level,
            period=period,
            code_hash=key.lookup_hash(body),
            code_last4=body[-4:],
            hold_id=hold_pk,
            quote_id=quote_pk,
            idempotency_key=cmd.idempotency_key,
            request_hash=digest,
            expires_at=expires_at,
            created_at=now,
        )
    )
    await outbox.record(
        conn,
        "reward.claimed",
        now=now,
        member_id=member_id,
        partner_id=claimant_id if claimant_id is not None else found.sponsor_id,
        payload={"claimId": public_id, "rewardId": found.public_id, "quantity": cmd.quantity, "points": points},
    )
    await _take_stock(conn, found, cmd.quantity)
    return Claim(
        public_id=public_id,
        reward_public_id=found.public_id,
        reward_name=found.name,
        kind=found.kind,
        status=status,
        quantity=cmd.quantity,
        points=points,
        value=found.face_value * cmd.quantity,
        code=display(body),
        code_last4=body[-4:],
        expires_at=expires_at,
        created_at=now,
        member_id=member_id,
        claimant_id=claimant_id,
        redeemed_quantity=0,
        redeemed_value=0,
        order_reference=None,
    )


async def _replay(
    conn: AsyncConnection,
    key: RewardKey,
    claimant_id: int | None,
    member_id: int,
    idempotency_key: str,
    digest: str,
    now: datetime,
) -> Claim | None:
    query = _CLAIM_VIEW.where(reward_claim.c.idempotency_key == idempotency_key)
    if claimant_id is None:
        query = query.where(reward_claim.c.claimant_id.is_(None), reward_claim.c.member_id == member_id)
    else:
        query = query.where(reward_claim.c.claimant_id == claimant_id)
    row = (await conn.execute(query)).one_or_none()
    if row is None:
        return None
    replayed(row.request_hash, digest)
    return view_of(row, key, now)


# -- redeem -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RedeemClaim:
    COMMAND: ClassVar[str] = "redeemRewardClaim"
    claim_id: str | None
    code: str | None
    order_reference: str
    idempotency_key: str
    quantity: int | None = None
    quote_id: str | None = None  # the quote that priced the coupon


# The redeemer's checks that live elsewhere: that it may reach the claim's member (else the claim is not found),
# and, for a claim priced by a quote, what the quote took off (None: no quote).
Reaches = Callable[[AsyncConnection, int, str], Awaitable[None]]
QuotedValue = Callable[[AsyncConnection, int, str], Awaitable[int | None]]


def claim_lookup(key: RewardKey, claim_id: str | None, code: str | None) -> dict[str, str]:
    """How to find the claim: by id, or by the HMAC of its code, once the code passed its check symbol (no
    database read for a mistyped code)."""
    if (claim_id is None) == (code is None):
        raise DomainError("INVALID_INPUT", "give either claimId or code", "claimId")
    if code is not None:
        return {"code_hash": key.lookup_hash(parse(code))}
    assert claim_id is not None
    return {"public_id": claim_id}


def not_found(field: str) -> DomainError:
    return DomainError("CLAIM_NOT_FOUND", "no such claim", field)


def refuse_state(row: Any, now: datetime, field: str) -> None:
    """A claim that cannot be redeemed any more, with why."""
    if row.status in ("REDEEMED", "REVERSED"):
        raise DomainError("CLAIM_REDEEMED", "this claim was already redeemed", field)
    if row.status == "VOIDED":
        raise DomainError("CLAIM_VOIDED", "this claim was voided", field)
    if row.status == "EXPIRED" or row.expires_at <= now:
        raise DomainError("CLAIM_EXPIRED", "this claim has expired", field)


async def partner_public_id(conn: AsyncConnection, partner_id: int) -> str:
    return str(await conn.scalar(select(partner.c.public_id).where(partner.c.id == partner_id)))


async def redeemable_claim(
    conn: AsyncConnection, key: RewardKey, redeemer_id: int, member_id: int | None, where: dict[str, str], now: datetime
) -> tuple[Any, Reward]:
    """A claim the redeemer may take at its till: redeemable there, and of a member who is the redeemer's (or the
    one named). Anything else is CLAIM_NOT_FOUND, as if no such claim existed."""
    field = "code" if "code_hash" in where else "claimId"
    query = select(reward_claim)
    for name, value in where.items():
        query = query.where(reward_claim.c[name] == value)
    row = (await conn.execute(query)).one_or_none()
    if row is None or (member_id is not None and row.member_id != member_id):
        raise not_found(field)
    found = await catalogue.reward_by_id(conn, row.reward_id)
    if not found.redeemable_at(await partner_public_id(conn, redeemer_id)):
        raise not_found(field)
    return row, found


async def redeem(
    conn: AsyncConnection,
    key: RewardKey,
    redeemer_id: int,
    cmd: RedeemClaim,
    *,
    reaches: Reaches,
    quoted_value: QuotedValue,
    now: datetime,
) -> Claim:
    """Take a claim at the redeemer's till: capture its points for the redeemer, give back the units not taken,
    and write the settlement lines. A code of someone who is not the redeemer's member is not found."""
    check_key(cmd.idempotency_key)
    if not cmd.order_reference.strip() or len(cmd.order_reference) > 200:
        raise DomainError("INVALID_INPUT", "orderReference must be 1 to 200 characters", "orderReference")
    where = claim_lookup(key, cmd.claim_id, cmd.code)
    digest = fingerprint(cmd)
    earlier = (
        await conn.execute(
            _CLAIM_VIEW.where(
                reward_claim.c.redeemer_id == redeemer_id, reward_claim.c.redeem_key == cmd.idempotency_key
            )
        )
    ).one_or_none()
    if earlier is not None:
        replayed(earlier.redeem_hash, digest)
        return view_of(earlier, key, now)

    row, found = await redeemable_claim(conn, key, redeemer_id, None, where, now)
    field = "code" if cmd.code is not None else "claimId"
    await reaches(conn, row.member_id, field)
    refuse_state(row, now, field)
    quantity = row.quantity if cmd.quantity is None else cmd.quantity
    if not 1 <= quantity <= row.quantity:
        raise DomainError("INVALID_INPUT", f"quantity must be 1 to {row.quantity}", "quantity")
    # A coupon is worth what the quote took off the basket; a gift or a service is worth its face value.
    quoted = await quoted_value(conn, row.member_id, row.public_id) if found.kind == "COUPON" else None
    if found.percent_off is not None and quoted is None:
        raise DomainError("QUOTE_REQUIRED", "a percentage coupon is redeemed against a quote of the basket", "quoteId")
    # The claim's own price per unit: the sponsor may have changed the reward's since.
    unit_points, unit_value = row.points // row.quantity, row.value // row.quantity
    value = unit_value * quantity if quoted is None else quoted

    taken = await conn.execute(
        update(reward_claim)
        .where(reward_claim.c.id == row.id, reward_claim.c.status.in_(ACTIVE))
        .values(
            status="REDEEMED",
            redeemer_id=redeemer_id,
            order_reference=cmd.order_reference,
            redeemed_quantity=quantity,
            redeemed_points=unit_points * quantity,
            redeemed_value=value,
            redeem_key=cmd.idempotency_key,
            redeem_hash=digest,
            resolved_at=now,
        )
    )
    if taken.rowcount != 1:
        raise DomainError("CLAIM_NOT_ACTIVE", "the claim was redeemed, voided or expired meanwhile", field)
    lots: list[tuple[int, int]] = []
    if row.hold_id is not None:
        _txn, lots = await ledger.resolve_claim_hold(
            conn,
            row.hold_id,
            captured=unit_points * quantity,
            redeemer_id=redeemer_id,
            status="CAPTURED",
            now=now,
        )
    await _settle(conn, row.id, found, redeemer_id, value, lots, now)
    await outbox.record(
        conn,
        "reward.redeemed",
        now=now,
        member_id=row.member_id,
        partner_id=redeemer_id,
        payload={"claimId": row.public_id, "rewardId": found.public_id, "quantity": quantity},
    )
    redeemed = await _load(conn, key, now, id=row.id)
    await _give_back(conn, row, row.quantity - quantity)  # the reward's row last (lock order)
    assert redeemed is not None
    return redeemed


async def _rates(conn: AsyncConnection, issuers: set[int]) -> dict[int, Decimal]:
    rows = await conn.execute(
        select(partner_terms.c.partner_id, partner_terms.c.point_value).where(partner_terms.c.partner_id.in_(issuers))
    )
    rates = {row.partner_id: Decimal(row.point_value) for row in rows if row.point_value}
    return {issuer: rates.get(issuer, DEFAULT_POINT_VALUE) for issuer in issuers}


async def _settle(
    conn: AsyncConnection,
    claim_pk: int,
    found: Reward,
    redeemer_id: int,
    value: int,
    lots: list[tuple[int, int]],
    now: datetime,
) -> None:
    issuer_of: dict[int, int] = {}
    if lots:
        rows = await conn.execute(
            select(point_lot.c.id, point_lot.c.issuer_id).where(point_lot.c.id.in_([lot for lot, _ in lots]))
        )
        issuer_of = {row.id: row.issuer_id for row in rows}
    taken = [(issuer_of[lot], points) for lot, points in lots]
    shares, sponsor_share = settlement.split(value, taken, await _rates(conn, {i for i, _ in taken}))
    rows_ = [{"basis": "POINTS", "debtor_id": s.issuer_id, "points": s.points, "amount": s.amount} for s in shares] + [
        {"basis": "SPONSOR", "debtor_id": found.sponsor_id, "points": 0, "amount": sponsor_share}
    ]
    await conn.execute(
        insert(reward_settlement),
        [{**r, "claim_id": claim_pk, "creditor_id": redeemer_id, "created_at": now} for r in rows_],
    )


# -- void, expire, reverse -----------------------------------------------------------------------------------------
async def _release(conn: AsyncConnection, row: Any, status: str, now: datetime) -> bool:
    """Move an active claim to VOIDED or EXPIRED, giving back its units and points. False: it was not active."""
    moved = await conn.execute(
        update(reward_claim)
        .where(reward_claim.c.id == row.id, reward_claim.c.status.in_(ACTIVE))
        .values(status=status, resolved_at=now)
    )
    if moved.rowcount != 1:
        return False
    if row.hold_id is not None:
        hold_status = await conn.scalar(select(point_hold.c.status).where(point_hold.c.id == row.hold_id))
        if hold_status == "ACTIVE":  # the points job may have expired the hold itself already
            await ledger.resolve_claim_hold(conn, row.hold_id, captured=0, redeemer_id=None, status=status, now=now)
    event = "reward.voided" if status == "VOIDED" else "reward.expired"
    sponsor = await conn.scalar(select(reward.c.sponsor_id).where(reward.c.id == row.reward_id))
    await outbox.record(
        conn,
        event,
        now=now,
        member_id=row.member_id,
        partner_id=row.claimant_id if row.claimant_id is not None else sponsor,
        payload={"claimId": row.public_id, "quantity": row.quantity, "points": row.points},
    )
    await _give_back(conn, row, row.quantity)  # the reward's row last (lock order)
    return True


@dataclass(frozen=True)
class VoidClaim:
    COMMAND: ClassVar[str] = "voidRewardClaim"
    claim_id: str
    idempotency_key: str


async def void(
    conn: AsyncConnection,
    key: RewardKey,
    cmd: VoidClaim,
    *,
    claimant_id: int | None,
    member_id: int | None,
    now: datetime,
) -> Claim:
    """Give back an unredeemed claim: by the partner that claimed it, or by the member (portal). Voiding a claim
    already voided answers with it again (the key makes the request safe to repeat)."""
    check_key(cmd.idempotency_key)
    query = select(reward_claim).where(reward_claim.c.public_id == cmd.claim_id)
    query = (
        query.where(reward_claim.c.claimant_id == claimant_id)
        if claimant_id is not None
        else query.where(reward_claim.c.member_id == member_id)
    )
    row = (await conn.execute(query)).one_or_none()
    if row is None:
        raise not_found("claimId")
    if row.status != "VOIDED":
        refuse_state(row, now, "claimId")  # redeemed, expired (by the worker or by the clock): nothing to give back
        if not await _release(conn, row, "VOIDED", now):
            raise DomainError("CLAIM_NOT_ACTIVE", "the claim was redeemed, voided or expired meanwhile", "claimId")
    voided = await _load(conn, key, now, id=row.id)
    assert voided is not None
    return voided


async def due(conn: AsyncConnection, now: datetime, limit: int) -> list[int]:
    rows = await conn.scalars(
        select(reward_claim.c.id)
        .where(reward_claim.c.status.in_(ACTIVE), reward_claim.c.expires_at <= now)
        .order_by(reward_claim.c.expires_at)
        .limit(limit)
    )
    return list(rows)


async def expire(conn: AsyncConnection, claim_pk: int, now: datetime) -> bool:
    """The worker: an unredeemed claim past its time expires with its hold. False: a till redeemed it first."""
    row = (await conn.execute(select(reward_claim).where(reward_claim.c.id == claim_pk))).one()
    if row.status not in ACTIVE or row.expires_at > now:
        return False
    return await _release(conn, row, "EXPIRED", now)


async def reverse_order(conn: AsyncConnection, redeemer_id: int, order_reference: str, now: datetime) -> int:
    """The order a claim was redeemed in was refunded in full: the claim is reversed, its points go back to the
    lots they came from, its units to the stock and the member's limit, and its settlement lines are negated."""
    rows = (
        await conn.execute(
            select(reward_claim).where(
                reward_claim.c.redeemer_id == redeemer_id,
                reward_claim.c.order_reference == order_reference,
                reward_claim.c.status == "REDEEMED",
            )
        )
    ).all()
    for row in rows:
        await conn.execute(
            update(reward_claim).where(reward_claim.c.id == row.id).values(status="REVERSED", resolved_at=now)
        )
        if row.hold_id is not None and row.redeemed_points:
            capture = await conn.scalar(
                select(func.max(ledger.ledger_txn.c.id)).where(
                    ledger.ledger_txn.c.hold_id == row.hold_id, ledger.ledger_txn.c.kind == "capture"
                )
            )
            await ledger.return_claim_points(conn, int(capture), row.redeemed_points, now)
        lines = (await conn.execute(select(reward_settlement).where(reward_settlement.c.claim_id == row.id))).all()
        await conn.execute(
            insert(reward_settlement),
            [
                {
                    "claim_id": row.id,
                    "basis": line.basis,
                    "debtor_id": line.debtor_id,
                    "creditor_id": line.creditor_id,
                    "points": -line.points,
                    "amount": -line.amount,
                    "created_at": now,
                }
                for line in lines
            ],
        )
        await outbox.record(
            conn,
            "reward.reversed",
            now=now,
            member_id=row.member_id,
            partner_id=redeemer_id,
            payload={"claimId": row.public_id, "quantity": row.redeemed_quantity, "points": row.redeemed_points},
        )
        await _give_back(conn, row, row.redeemed_quantity)  # the reward's row last (lock order)
    return len(rows)


async def claims_of(
    conn: AsyncConnection, key: RewardKey, member_ids: list[int], now: datetime, *, first: int, claimant_id: int | None
) -> dict[int, list[Claim]]:
    """Each member's latest claims; with `claimant_id`, those a partner may see: its own claims and those redeemed
    at it (a code is shown only to the member and the claiming partner, `Claim.code_for`)."""
    found: dict[int, list[Claim]] = {m: [] for m in member_ids}
    if not member_ids:
        return found
    query = _CLAIM_VIEW.where(reward_claim.c.member_id.in_(member_ids)).order_by(reward_claim.c.id.desc())
    if claimant_id is not None:
        query = query.where((reward_claim.c.claimant_id == claimant_id) | (reward_claim.c.redeemer_id == claimant_id))
    for row in await conn.execute(query):
        if len(found[row.member_id]) < first:
            found[row.member_id].append(view_of(row, key, now))
    return found


async def merge_members(conn: AsyncConnection, source_id: int, target_id: int) -> None:
    """Two records found to be one person: the source's claims and usage become the target's (the ledger moved
    the claims' holds already), usage of the same reward and period added together."""
    await conn.execute(update(reward_claim).where(reward_claim.c.member_id == source_id).values(member_id=target_id))
    rows = (await conn.execute(select(reward_usage).where(reward_usage.c.member_id == source_id))).all()
    insert_ = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    for row in rows:
        added = insert_(reward_usage).values(
            reward_id=row.reward_id, member_id=target_id, period=row.period, used=row.used
        )
        await conn.execute(
            added.on_conflict_do_update(
                index_elements=[reward_usage.c.reward_id, reward_usage.c.member_id, reward_usage.c.period],
                set_={"used": reward_usage.c.used + row.used},
            )
        )
    await conn.execute(delete(reward_usage).where(reward_usage.c.member_id == source_id))
