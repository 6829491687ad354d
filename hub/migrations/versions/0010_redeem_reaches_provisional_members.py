"""hub_redeem reaches the members the consent rule reaches (provisional ones too)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

Migration 0003's function let a partner reach only `active` members, while the rule every other statement builds on
(hub/consent/rule.py) also reaches the `provisional` member a partner enrolled with a phone the hub already knew
(migration 0008): such a member could earn at that partner on PostgreSQL but not redeem, and could do both on
SQLite. The function is recreated with the rule's member statuses; tests/test_consent_rule.py runs it and the Python
path from the same states and compares every row they write.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

REDEEM = r"""
CREATE OR REPLACE FUNCTION hub_redeem(
    p_partner bigint, p_pairwise text, p_points bigint, p_reference text, p_key text, p_hash text,
    p_now timestamptz, p_public_id text
) RETURNS TABLE (outcome text, txn_id bigint) LANGUAGE plpgsql AS $$
DECLARE
    v_member bigint;
    v_permissions jsonb;
    v_txn bigint;
    v_balance bigint;
    v_left bigint := p_points;
    v_take bigint;
    v_code text;
    lot record;
BEGIN
    -- 1. The member, through the caller's own link, reachable, consent in force: the copy of hub/consent/rule.py
    --    (`reachable`) that tests/test_consent_rule.py holds equal to it.
    SELECT l.member_id, c.permissions INTO v_member, v_permissions
    FROM member_link l
    JOIN member m ON m.id = l.member_id
    JOIN consent c ON c.member_id = l.member_id AND c.partner_id = l.partner_id
    WHERE l.partner_id = p_partner AND l.pairwise_id = p_pairwise AND m.status IN ('active', 'provisional')
      AND c.status = 'AUTHORISED' AND (c.expires_at IS NULL OR c.expires_at > p_now);
    IF v_member IS NULL THEN
        RETURN QUERY SELECT 'MEMBER_NOT_FOUND'::text, NULL::bigint;
        RETURN;
    END IF;
    IF NOT (v_permissions ? 'points:redeem') THEN
        RETURN QUERY SELECT 'CONSENT_REQUIRED'::text, NULL::bigint;
        RETURN;
    END IF;

    -- 2. Claim the idempotency key with the transaction row.
    INSERT INTO ledger_txn (public_id, kind, status, partner_id, member_id, points, reversed_points, reference,
                            idempotency_key, request_hash, created_at)
    VALUES (p_public_id, 'redeem', 'POSTED', p_partner, v_member, p_points, 0, p_reference, p_key, p_hash, p_now)
    ON CONFLICT (partner_id, idempotency_key) DO NOTHING
    RETURNING id INTO v_txn;
    IF v_txn IS NULL THEN
        RETURN QUERY SELECT 'REPLAY'::text, NULL::bigint;
        RETURN;
    END IF;

    -- 3. The guarded debit: never below zero, whatever the interleaving.
    v_code := 'm:' || v_member || ':member_available:POINT';
    UPDATE ledger_account SET balance = balance - p_points, version = version + 1
    WHERE code = v_code AND balance - p_points >= 0
    RETURNING balance INTO v_balance;
    IF NOT FOUND THEN
        SELECT balance INTO v_balance FROM ledger_account WHERE code = v_code;
        RAISE EXCEPTION 'hub:%', CASE WHEN coalesce(v_balance, 0) < 0 THEN 'NEGATIVE_BALANCE'
                                      ELSE 'INSUFFICIENT_POINTS' END USING ERRCODE = 'P0001';
    END IF;
    INSERT INTO ledger_entry (txn_id, account, amount)
    VALUES (v_txn, v_code, -p_points), (v_txn, 'p:' || p_partner || ':partner_redeemed:POINT', p_points);

    -- 4. Lots, earliest-expiring first (the account row lock above serialises this member's lot changes).
    FOR lot IN
        SELECT id, remaining FROM point_lot
        WHERE member_id = v_member AND status = 'available' AND remaining > 0
        ORDER BY expires_at IS NULL, expires_at, id
    LOOP
        v_take := least(v_left, lot.remaining);
        UPDATE point_lot SET remaining = remaining - v_take WHERE id = lot.id;
        INSERT INTO lot_allocation (txn_id, lot_id, kind, amount, partner_id, created_at)
        VALUES (v_txn, lot.id, 'redeem', v_take, p_partner, p_now);
        v_left := v_left - v_take;
        EXIT WHEN v_left = 0;
    END LOOP;
    IF v_left > 0 THEN
        RAISE EXCEPTION 'hub:LOTS_DISAGREE_WITH_BALANCE' USING ERRCODE = 'P0001';
    END IF;

    -- 5. The outbox event, in the same transaction.
    INSERT INTO event (type, member_id, partner_id, payload, occurred_at)
    VALUES ('points.redeemed', v_member, p_partner,
            jsonb_build_object('transactionId', p_public_id, 'points', p_points), p_now);

    RETURN QUERY SELECT 'OK'::text, v_txn;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(REDEEM)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(REDEEM.replace("m.status IN ('active', 'provisional')", "m.status = 'active'"))
