from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, Float, ForeignKey, Integer, String, Table, Text

from hub.db import BigId, Json, UtcDateTime, metadata

PARTNER_KINDS = ("pharmacy_chain", "insurer", "gym", "clinic", "other")
PARTNER_STATUSES = ("active", "suspended")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")

partner = Table(
    "partner",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("public_id", String(40), nullable=False, unique=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("kind", String(20), nullable=False),
    Column("status", String(20), nullable=False, server_default="active"),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint(f"kind IN {PARTNER_KINDS!r}", name="kind"),
    CheckConstraint(f"status IN {PARTNER_STATUSES!r}", name="status"),
)

oauth_client = Table(
    "oauth_client",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("client_id", String(60), nullable=False, unique=True),
    Column("partner_id", BigId, ForeignKey("partner.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    # The ceiling: a token never carries a scope outside this space-separated set.
    Column("allowed_scopes", Text, nullable=False),
    Column("auth_method", String(30), nullable=False),
    # Public keys for private_key_jwt client authentication (a JWK Set document).
    Column("jwks", Json, nullable=True),
    # Exact-match redirect URIs for the authorization code grant; a client without any cannot use it.
    Column("redirect_uris", Json, nullable=True),
    Column("status", String(20), nullable=False, server_default="active"),
    Column("created_at", UtcDateTime, nullable=False),
    # Per-client rate limits (requests and query cost per minute); null: the hub's defaults.
    Column("requests_per_minute", Integer, nullable=True),
    Column("cost_per_minute", Integer, nullable=True),
    CheckConstraint(f"auth_method IN {AUTH_METHODS!r}", name="auth_method"),
    CheckConstraint("status IN ('active', 'disabled')", name="status"),
)

# Several secrets per client so a partner can roll its secret without downtime. Only hashes are stored.
client_secret = Table(
    "client_secret",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("client_pk", BigId, ForeignKey("oauth_client.id"), nullable=False, index=True),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("hint", String(8), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
)

DEFAULT_AT_RISK_THRESHOLD = 0.3

# The partner's commercial terms: what one of its points is worth, and whether it prepays what it issues.
partner_terms = Table(
    "partner_terms",
    metadata,
    Column("partner_id", BigId, ForeignKey("partner.id"), primary_key=True),
    Column("point_value", String(20), nullable=False),  # yuan per point, a decimal string
    Column("billing", String(10), nullable=False),  # prepaid | postpaid
    # The health-activity kinds its contract lets it record (and fund points for); none unless listed.
    Column("activity_kinds", Json, nullable=True),
    # Retention: a member whose P(alive) first falls below this is announced to the partner (member.at_risk).
    Column("at_risk_threshold", Float, nullable=False, server_default=str(DEFAULT_AT_RISK_THRESHOLD)),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint("billing IN ('prepaid', 'postpaid')", name="billing"),
)
